"""`grounding-agent transcribe VIDEO --asr-model DIR`: what is said, with word times (Whisper + VAD, cached).

grounding-agent transcribe talk.mp4 --asr-model ~/.cache/grounding-agent/whisper-base-1.0.0-1.0.0
grounding-agent transcribe talk.mp4 --asr-model DIR --srt talk.srt --vtt talk.vtt
grounding-agent transcribe talk.mp4 --asr-model DIR --json            # segments, words, VAD regions
grounding-agent transcribe talk.mp4 --asr-model DIR --search "let's go"   # where a quote is said
"""

from __future__ import annotations

import argparse
import contextlib
import sys
from typing import Any

from grounding_agent.cli._common import (
    check_output_path,
    command_inputs,
    positive_float,
    print_json,
    text_arg,
    top_k_int,
)
from grounding_agent.cli.terminal import CleanWriter
from grounding_agent.defaults import COMMANDS, MEDIA


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("video", help="video (or audio) file")
    from grounding_agent.cli.options import add_asr_options

    add_asr_options(p, required=True)
    p.add_argument("--srt", metavar="F", help="also write the segments as SRT subtitles to F")
    p.add_argument("--vtt", metavar="F", help="also write the segments as WebVTT subtitles to F")
    p.add_argument(
        "--search",
        type=text_arg,
        metavar="QUOTE",
        help="also say where QUOTE is said (fuzzy, the matcher `edit` uses: $49 = forty nine dollars, colour = color, it's = it is)",
    )
    p.add_argument(
        "--top-k",
        type=top_k_int,
        default=COMMANDS.search_top_k,
        help=f"matches to show for --search (default {COMMANDS.search_top_k})",
    )
    p.add_argument(
        "--chunk",
        type=positive_float,
        default=MEDIA.asr_chunk_s,
        metavar="S",
        help="seconds of audio held at once",
    )
    p.add_argument("--no-cache", action="store_true", help="neither read nor write the transcript cache")
    p.add_argument("--json", action="store_true", help="print JSON instead of text")


def run(args: argparse.Namespace) -> int:
    from grounding_agent.io import atomic_paths, refuse_inputs
    from grounding_agent.media.asr import Transcriber

    # Before any work: neither file may be the video (subtitles over it) nor the other output.
    wanted = [(f"--{fmt}", path) for fmt, path in (("srt", args.srt), ("vtt", args.vtt)) if path]
    refuse_inputs(wanted, command_inputs(args))
    outputs = {option[2:]: check_output_path(path, option) for option, path in wanted}
    asr = Transcriber(
        args.asr_model, language=args.asr_language, chunk_s=args.chunk, use_cache=not args.no_cache
    )
    transcript = asr.transcribe(args.video)
    with atomic_paths(list(outputs.values())) as temps:  # both subtitle files, or neither
        for fmt, tmp in zip(outputs, temps):
            tmp.write_text(transcript.to_subtitles(fmt), encoding="utf-8", errors="replace")
    matches = transcript.search(args.search, top_k=args.top_k) if args.search else None
    if args.json:
        report: dict[str, Any] = {
            "video": str(args.video),
            **transcript.to_dict(),
            "from_cache": transcript.from_cache,
        }
        if matches is not None:
            report["matches"] = [
                {"start_s": m.start_s, "end_s": m.end_s, "score": round(m.score, 4), "text": m.text}
                for m in matches
            ]
        print_json(report)
        return 0
    # Whisper's words are printed through the terminal sanitizer (no escape sequences reach the terminal).
    with contextlib.redirect_stdout(CleanWriter(sys.stdout)):
        _print_text(transcript, matches, args.search)
    for fmt, path in outputs.items():
        print(f"wrote {fmt.upper()} {path}")
    return 0


def _print_text(transcript, matches, quote: str | None) -> None:
    if not transcript.has_audio:
        print("(no audio track: nothing is said)")
    elif not transcript.segments:
        print("(no speech found)")
    for s in transcript.segments:
        print(f"[{_clock(s.start_s)} - {_clock(s.end_s)}] {s.text}")
    if matches is not None:
        if not matches:
            print(f"{quote!r} is not said")
        for m in matches:
            print(f'{quote!r} said at {m.start_s:.2f}-{m.end_s:.2f} s (match {m.score:.2f}): "{m.text}"')


def _clock(seconds: float) -> str:
    """83.456 -> '1:23.46' (h:mm:ss.ss past an hour)."""
    m, s = divmod(seconds, 60.0)
    h, m = divmod(int(m), 60)
    return f"{h}:{m:02d}:{s:05.2f}" if h else f"{m}:{s:05.2f}"
