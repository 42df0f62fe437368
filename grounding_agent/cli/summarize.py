"""`grounding-agent summarize VIDEO [--seconds S | --ratio R]`: a keyshot summary, exported like any edit.

    grounding-agent summarize talk.mp4                              # 15 % of the video, plan printed
    grounding-agent summarize talk.mp4 --seconds 30 --export s.otio --render s.mp4
    grounding-agent summarize talk.mp4 --ratio 10% --asr-model DIR  # cuts at sentence ends, never mid-word
    grounding-agent summarize talk.mp4 --out summaries/             # summaries/talk.summary.{otio,json}

The outputs (--export, --render, --captions, --thumbnails, ...) are `edit`'s, written by the same code:
checked before any work, all or nothing. A budget of 0, negative, over 100 % or not shorter than the
video, or a --head folder that is not a highlight head, is one `error:` line (exit 2) and writes nothing.
"""

from __future__ import annotations

import argparse
import functools
from pathlib import Path
from typing import Any

from grounding_agent.cli._common import finite_float, nonneg_float, print_json, text_arg
from grounding_agent.cli.edit import (
    add_output_arguments,
    check_outputs,
    check_short_form,
    load_saliency,
    load_transcript,
    plan_text,
    refusal_reason,
    write_outputs,
)
from grounding_agent.cli.options import add_asr_options
from grounding_agent.defaults import SUMMARY
from grounding_agent.errors import ConfigError, HeadError, SummaryError


def ratio_arg(text: str) -> float:
    """'0.15' or '15%' -> 0.15 (the range is checked by the library, in its own words)."""
    text = text.strip()
    if text.endswith("%"):
        return finite_float(text[:-1]) / 100.0
    return finite_float(text)


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("video", help="video file")
    budget = p.add_mutually_exclusive_group()
    budget.add_argument("--seconds", type=finite_float, help="the summary's length in seconds")
    budget.add_argument(
        "--ratio",
        type=ratio_arg,
        help=f"the summary's length as a share of the video: 0.15 or 15%% (default {SUMMARY.ratio:g})",
    )
    s = p.add_argument_group("signals")
    s.add_argument("--saliency-model", metavar="DIR", help="CLIP folder or hub id: CLIP saliency as a signal")
    s.add_argument(
        "--title", type=text_arg, help="the video's title: a CLIP query signal (needs --saliency-model)"
    )
    s.add_argument("--head", metavar="DIR", help="a learned highlight head folder (needs --saliency-model)")
    s.add_argument(
        "--diversity",
        type=nonneg_float,
        default=SUMMARY.diversity,
        help=f"penalty per unit of likeness to a more important shot (default {SUMMARY.diversity:g})",
    )
    s.add_argument(
        "--no-cache", action="store_true", help="neither read nor write the cached shots and scores"
    )
    s.add_argument(
        "--transcript",
        metavar="FILE.json",
        help="what is said, as `grounding-agent transcribe --json` writes it (else --asr-model transcribes)",
    )
    add_asr_options(p)
    add_output_arguments(p)
    p.add_argument("--out", metavar="DIR", help="also write DIR/STEM.summary.otio and .json (DIR must exist)")


def run(args: argparse.Namespace) -> int:
    from grounding_agent.media.video import open_video
    from grounding_agent.summaries import budget_s, summarize

    _add_out_folder(args)
    check_short_form(args)
    video = open_video(args.video)
    budget_s(video.duration_s, args.seconds, args.ratio)  # a bad budget costs nothing and writes nothing
    check_outputs(args, video)
    transcript = functools.cache(
        lambda: load_transcript(args, video)
    )  # once, for the summary and the captions
    saliency = load_saliency(args)
    plan = summarize(
        video,
        seconds=args.seconds,
        ratio=args.ratio,
        transcript=transcript(),
        saliency=saliency,
        title=args.title,
        extra_clip_scores=_head_scores(args, saliency, video),
        diversity=args.diversity,
        cache=not args.no_cache,
    )
    problem = refusal_reason(plan)
    if problem is not None:  # a budget below one frame of any shot, say: nothing to write
        raise SummaryError(f"{problem}; nothing was written")
    outputs: dict[str, Any] = {}
    if not args.dry_run:
        outputs = write_outputs(args, plan, captions=transcript() if args.captions else None)
    if args.json:
        print_json({**plan.to_dict(), "outputs": outputs, "dry_run": bool(args.dry_run)})
    else:
        print(plan_text(plan, outputs, args.dry_run))
        print(why(plan))
    return 0


def _add_out_folder(args: argparse.Namespace) -> None:
    """--out DIR: the OTIO timeline and the plan's JSON in DIR, named after the video."""
    if not args.out:
        return
    folder = Path(args.out)
    if not folder.is_dir():
        raise ConfigError(f"--out {args.out}: no such folder; create it first, or use --export FILE")
    stem = Path(args.video).stem
    args.export = [*args.export, str(folder / f"{stem}.summary.otio"), str(folder / f"{stem}.summary.json")]


def _head_scores(args: argparse.Namespace, saliency: Any, video: Any) -> dict[str, Any] | None:
    """--head DIR: the head's score per 2-s clip (on --saliency-model's CLIP features)."""
    if not args.head:
        return None
    from grounding_agent.highlights.heads import head_scores, load_head

    head = load_head(args.head)
    if saliency is None:
        raise HeadError(f"--head {args.head} scores CLIP features: pass --saliency-model {head.clip_model}")
    return {"head": head_scores(head, saliency, video.path, text=args.title)}


def why(plan: Any) -> str:
    """Each kept segment and the evidence behind it (the shots, then the signals that lift them)."""
    lines = ["why:"]
    for seg in plan.kept:
        lines.append(f"  {seg.start_s:8.2f} - {seg.end_s:8.2f} s")
        lines += [f"    {e.kind}: {e.text}" for e in seg.evidence]
    return "\n".join(lines)
