"""Agent overhead: non-model time per query as a share of model time, and model calls per query.

Runs the agent on real Charades clips with simple and compositional queries and splits each query's wall
time into model time (grounder generation, CLIP saliency, verifier) and the rest (decoding, input
preprocessing, planning, composition, rerank/explain logic, graph overhead). Goal: the agent's own
logic <= 5 % of model time.

    .venv/bin/python bench/agent.py                       # tiny HF Qwen2.5-VL + tiny CLIP (offline)
    .venv/bin/python bench/agent.py --model Qwen/Qwen2.5-VL-7B-Instruct --saliency-model openai/clip-vit-base-patch32
    .venv/bin/python bench/agent.py --server http://127.0.0.1:8000/v1 --model NAME

Prints a table; writes bench/results/agent.json.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
from pathlib import Path

from grounding_agent.io import write_json_atomic

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
from bench._common import machine, now

VIDEOS = REPO.parent / "shared" / "data" / "videos"

# clip -> (simple queries from Charades-STA, compositional ones written from the same annotations)
QUERIES = {
    "univtg_charades_Y1HGC.mp4": (
        ["a person walks in a doorway drinking some coffee.", "person drinking a glass of water."],
        [
            "a person walks in a doorway, then drinks some coffee.",
            "person drinks a glass of water after walking through the doorway.",
        ],
    ),
    "timer1_charades_OHOFG.mp4": (
        ["person sitting down in a chair.", "a person is eating some food."],
        [
            "person sits down in a chair, then eats some food.",
            "a person eats food after sitting down at the table.",
        ],
    ),
}
MODEL_KEYS = ("grounder_model", "saliency", "verifier")


def build_agent(args):
    from grounding_agent.agent import Agent, Reranker

    model, clip = args.model, args.saliency_model
    if model is None or (clip is None and not args.no_saliency):
        from tests.assets.build_tiny_models import cached_tiny_models

        tiny = cached_tiny_models()
        model = model or str(tiny["qwen2_5_vl"])
        clip = clip or str(tiny["clip"])
    if args.server:
        from grounding_agent.grounders.vllm import VLLMGrounder

        grounder = VLLMGrounder(args.server, model, fps=args.fps, max_frames=args.max_frames)
    else:
        from grounding_agent.grounders.hf import HFGrounder

        grounder = HFGrounder(model, fps=args.fps, max_frames=args.max_frames, device="cpu")
    reranker = None
    if not args.no_saliency:
        from grounding_agent.highlights.clip import ClipSaliency

        saliency = ClipSaliency.from_pretrained(clip, cache_dir=tempfile.mkdtemp(prefix="ga-bench-emb-"))
        reranker = Reranker(saliency=saliency)
    return Agent(grounder, reranker=reranker), grounder.name


def measure(agent, video, query: str, kind: str) -> dict:
    result = agent.run(video, query)
    t = result.timings_s
    model_s = sum(t.get(k, 0.0) for k in MODEL_KEYS)
    io_s = t.get("decode", 0.0) + t.get("grounder_decode", 0.0) + t.get("grounder_preprocess", 0.0)
    non_model_s = t["total"] - model_s
    return {
        "kind": kind,
        "clip": video.path.name,
        "query": query,
        "steps": len(result.plan.steps),
        "model_calls": sum(result.model_calls.values()),
        "total_s": t["total"],
        "model_s": model_s,
        "decode_preprocess_s": io_s,
        "agent_logic_s": non_model_s - io_s,
        "non_model_share": non_model_s / model_s if model_s else float("nan"),
        "agent_logic_share": (non_model_s - io_s) / model_s if model_s else float("nan"),
    }


def summarise(rows: list[dict]) -> list[dict]:
    out = []
    for kind in ("simple", "compositional"):
        sel = [r for r in rows if r["kind"] == kind]
        out.append(
            {
                "kind": kind,
                "queries": len(sel),
                "model_calls_per_query": statistics.mean(r["model_calls"] for r in sel),
                "total_s": statistics.mean(r["total_s"] for r in sel),
                "model_s": statistics.mean(r["model_s"] for r in sel),
                "decode_preprocess_s": statistics.mean(r["decode_preprocess_s"] for r in sel),
                "agent_logic_s": statistics.mean(r["agent_logic_s"] for r in sel),
                # Shares of summed times (robust to one slow query); the per-query medians beside them.
                "non_model_share": sum(r["total_s"] - r["model_s"] for r in sel)
                / sum(r["model_s"] for r in sel),
                "agent_logic_share": sum(r["agent_logic_s"] for r in sel) / sum(r["model_s"] for r in sel),
                "agent_logic_share_median": statistics.median(r["agent_logic_share"] for r in sel),
            }
        )
    return out


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--model", help="HF id/folder (or served name with --server); default: tiny Qwen2.5-VL")
    p.add_argument("--server", help="vLLM OpenAI base URL; default: in-process HF grounder")
    p.add_argument("--saliency-model", help="CLIP id/folder; default: tiny CLIP")
    p.add_argument("--no-saliency", action="store_true", help="no CLIP rerank")
    p.add_argument("--fps", type=float, default=1.0)
    p.add_argument("--max-frames", type=int, default=8)
    p.add_argument("--repeats", type=int, default=2, help="runs per query (after one warm-up query)")
    p.add_argument("--out", type=Path, default=REPO / "bench" / "results" / "agent.json")
    args = p.parse_args(argv)

    from grounding_agent.media.video import open_video

    agent, grounder_name = build_agent(args)
    videos = {name: open_video(VIDEOS / name) for name in QUERIES}
    first = next(iter(QUERIES))
    agent.run(videos[first], QUERIES[first][1][0])  # warm-up: graph compile, prompt load, model first call

    rows = []
    for name, (simple, compositional) in QUERIES.items():
        for kind, queries in (("simple", simple), ("compositional", compositional)):
            for query in queries:
                for _ in range(args.repeats):
                    rows.append(measure(agent, videos[name], query, kind))
    summary = summarise(rows)

    header = f"{'kind':<14}{'calls/q':>8}{'total s':>9}{'model s':>9}{'dec+pre s':>10}{'agent s':>9}{'non-model %':>12}{'agent %':>9}"
    print(
        f"agent overhead — grounder {grounder_name}, {args.max_frames} frames @ {args.fps} fps, {len(rows)} runs"
    )
    print(header)
    for s in summary:
        print(
            f"{s['kind']:<14}{s['model_calls_per_query']:>8.1f}{s['total_s']:>9.3f}{s['model_s']:>9.3f}"
            f"{s['decode_preprocess_s']:>10.3f}{s['agent_logic_s']:>9.4f}{100 * s['non_model_share']:>12.1f}"
            f"{100 * s['agent_logic_share']:>9.2f}"
        )
    print("goal: agent % (planning, composition, rerank/explain logic, graph) <= 5 % of model time")

    payload = {
        "bench": "agent",
        "when": now(),
        "grounder": grounder_name,
        "fps": args.fps,
        "max_frames": args.max_frames,
        "saliency": not args.no_saliency,
        "machine": machine(),
        "summary": summary,
        "rows": rows,
    }
    write_json_atomic(args.out, payload)
    print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
