"""`grounding-agent ground VIDEO "QUERY"`: when does the query happen in the video?

    grounding-agent ground clip.mp4 "person opens the door" --backend hf --model Qwen/Qwen2.5-VL-7B-Instruct
    grounding-agent ground clip.mp4 "person opens the door" --server http://127.0.0.1:8000/v1
    grounding-agent ground clip.mp4 "..." --json     # a Prediction (schemas/prediction.schema.json)
    grounding-agent ground clip.mp4 "X, then Y" --explain   # compositional: the agent plans and composes

A query the rule planner splits into several sub-events goes through the agent (`--agent` / `--no-agent`
override); its JSON adds `plan`, `steps` and, with `--explain`, `explanations`.
"""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import TYPE_CHECKING

from grounding_agent.cli._common import (
    check_output_path,
    check_plot_path,
    command_inputs,
    fmt_s,
    print_json,
    text_arg,
)
from grounding_agent.cli.options import (
    add_backend_options,
    build_grounder,
    check_backend,
    format_agent_output,
    run_agent,
    sampling_options,
    wants_agent,
)
from grounding_agent.cli.terminal import clean
from grounding_agent.grounders.base import BaseGrounder, Grounding
from grounding_agent.types import Video

if TYPE_CHECKING:
    from grounding_agent.grounders.prefetch import FramePrefetch


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("video", help="video file")
    p.add_argument("query", type=text_arg, help="what to find, e.g. 'the person opens the door'")
    add_backend_options(p)
    p.add_argument("--qid", default="0", help="query id written into the JSON prediction")
    p.add_argument("--json", action="store_true", help="print a Prediction as JSON")
    p.add_argument(
        "--timeline", type=Path, help="write a PNG timeline of the moments and the plan's sub-events"
    )


def run(args: argparse.Namespace) -> int:
    from grounding_agent.media.video import open_video

    check_backend(args, args.query)  # missing extras / model folders: before any decoding or loading
    if args.timeline is not None:
        from grounding_agent.utils import extras

        check_output_path(args.timeline, "--timeline", inputs=tuple(command_inputs(args)))
        extras.require_spec(extras.PLOT, "--timeline")
        check_plot_path(args.timeline, "--timeline")
    video = open_video(args.video)
    agent = wants_agent(args, args.query)
    prefetch = None if agent else _prefetch(args, video)
    grounder = build_grounder(args)
    if agent:
        out = run_agent(args, grounder, video, args.query, qid=args.qid)
        out.update(vid=Path(args.video).stem, duration_s=video.duration_s)
        _timeline(args, out, video)
        print_json(out) if args.json else print(clean(format_agent_output(out)))
        return 0
    if prefetch is not None:
        grounding = grounder.ground_prefetched(video, args.query, prefetch, top_k=args.top_k)
    else:
        grounding = grounder.ground(video, args.query, top_k=args.top_k)
    prediction = grounding.to_prediction(args.qid, Path(args.video).stem, args.query)
    prediction.extra["duration_s"] = video.duration_s
    if grounding.info.get("absent"):  # looked and not found: empty windows and the typed reason
        prediction.extra["absent"] = grounding.info["absent"]
    _timeline(args, prediction.to_dict(), video)
    if args.json:
        print_json(prediction.to_dict())
    else:
        print(clean(_human(video, args.query, grounder, grounding)))
    return 0


def _prefetch(args: argparse.Namespace, video: Video) -> FramePrefetch | None:
    """--backend vllm on one query: the frames `ground` will send, decoded and encoded in a worker thread
    while `build_grounder` imports the HTTP client and asks the server for its models."""
    if args.backend != "vllm" or getattr(args, "asr_model", None) or getattr(args, "ocr", False):
        return None  # speech / on-screen text wrap the grounder: it samples on its own
    from grounding_agent.grounders.prefetch import FramePrefetch

    return FramePrefetch(video, **sampling_options(args))


def _timeline(args: argparse.Namespace, prediction: dict, video: Video) -> None:
    """--timeline: the answer's moments and each sub-event's candidates, drawn from the Prediction dict."""
    if args.timeline is None:
        return
    from grounding_agent.highlights.plots import save_timeline
    from grounding_agent.types import Moment

    def moments(windows: list) -> list[Moment]:
        return [Moment(float(s), float(e), float(c)) for s, e, c in windows]

    steps = [
        (f"{s['id']}: {s['text'][:24]}", moments(s.get("candidates", [])))
        for s in prediction.get("steps", [])
    ]
    save_timeline(
        args.timeline,
        video.duration_s,
        moments(prediction["pred_relevant_windows"]),
        steps=steps,
        title=f'"{args.query}"',
    )


def _human(video: Video, query: str, grounder: BaseGrounder, grounding: Grounding) -> str:
    lines = [f"{video.path.name} ({video.duration_s:.2f} s), {grounder.name}", f'query: "{query}"']
    for rank, m in enumerate(grounding.moments, 1):
        lines.append(f"  {rank}. {fmt_s(m.start_s)} -> {fmt_s(m.end_s)}   score {m.score:.3f}")
        if (m.explanation or {}).get("said"):  # a speech sub-query answered from the transcript
            lines.append(f'     said: "{m.explanation["said"]}"')
    if grounding.info.get("absent"):  # a quote not said / a text not shown: one line that says so
        what = grounding.info.get("searched", query)
        lines.append(f'  not {grounding.info["absent"]}: "{what}" ({grounding.info.get("note", "no match")})')
    if grounding.info.get("fallback"):
        lines.append("  (no answer could be read: the whole video is returned with score 0)")
    for failure in grounding.failures:
        lines.append(f"  unreadable answer ({failure.reason}): {failure.text[:120]!r}")
    timings = ", ".join(f"{k} {v:.2f} s" for k, v in grounding.timings_s.items())
    if timings:
        lines.append(f"  time: {timings}")
    return "\n".join(lines)
