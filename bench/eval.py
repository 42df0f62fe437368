"""Benchmark the eval runner: harness overhead per query, and throughput against 1 vs 2 vLLM servers.

    .venv/bin/python bench/eval.py                                  # harness overhead only (model-free)
    .venv/bin/python bench/eval.py --server URL1 --server URL2      # + 1 vs 2 servers at concurrency 16
    .venv/bin/python bench/eval.py --vllm-model /path/to/tiny-qwen2.5-vl   # starts the two servers itself

Harness overhead: the runner (async scheduling, one flushed jsonl line per query, progress bookkeeping)
over all 3720 Charades-STA test queries with the zero-latency `uniform` baseline, minus the same
grounder called in a plain loop, per query, at concurrency 1/4/16 (medians of --rounds interleaved rounds).
Fan-out: queries/s through the runner with the `vllm` grounder at --concurrency (16) against the first
server alone, then over both (each video's queries on one server: `runner.dispatch`): 64 queries (the
shared Charades clips' Charades-STA queries) over 6 videos (the two clips and four re-encoded cuts of
them), 16 frames per query, 2 warm-up queries; --rounds interleaved rounds (min / median / max), every
run from cold caches: frames and video indexes forgotten, the servers' prefix / multimodal / encoder
caches emptied (their dev-mode endpoints; the servers this bench starts have them, for --server start
yours with VLLM_SERVER_DEV_MODE=1). Within a run, later queries on a video reuse its frames and prefix,
as in a real eval.
Prints a table and writes bench/results/eval.json.
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from bench._common import cold_caches, machine, reset_server_caches, spread
from eval import runner
from grounding_agent.benchmarks.datasets import Annotation, load_charades_sta
from grounding_agent.grounders.baselines import UniformGrounder
from grounding_agent.io import write_json_atomic
from grounding_agent.types import Video

DEFAULT_GT = REPO.parent / "shared" / "data" / "charades_sta" / "charades_sta_test.txt"
SHARED_VIDEOS = REPO.parent / "shared" / "data" / "videos"
CONCURRENCY = (1, 4, 16)


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


def harness_overhead(annotations, rounds: int) -> list[dict]:
    """The runner's cost per query over a zero-latency grounder: its median wall minus the plain loop's."""
    grounder = UniformGrounder()
    bare: list[float] = []
    walls: dict[int, list[float]] = {c: [] for c in CONCURRENCY}
    for _ in range(rounds):  # interleaved: a slow spell on the host hits the loop and every concurrency
        bare.append(bare_loop(grounder, annotations))
        for c in CONCURRENCY:
            walls[c].append(timed_run(annotations, [grounder], c))
    bare_s = statistics.median(bare)
    return [
        _row(
            "harness (uniform baseline)",
            c,
            len(annotations),
            walls[c],
            overhead_s=spread(walls[c])["median"] - bare_s,
        )
        for c in CONCURRENCY
    ]


def _row(
    part: str, concurrency: int, queries: int, walls: list[float], overhead_s: float | None = None, **extra
) -> dict:
    wall = spread(walls)
    return {
        "part": part,
        "concurrency": concurrency,
        "queries": queries,
        "wall_s": wall,
        "per_query_ms": 1e3 * wall["median"] / queries,
        "overhead_per_query_ms": None if overhead_s is None else 1e3 * overhead_s / queries,
        "queries_per_s": spread([queries / w for w in walls]),
        **extra,
    }


def bench_videos(folder: Path) -> list[tuple[str, Path, list[str]]]:
    """(vid, file, queries): the two shared Charades clips and four re-encoded cuts of them (distinct
    files, so each is decoded on its own), with the clips' Charades-STA queries (from their sidecars)."""
    import json
    import subprocess

    out = []
    for clip in ("univtg_charades_Y1HGC.mp4", "timer1_charades_OHOFG.mp4"):
        src = SHARED_VIDEOS / clip
        queries = [q["query"] for q in json.loads(src.with_suffix(".json").read_text())["queries"]]
        vid = clip.removesuffix(".mp4").split("_")[-1]
        out.append((vid, src, queries))
        for i, (start_s, length_s) in enumerate(((2.0, 24.0), (5.0, 20.0))):
            cut = folder / f"{vid}_cut{i}.mp4"
            subprocess.run(
                ["ffmpeg", "-loglevel", "error", "-y", "-ss", str(start_s), "-t", str(length_s), "-i", str(src),
                 "-vf", "scale=480:-2", "-an", str(cut)],
                check=True,
            )  # fmt: skip
            out.append((cut.stem, cut, queries))
    return out


def fanout_throughput(
    base_urls: list[str], model: str | None, n_queries: int, concurrency: int, rounds: int
) -> list[dict]:
    """queries/s through the runner at `concurrency` against the first server alone, then all of them,
    in interleaved rounds, each run from cold caches (frames, indexes, the servers' prefix / multimodal /
    encoder caches): neither setting inherits what the other decoded or prefilled."""
    from grounding_agent.grounders.vllm import VLLMGrounder
    from grounding_agent.media.video import open_video

    with tempfile.TemporaryDirectory() as tmp:
        videos = bench_videos(Path(tmp))
        durations = {vid: open_video(path).duration_s for vid, path, _ in videos}
        pairs = [(vid, q) for vid, _, queries in videos for q in queries]
        # Fresh qids over the (video, query) pairs, repeated to n_queries; GT is not needed for speed.
        work = [
            Annotation(
                i,
                pairs[i % len(pairs)][0],
                pairs[i % len(pairs)][1],
                durations[pairs[i % len(pairs)][0]],
                ((0.0, 1.0),),
            )
            for i in range(n_queries)
        ]
        finder_dir = Path(tmp) / "all"
        finder_dir.mkdir()
        for vid, path, _ in videos:
            (finder_dir / f"{vid}.mp4").symlink_to(path)
        settings = (base_urls[:1], base_urls)
        walls: list[list[float]] = [[] for _ in settings]
        reset = True
        for _ in range(rounds):
            for urls, wall in zip(settings, walls):
                cold_caches()
                reset = all([reset_server_caches(u) for u in base_urls]) and reset  # every server, always
                grounders = [VLLMGrounder(u, model, max_frames=16, concurrency=concurrency) for u in urls]
                wall.append(timed_run(work, grounders, concurrency, finder_dir, warmup=2))
        if not reset:
            print("warning: server caches could not be reset (start them with VLLM_SERVER_DEV_MODE=1)")
        name = Path(grounders[0].model).name
        return [
            _row(
                f"vllm ({name}), {len(urls)} server(s)",
                concurrency,
                len(work),
                wall,
                videos=len(videos),
                server_caches_reset=reset,
            )
            for urls, wall in zip(settings, walls)
        ]


def print_table(rows: list[dict]) -> None:
    widths = {"part": -44, "conc": 4, "queries": 7, "wall s": 8, "ms/query": 9, "overhead ms": 11, "q/s": 8}
    head = " ".join(f"{name:<{-w}}" if w < 0 else f"{name:>{w}}" for name, w in widths.items())
    print(head)
    print("-" * len(head))
    for r in rows:
        over = "-" if r["overhead_per_query_ms"] is None else f"{r['overhead_per_query_ms']:.3f}"
        qps = r["queries_per_s"]
        print(
            f"{r['part']:<44} {r['concurrency']:>4} {r['queries']:>7} {r['wall_s']['median']:>8.2f} "
            f"{r['per_query_ms']:>9.3f} {over:>11} {qps['median']:>8.1f}  ({qps['min']:.1f}-{qps['max']:.1f})"
        )


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--gt", type=Path, default=DEFAULT_GT, help="charades_sta_test.txt")
    p.add_argument("--server", action="append", default=[], help="vLLM base URL (…/v1); give two for 1 vs 2")
    p.add_argument(
        "--vllm-model", help="model folder to serve with two fresh vLLM servers (instead of --server)"
    )
    p.add_argument("--model", help="served model / adapter name (default: the first served)")
    p.add_argument("--queries", type=int, default=64, help="queries per throughput measurement (default 64)")
    p.add_argument("--concurrency", type=int, default=16, help="queries in flight (default 16)")
    p.add_argument(
        "--rounds", type=int, default=3, help="interleaved rounds of every measurement (default 3)"
    )
    p.add_argument("--skip-harness", action="store_true", help="only the vLLM part")
    p.add_argument("--out", type=Path, default=REPO / "bench" / "results" / "eval.json")
    args = p.parse_args()

    rows = [] if args.skip_harness else harness_overhead(load_charades_sta(args.gt).annotations, args.rounds)
    if args.server:
        rows += fanout_throughput(args.server, args.model, args.queries, args.concurrency, args.rounds)
    elif args.vllm_model:
        from contextlib import ExitStack

        from grounding_agent.grounders.serving import VLLMServer

        with ExitStack() as stack:
            # dev mode: the cache-reset endpoints, so every run starts cold
            servers = [VLLMServer(args.vllm_model, env={"VLLM_SERVER_DEV_MODE": "1"}) for _ in range(2)]
            for s in servers:
                stack.callback(s.stop)
                s.start(timeout_s=600)
            rows += fanout_throughput(
                [s.base_url for s in servers], args.model, args.queries, args.concurrency, args.rounds
            )
    print_table(rows)
    write_json_atomic(args.out, {
        "bench": "eval", "when": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()), "rounds": args.rounds,
        "machine": machine(),
        "rows": rows,
    })  # fmt: skip
    print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
