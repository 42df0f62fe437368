"""`grounding-agent probe VIDEO`: metadata and the frames (with their real timestamps) a sampling would take.

grounding-agent probe clip.mp4                      # metadata only
grounding-agent probe clip.mp4 --fps 1 --json       # + sampled indices and timestamps, as JSON
grounding-agent probe clip.mp4 --fps 2 --max-frames 32 --start 10 --end 40 --max-pixels 200704 --decode
"""

from __future__ import annotations

import argparse
import time
from typing import Any

from grounding_agent.cli._common import fmt_s, fps_float, frames_int, nonneg_float, positive_int, print_json
from grounding_agent.errors import ConfigError
from grounding_agent.media.decode import sample_frames
from grounding_agent.media.frame_plan import FramePlan, plan_frames
from grounding_agent.media.video import open_video


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("video", help="video file")
    p.add_argument("--fps", type=fps_float, help="sample this many frames per second of video")
    p.add_argument(
        "--max-frames", type=frames_int, help="at most this many frames (lowers the rate if needed)"
    )
    p.add_argument("--start", type=nonneg_float, dest="start_s", metavar="S", help="window start, seconds")
    p.add_argument("--end", type=nonneg_float, dest="end_s", metavar="E", help="window end, seconds")
    p.add_argument("--max-pixels", type=positive_int, help="resize so that width * height <= this")
    p.add_argument(
        "--keyframes-only",
        action="store_true",
        help="take the keyframe nearest each target (cheap coarse pass)",
    )
    p.add_argument(
        "--decode", action="store_true", help="also decode the sampled frames (checks they decode; times it)"
    )
    p.add_argument("--json", action="store_true", help="print JSON instead of text")


def run(args: argparse.Namespace) -> int:
    sampling = args.fps is not None or args.max_frames is not None
    if not sampling and (args.start_s, args.end_s, args.max_pixels, args.decode, args.keyframes_only) != (
        None, None, None, False, False,
    ):  # fmt: skip
        raise ConfigError(
            "--start/--end/--max-pixels/--decode/--keyframes-only describe a sampling: add --fps and/or --max-frames"
        )
    video = open_video(args.video)
    report: dict[str, Any] = {"video": video.to_dict(), "sampling": None}
    if sampling:
        kwargs = {
            "fps": args.fps,
            "max_frames": args.max_frames,
            "start_s": args.start_s,
            "end_s": args.end_s,
            "max_pixels": args.max_pixels,
            "keyframes_only": args.keyframes_only,
        }
        plan = plan_frames(video, **kwargs)
        report["sampling"] = _plan_dict(plan, args.max_frames)
        if args.decode:
            t0 = time.perf_counter()
            sample_frames(video, **kwargs)
            report["sampling"]["decode_s"] = round(time.perf_counter() - t0, 3)
    if args.json:
        print_json(report)
    else:
        _print_text(report)
    return 0


def _plan_dict(plan: FramePlan, max_frames: int | None) -> dict[str, Any]:
    return {
        "requested_fps": plan.requested_fps,
        "max_frames": max_frames,
        "fps": plan.fps,
        "window_s": list(plan.window_s),
        "frame_size": list(plan.frame_size),
        "num_frames": len(plan.indices),
        "indices": plan.indices.tolist(),
        "timestamps_s": [round(float(t), 6) for t in plan.timestamps_s],
    }


def _print_text(report: dict[str, Any]) -> None:
    v = report["video"]
    print(v["path"])
    print(f"  duration  {fmt_s(v['duration_s'])}")
    print(f"  frames    {v['num_frames']} ({v['avg_fps']:.3f} fps average)")
    print(f"  size      {v['width']}x{v['height']}")
    s = report["sampling"]
    if s is None:
        print("(give --fps and/or --max-frames to see which frames a sampling takes)")
        return
    asked = (
        ""
        if s["requested_fps"] is None or abs(s["fps"] - s["requested_fps"]) < 1e-9
        else f", asked {s['requested_fps']:g}"
    )
    start, end = s["window_s"]
    print(
        f"sampled {s['num_frames']} frames at {s['fps']:.3f} fps{asked}, window {start:.2f}-{end:.2f} s, "
        f"{s['frame_size'][0]}x{s['frame_size'][1]} each"
    )
    if "decode_s" in s:
        print(f"  decoded in {s['decode_s']:.2f} s")
    print("  timestamps_s " + " ".join(f"{t:.3f}" for t in s["timestamps_s"]))
