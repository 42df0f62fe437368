"""Benchmark `summarize` on a 10-minute 720p video: cold (nothing cached) and cached (shots and scores on disk).

    .venv/bin/python bench/summarize.py                  # bench/edit.py's 10-min 720p video (generated once)
    .venv/bin/python bench/summarize.py --clip DIR       # with a CLIP model (e.g. the tiny random-weight one)

Each round starts from an empty process state (decoder index, frame cache and file hashes forgotten, as in a
fresh process). Cold: an empty cache folder, so the shots (PySceneDetect over frames at 5 fps), the generic
highlight signals (motion, scene, audio, arousal, applause, ... and CLIP with --clip) and the CLIP frame
embeddings are all computed. Cached: the same folder again, so the shots and the per-clip scores are read
back (with --clip, CLIP's own frame-embedding cache is warm too). Reports min / median / max wall seconds,
the plan (kept frames vs the budget's) and the OTIO export's time; writes bench/results/summarize.json.
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from bench._common import cold_caches, machine, now, spread
from bench.edit import CACHE, make_video
from grounding_agent.io import write_json_atomic


def fresh_process_state() -> None:
    """Forget what a new process would not have: decoded frames, video indexes, file hashes."""
    from grounding_agent.utils import cache

    cold_caches()
    cache._file_digests.clear()


def one_run(video_path: Path, saliency) -> tuple[float, object]:
    from grounding_agent.summaries import summarize

    fresh_process_state()
    t0 = time.perf_counter()
    plan = summarize(video_path, saliency=saliency)
    return time.perf_counter() - t0, plan


def run(minutes: float, rounds: int, clip_dir: str | None) -> dict:
    from grounding_agent.edit import export
    from grounding_agent.media.video import open_video
    from grounding_agent.summaries.keyshots import budget_frames

    video_path = make_video(minutes, CACHE / f"edit_{minutes:g}min_720p.mp4")
    video = open_video(video_path)
    cold, cached, plans = [], [], []
    with tempfile.TemporaryDirectory(prefix="ga-bench-summary-") as work:
        for r in range(rounds):
            os.environ["GROUNDING_AGENT_CACHE"] = str(Path(work) / f"cache{r}")  # empty: cold
            saliency = _saliency(clip_dir)
            seconds, plan = one_run(video_path, saliency)
            cold.append(seconds)
            for _ in range(rounds):
                seconds, plan = one_run(video_path, saliency)
                cached.append(seconds)
            plans.append([(s.start_frame, s.end_frame) for s in plan.kept])
            print(
                f"round {r + 1}/{rounds}: cold {cold[-1]:.1f} s, cached {cached[-1]:.2f} s", file=sys.stderr
            )
        t0 = time.perf_counter()
        export(plan, Path(work) / "summary.otio")
        export_s = time.perf_counter() - t0
    if any(p != plans[0] for p in plans[1:]):
        raise SystemExit("the plans differ between rounds: summarize is not deterministic")
    return {
        "bench": "summarize", "when": now(), "rounds": rounds,
        "video": {"path": str(video_path), "duration_s": video.duration_s, "frames": video.num_frames,
                  "size": f"{video.width}x{video.height}", "fps": video.avg_fps},
        "clip": clip_dir or None,
        "clip_note": "CLIP saliency with this model" if clip_dir else "no CLIP: motion, scene, audio signals",
        "plan": {"instruction": plan.instruction, "kept_s": plan.kept_s, "kept_frames": plan.kept_frames,
                 "budget_frames": budget_frames(plan.grid, 0.15 * video.duration_s),
                 "kept_segments": len(plan.kept), "notes": plan.notes},
        "seconds": {"cold": spread(cold), "cached": spread(cached), "export .otio": round(export_s, 3)},
        "seconds_all": {"cold": [round(x, 3) for x in cold], "cached": [round(x, 3) for x in cached]},
        "goal": "cached <= 10 s for 10 minutes",
        "machine": machine(),
    }  # fmt: skip


def _saliency(clip_dir: str | None):
    if not clip_dir:
        return None
    from grounding_agent.highlights.clip import ClipSaliency

    return ClipSaliency.from_pretrained(clip_dir, backend="torch")


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--minutes", type=float, default=10.0, help="video length (default 10)")
    ap.add_argument("--rounds", type=int, default=2, help="cold runs; each followed by as many cached ones")
    ap.add_argument("--clip", metavar="DIR", help="a CLIP model folder (default: no CLIP)")
    ap.add_argument("--out", type=Path, default=REPO / "bench" / "results" / "summarize.json")
    args = ap.parse_args()
    result = run(args.minutes, args.rounds, args.clip)
    for stage, x in result["seconds"].items():
        print(f"{stage:14s} {x if isinstance(x, float) else x['median']:9.2f} s")
    write_json_atomic(args.out, result)
    print(f"wrote {args.out}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
