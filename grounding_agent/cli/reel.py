"""`grounding-agent reel`: an edit across clips - from a library search, or from clips named by hand.

    grounding-agent reel "every moment where she laughs" --library DIR --total-s 30 --export reel.otio --render reel.mp4
    grounding-agent reel --clip a.mp4@1-2.5 --clip b.mp4@0:03-0:05 --export reel.edl --render reel.mp4 --size 1280x720

Exports by suffix: .otio .edl .xml (FCP7) .fcpxml .json, each source its own reel / asset. The render is
normalised to the first source's size and rate, or --size / --fps. Every output is checked before any work;
all of them are written, or none.
"""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

from grounding_agent.cli._common import positive_float, positive_int, print_json
from grounding_agent.defaults import EDIT, REELS
from grounding_agent.errors import EditError


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("query", nargs="?", help="what the clips show or say (searched in --library)")
    src = p.add_argument_group("sources")
    src.add_argument("--library", metavar="DIR|URL", help="the library to search (grounding-agent index)")
    src.add_argument(
        "--clip", action="append", default=[], metavar="VIDEO@START-END",
        help="a clip by hand, e.g. talk.mp4@12.5-20 or talk.mp4@0:12-0:20; repeatable, played in order",
    )  # fmt: skip
    src.add_argument(
        "--total-s", type=positive_float, default=REELS.total_s,
        help=f"longest reel made from search hits, in seconds (default {REELS.total_s:g})",
    )  # fmt: skip
    src.add_argument(
        "--max-clips", type=positive_int, default=REELS.max_clips,
        help=f"most clips taken from search hits (default {REELS.max_clips})",
    )  # fmt: skip
    src.add_argument(
        "--order", choices=["source", "score"], default="source",
        help="play hits by video and time (default) or best first",
    )  # fmt: skip
    out = p.add_argument_group("outputs")
    out.add_argument(
        "--export", action="append", default=[], metavar="FILE",
        help="write the reel (.otio .edl .xml .fcpxml .json); repeatable",
    )  # fmt: skip
    out.add_argument("--render", metavar="OUT.mp4", help="render the reel with ffmpeg")
    out.add_argument("--size", metavar="WxH", help="render size (default: the first source's)")
    out.add_argument(
        "--fps", metavar="RATE", help="record rate, e.g. 25 or 30000/1001 (default: the first source's)"
    )
    out.add_argument("--preset", default=EDIT.preset, help=f"libx264 preset (default {EDIT.preset})")
    out.add_argument(
        "--crf", type=positive_int, default=EDIT.crf, help=f"libx264 CRF of the render (default {EDIT.crf})"
    )
    out.add_argument("--json", action="store_true", help="print the reel as JSON")
    out.add_argument("--dry-run", action="store_true", help="make the reel and print it; write nothing")


def run(args: argparse.Namespace) -> int:
    from grounding_agent.edit.reel import parse_rate, parse_size

    rate = parse_rate(args.fps) if args.fps else None
    size = parse_size(args.size) if args.size else None
    _check_outputs(args)
    reel = _reel(args, rate, size)
    outputs = {} if args.dry_run else _write(args, reel)
    if args.json:
        print_json({**reel.to_dict(), "outputs": outputs, "dry_run": bool(args.dry_run)})
    else:
        print(_human(reel, outputs))
    return 0


def _check_outputs(args: argparse.Namespace) -> None:
    """Suffixes and folders before any work: a bad path costs nothing."""
    from grounding_agent.edit.paths import VIDEO_SUFFIXES
    from grounding_agent.edit.reel_exports import REEL_EXPORTS
    from grounding_agent.io import refuse_inputs

    if bool(args.clip) == bool(args.library):
        raise EditError("give the clips: --library DIR with a query, or --clip VIDEO@START-END (not both)")
    if args.library and not (args.query or "").strip():
        raise EditError("--library needs a query: what the clips show or say, e.g. 'she laughs'")
    if args.clip and args.query:
        raise EditError("a query searches --library; with --clip leave it out")
    for path in args.export:
        if Path(path).suffix.lower() not in REEL_EXPORTS:
            raise EditError(f"{path}: a reel exports to {', '.join(REEL_EXPORTS)}")
    if args.render and Path(args.render).suffix.lower() not in VIDEO_SUFFIXES:
        raise EditError(f"{args.render}: render to one of {', '.join(VIDEO_SUFFIXES)}")
    outputs = [("--export", p) for p in args.export] + [("--render", args.render)]
    refuse_inputs(outputs, [("a clip", c.rpartition("@")[0]) for c in args.clip if "@" in c])


def _reel(args: argparse.Namespace, rate: Any, size: Any) -> Any:
    from grounding_agent.edit.reel import Reel

    if args.clip:
        return Reel(_clips(args.clip), rate, size)
    from grounding_agent.library import Library

    library = Library(args.library)
    hits = library.search(args.query, k=REELS.search_k)
    return Reel.from_hits(hits, total_s=args.total_s, max_clips=args.max_clips, order=args.order, rate=rate,
                          size=size)  # fmt: skip


def _clips(specs: list[str]) -> list[Any]:
    from grounding_agent.edit.parse_numbers import parse_time
    from grounding_agent.edit.reel import ReelClip
    from grounding_agent.edit.timeline import FrameGrid
    from grounding_agent.media.video import open_video

    clips = []
    for spec in specs:
        path, at, span = spec.rpartition("@")
        start, dash, end = span.partition("-")
        if not (path and at and dash):
            raise EditError(f"--clip {spec!r}: use VIDEO@START-END, e.g. talk.mp4@12.5-20")
        video = open_video(path)
        grid = FrameGrid.from_video(video)
        a, b = grid.frames(parse_time(start), parse_time(end))
        if b <= a:
            raise EditError(f"--clip {spec!r}: the clip ends before it starts (or is shorter than a frame)")
        clips.append(ReelClip(video, grid, a, b, f"--clip {spec}"))
    return clips


def _write(args: argparse.Namespace, reel: Any) -> dict[str, Any]:
    """Every export and the render, all or nothing."""
    from dataclasses import replace

    from grounding_agent.edit.reel_exports import export_reel
    from grounding_agent.edit.reel_render import render_reel
    from grounding_agent.io import atomic_paths

    targets = [*args.export, *([args.render] if args.render else [])]
    outputs: dict[str, Any] = {}
    with atomic_paths(targets) as temps:
        tmp = dict(zip(targets, temps, strict=True))
        for path in args.export:
            export_reel(reel, tmp[path])
            outputs.setdefault("exports", []).append(str(path))
        if args.render:
            result = render_reel(reel, tmp[args.render], preset=args.preset, crf=args.crf)
            outputs["render"] = replace(result, path=Path(args.render)).to_dict()
    return outputs


def _human(reel: Any, outputs: dict[str, Any]) -> str:
    from grounding_agent.edit.timeline import clock

    w, h = reel.record_size
    lines = [f"reel: {len(reel.clips)} clips from {len(reel.sources)} videos, {reel.duration_s:.2f} s "
             f"at {float(reel.record_rate):g} fps, {w}x{h}"]  # fmt: skip
    for i, clip in enumerate(reel.clips, 1):
        lines.append(
            f"  {i:2d}. {Path(clip.video.path).name} {clock(clip.start_s)}-{clock(clip.end_s)}  {clip.reason}"
        )
    lines += [f"note: {n}" for n in reel.notes]
    lines += [f"wrote {p}" for p in outputs.get("exports", [])]
    if "render" in outputs:
        lines.append(f"rendered {outputs['render']['path']} ({outputs['render']['rendered_s']:.2f} s)")
    return "\n".join(lines)
