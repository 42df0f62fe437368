"""Benchmark the grounders on the tiny Qwen2.5-VL: latency split, HF vs vLLM, first vs second query.

    .venv/bin/python bench/grounder.py                       # starts its own vLLM CPU server
    .venv/bin/python bench/grounder.py --server http://127.0.0.1:8000/v1 --model NAME

For each real Charades clip and each backend (transformers in-process, vLLM over the OpenAI API):
- query 1 on a cold video (frame cache, video index, encoded images and the server's prefix /
  multimodal / encoder caches cleared): open + decode + preprocess + model;
- query 2, a different query on the same video: frames come from the frame cache, the encoded images
  from the grounder's cache, and the server reuses the shared video prefix (prefix caching).
Reported per query: decode / preprocess / model seconds and end-to-end wall time (median over
--repeats), the vLLM prefix-cache hit tokens of query 2 (from the server's /metrics), and the
end-to-end speed-up of query 2 over query 1 (goal >= 5x). "q2-nopfx" repeats query 2 after emptying
the server's caches (frame cache only), which isolates what the prefix cache saves.
Prints a table, writes bench/results/grounder.json. The tiny model's compute is negligible, so this
measures the pipeline around the model; with a real 7B model the prefill share, which the prefix
cache removes, is far larger.
"""

from __future__ import annotations

import argparse
import json
import re
import statistics
import sys
import tempfile
import time
from pathlib import Path

from grounding_agent.defaults import SERVED_SAMPLING
from grounding_agent.io import write_json_atomic

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from bench._common import cold_caches, machine, reset_server_caches

CLIPS = ["univtg_charades_Y1HGC.mp4", "timer1_charades_OHOFG.mp4"]
QUERIES = ("person opens the door", "person sits down on the sofa")
STAGES = ("open", "decode", "preprocess", "model")


def prefix_cache_counters(base_url: str) -> dict[str, float]:
    """vLLM's prefix-cache (and multimodal-cache) counters from /metrics: name -> value."""
    import httpx

    text = httpx.get(base_url.removesuffix("/v1") + "/metrics", timeout=10).text
    out: dict[str, float] = {}
    for name in ("prefix_cache_queries", "prefix_cache_hits", "mm_cache_queries", "mm_cache_hits"):
        values = re.findall(rf"^vllm:{name}_total(?:{{[^}}]*}})? ([0-9.eE+]+)$", text, re.MULTILINE)
        out[name] = sum(float(v) for v in values)
    return out


def one_query(grounder, clip: Path, query: str) -> dict[str, float]:
    from grounding_agent.media.video import open_video

    t0 = time.perf_counter()
    video = open_video(clip)
    opened = time.perf_counter() - t0
    result = grounder.ground(video, query)
    total = time.perf_counter() - t0
    assert all(0 <= m.start_s <= m.end_s <= video.duration_s for m in result.moments)
    usage = result.info.get("usage", {})
    return {
        "open": opened,
        **{k: result.timings_s.get(k, 0.0) for k in STAGES[1:]},
        "e2e": total,
        "prompt_tokens": usage.get("prompt_tokens", 0),
        "completion_tokens": usage.get("completion_tokens", 0),
    }


def bench_backend(name: str, grounder, clips: list[Path], repeats: int, base_url: str | None) -> list[dict]:
    rows = []
    for clip in clips:
        runs: dict[str, list[dict[str, float]]] = {"q1": [], "q2": []}
        if base_url:
            runs["q2-nopfx"] = []  # q2 again after emptying the server's caches: frame cache only
        hits: list[float] = []
        for _ in range(repeats):
            cold_caches()
            if hasattr(grounder, "_encoded"):
                grounder._encoded.clear()
            if base_url and not reset_server_caches(base_url):
                print("warning: server caches could not be reset (start it with VLLM_SERVER_DEV_MODE=1)")
            runs["q1"].append(one_query(grounder, clip, QUERIES[0]))
            before = prefix_cache_counters(base_url) if base_url else None
            runs["q2"].append(one_query(grounder, clip, QUERIES[1]))
            if before is not None:
                after = prefix_cache_counters(base_url)
                hits.append(after["prefix_cache_hits"] - before["prefix_cache_hits"])
                reset_server_caches(base_url)
                runs["q2-nopfx"].append(one_query(grounder, clip, QUERIES[1]))
        for q, measurements in runs.items():
            row = {"backend": name, "clip": clip.name, "query": q}
            keys = (*STAGES, "e2e", "prompt_tokens", "completion_tokens")
            row.update({k: statistics.median(m[k] for m in measurements) for k in keys})
            if q == "q2" and hits:
                row["prefix_cache_hit_tokens"] = statistics.median(hits)
            rows.append(row)
        by_query = {r["query"]: r for r in rows[-len(runs) :]}
        for q in runs:
            if q != "q1":
                e2e = by_query[q]["e2e"]
                by_query[q]["speedup_vs_q1"] = by_query["q1"]["e2e"] / e2e if e2e > 0 else float("inf")
    return rows


def print_table(rows: list[dict]) -> None:
    stages = "".join(f"{k:>11}" for k in (*STAGES, "e2e"))
    head = f"{'backend':<10}{'clip':<28}{'q':<9}{stages}{'hits':>8}{'speedup':>9}"
    print(head)
    print("-" * len(head))
    for r in rows:
        cells = "".join(f"{r[k] * 1000:>9.1f}ms" for k in (*STAGES, "e2e"))
        hits = f"{r['prefix_cache_hit_tokens']:>8.0f}" if "prefix_cache_hit_tokens" in r else f"{'':>8}"
        speed = f"{r['speedup_vs_q1']:>8.1f}x" if "speedup_vs_q1" in r else ""
        print(f"{r['backend']:<10}{r['clip']:<28}{r['query']:<9}{cells}{hits}{speed}")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--server", help="use a running vLLM server (default: start one on the tiny model)")
    parser.add_argument("--model", help="served model name on --server (default: the first served)")
    parser.add_argument("--fps", type=float, default=SERVED_SAMPLING.fps)
    parser.add_argument("--max-frames", type=int, default=SERVED_SAMPLING.max_frames)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--out", default=str(REPO / "bench" / "results" / "grounder.json"))
    args = parser.parse_args()

    from grounding_agent.grounders.hf import HFGrounder
    from grounding_agent.grounders.serving import VLLMServer
    from grounding_agent.grounders.vllm import VLLMGrounder
    from tests.assets.build_tiny_models import cached_tiny_models

    tiny = cached_tiny_models()
    clips = [REPO.parent / "shared" / "data" / "videos" / c for c in CLIPS]
    sampling = {"fps": args.fps, "max_frames": args.max_frames}
    rows: list[dict] = []

    for mode in ("video", "images"):
        hf = HFGrounder(str(tiny["qwen2_5_vl"]), mode=mode, max_new_tokens=16, **sampling)
        rows += bench_backend(f"hf-{mode}", hf, clips, args.repeats, None)
        del hf

    server = None
    if args.server:
        base_url = args.server
    else:
        server = VLLMServer(
            tiny["qwen2_5_vl"],
            served_model_name="tiny-qwen2.5-vl",
            limit_mm_per_prompt={"image": args.max_frames, "video": 1},
            log_path=Path(tempfile.gettempdir()) / "bench-grounder-vllm.log",
            env={"VLLM_SERVER_DEV_MODE": "1"},  # cache-reset endpoints, so every q1 starts cold
        )
        print(f"starting vLLM (log {server.log_path}) ...", flush=True)
        server.start(timeout_s=600)
        base_url = server.base_url
    try:
        # Structured output: the answer is the ~15-token span a trained grounder writes, not 24 tokens of
        # noise from the random model (generation time is not what the prefix cache can save).
        grounder = VLLMGrounder(base_url, args.model, max_tokens=24, structured=True, **sampling)
        rows += bench_backend("vllm", grounder, clips, args.repeats, base_url)
    finally:
        if server is not None:
            server.stop()

    print_table(rows)
    vllm_speedups = [r["speedup_vs_q1"] for r in rows if r["backend"] == "vllm" and r["query"] == "q2"]
    summary = {
        "vllm_min_speedup_q2_vs_q1": min(vllm_speedups),
        "goal_speedup": 5.0,
        "goal_met": min(vllm_speedups) >= 5.0,
    }
    print(json.dumps(summary))
    result = {
        "bench": "grounder",
        "when": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "machine": machine(),
        "settings": {**sampling, "repeats": args.repeats, "model": "tiny qwen2_5_vl (random weights)"},
        "rows": rows,
        "summary": summary,
    }
    out = Path(args.out)
    write_json_atomic(out, result)
    print(f"wrote {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
