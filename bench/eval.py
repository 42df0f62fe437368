"""Benchmark the eval runner: harness overhead per query, and throughput against a vLLM server.

    .venv/bin/python bench/eval.py                          # harness overhead only (model-free baseline)
    .venv/bin/python bench/eval.py --server http://127.0.0.1:8000/v1 --videos DIR
    .venv/bin/python bench/eval.py --vllm-model /path/to/tiny-qwen2.5-vl --videos DIR   # starts a server

Harness overhead: the runner (async scheduling, one flushed jsonl line per query, progress bookkeeping)
over all 3720 Charades-STA test queries with the zero-latency `uniform` baseline, minus the same
grounder called in a plain loop, per query, at concurrency 1/4/16 (best of 3).
Throughput: queries/s through the runner with the `vllm` grounder at concurrency 1/4/16, on the
Charades-STA test queries whose videos are in --videos (repeated to --queries).
Prints a table and writes bench/results/eval.json.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import sys
import tempfile
import time
from dataclasses import replace
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from eval import runner  # noqa: E402
from grounding_agent.datasets import load_charades_sta  # noqa: E402
from grounding_agent.grounders.baselines import UniformGrounder  # noqa: E402
from grounding_agent.io import write_json_atomic  # noqa: E402
from grounding_agent.types import Video  # noqa: E402

DEFAULT_GT = REPO.parent / "shared" / "data" / "charades_sta" / "charades_sta_test.txt"
CONCURRENCY = (1, 4, 16)
REPEATS = 3  # best of, for the model-free part (sub-second runs are noisy)


def timed_run(
    annotations, grounders, concurrency: int, videos_dir: Path | None = None, warmup: int = 0
) -> float:
    """Seconds for the runner to ground and write every query (fresh predictions file), after grounding
    the first `warmup` queries untimed in the same event loop (the server's first requests compile)."""

    async def go() -> float:
        with tempfile.TemporaryDirectory() as tmp:
            if warmup:
                await runner.run_queries(
                    annotations[:warmup],
                    grounders,
                    Path(tmp) / "w.jsonl",
                    top_k=5,
                    concurrency=1,
                    videos_dir=videos_dir,
                )
            t0 = time.perf_counter()
            await runner.run_queries(
                annotations,
                grounders,
                Path(tmp) / "p.jsonl",
                top_k=5,
                concurrency=concurrency,
                videos_dir=videos_dir,
            )
            return time.perf_counter() - t0

    return asyncio.run(go())


def bare_loop(grounder, annotations) -> float:
    """Seconds for the grounder alone (no harness) to answer every query and build its prediction."""
    t0 = time.perf_counter()
    for a in annotations:
        video = Video(Path(a.vid), a.duration_s, 0.0, 0, 0, 0)
        grounder.ground(video, a.query, top_k=5).to_prediction(a.qid, a.vid, a.query).to_dict()
    return time.perf_counter() - t0


def harness_overhead(annotations) -> list[dict]:
    grounder = UniformGrounder()
    bare_s = min(bare_loop(grounder, annotations) for _ in range(REPEATS))
    rows = []
    for c in CONCURRENCY:
        wall_s = min(timed_run(annotations, [grounder], c) for _ in range(REPEATS))
        rows.append(
            {
                "part": "harness (uniform baseline)",
                "concurrency": c,
                "queries": len(annotations),
                "wall_s": wall_s,
                "per_query_ms": 1e3 * wall_s / len(annotations),
                "overhead_per_query_ms": 1e3 * (wall_s - bare_s) / len(annotations),
                "queries_per_s": len(annotations) / wall_s,
            }
        )
    return rows


def vllm_throughput(
    annotations, base_url: str, model: str | None, videos_dir: Path, n_queries: int
) -> list[dict]:
    from grounding_agent.grounders.vllm import VLLMGrounder

    have = [a for a in annotations if runner.find_video(videos_dir, a.vid)]
    if not have:
        raise SystemExit(f"no Charades-STA test video under {videos_dir}")
    # Repeat the available queries under fresh qids to fill the larger concurrencies.
    work = [replace(have[i % len(have)], qid=i) for i in range(n_queries)]
    rows = []
    for c in CONCURRENCY:
        grounder = VLLMGrounder(base_url, model, concurrency=c)
        wall_s = timed_run(work, [grounder], c, videos_dir, warmup=min(2, len(work)))
        rows.append(
            {
                "part": f"vllm ({Path(grounder.model).name})",
                "concurrency": c,
                "queries": len(work),
                "wall_s": wall_s,
                "per_query_ms": 1e3 * wall_s / len(work),
                "overhead_per_query_ms": None,
                "queries_per_s": len(work) / wall_s,
            }
        )
    return rows


def print_table(rows: list[dict]) -> None:
    widths = {"part": -34, "conc": 4, "queries": 7, "wall s": 8, "ms/query": 9, "overhead ms": 11, "q/s": 8}
    head = " ".join(f"{name:<{-w}}" if w < 0 else f"{name:>{w}}" for name, w in widths.items())
    print(head)
    print("-" * len(head))
    for r in rows:
        over = "-" if r["overhead_per_query_ms"] is None else f"{r['overhead_per_query_ms']:.3f}"
        print(
            f"{r['part']:<34} {r['concurrency']:>4} {r['queries']:>7} {r['wall_s']:>8.2f} "
            f"{r['per_query_ms']:>9.3f} {over:>11} {r['queries_per_s']:>8.1f}"
        )


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--gt", type=Path, default=DEFAULT_GT, help="charades_sta_test.txt")
    p.add_argument("--server", help="vLLM base URL (…/v1) for the throughput part")
    p.add_argument(
        "--vllm-model", help="model folder to serve with a fresh vLLM server (instead of --server)"
    )
    p.add_argument("--model", help="served model / adapter name (default: the first served)")
    p.add_argument("--videos", type=Path, help="folder with <vid>.mp4 for the throughput part")
    p.add_argument("--queries", type=int, default=32, help="queries per throughput measurement")
    p.add_argument("--out", type=Path, default=REPO / "bench" / "results" / "eval.json")
    args = p.parse_args()

    annotations = load_charades_sta(args.gt).annotations
    rows = harness_overhead(annotations)
    if args.server or args.vllm_model:
        if args.videos is None:
            raise SystemExit("--videos DIR is needed for the throughput part")
        if args.server:
            rows += vllm_throughput(annotations, args.server, args.model, args.videos, args.queries)
        else:
            from grounding_agent.serving import VLLMServer

            with VLLMServer(args.vllm_model) as server:
                rows += vllm_throughput(annotations, server.base_url, args.model, args.videos, args.queries)
    print_table(rows)
    write_json_atomic(args.out, {"machine": f"{os.cpu_count()} cpu", "rows": rows})
    print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
