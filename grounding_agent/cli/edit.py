"""`grounding-agent edit VIDEO "INSTRUCTION"`: a frame-exact edit plan, NLE exports, a render, thumbnails.

    grounding-agent edit talk.mp4 "remove the silences, then keep only the first minute" --export talk.otio
    grounding-agent edit clip.mp4 "cut 0:05 to 0:15" --export cut.edl --export cut.fcpxml --render cut.mp4
    grounding-agent edit clip.mp4 "cut the part where the dog jumps" --backend vllm --render out.mp4 --copy
    grounding-agent edit clip.mp4 "a 15-second teaser" --thumbnails sheet.png --json
    grounding-agent edit clip.mp4 "trim the first 3 seconds" --dry-run     # plan only, nothing written

Exports by suffix: .otio .edl .xml (FCP7) .fcpxml .srt .vtt (chapters) .txt (YouTube chapters) .json.
Every output path is checked before any work; nothing is written when the instruction reads as nothing
or the edit would keep nothing or everything.
"""

from __future__ import annotations

import argparse
import functools
import sys
import weakref
from pathlib import Path
from typing import Any, TextIO

from grounding_agent.cli._common import (
    command_inputs,
    finite_float,
    nonneg_float,
    nonneg_int,
    positive_float,
    print_json,
)
from grounding_agent.cli.options import (
    add_backend_options,
    build_agent,
    build_grounder,
    build_transcriber,
    wants_agent,
)
from grounding_agent.defaults import ASPECTS, EDIT, SPEECH_EDIT
from grounding_agent.errors import EditError, GroundingAgentError


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("video", help="video file")
    p.add_argument(
        "instruction", help="what to do, e.g. 'remove the silences, then keep only the first minute'"
    )
    add_output_arguments(p)
    e = p.add_argument_group("editing")
    e.add_argument(
        "--parser",
        choices=["rule", "llm"],
        default="rule",
        help="read the instruction with the rule grammar (default) or the LLM (needs --server)",
    )
    e.add_argument(
        "--silence-db",
        type=finite_float,
        default=None,
        help=f"silence threshold in dBFS (default {EDIT.silence_db:g})",
    )
    e.add_argument(
        "--min-silence-s",
        type=positive_float,
        default=None,
        help=f"shortest silence to remove (default {EDIT.min_silence_s:g})",
    )
    e.add_argument(
        "--pad-ms",
        type=nonneg_float,
        default=None,
        help=f"audio kept beside wanted speech in speech keeps and silence cuts, clamped halfway to an "
        f"unwanted word (default {SPEECH_EDIT.pad_ms:g})",
    )
    e.add_argument(
        "--min-gap-s",
        type=nonneg_float,
        default=None,
        help=f"shortest silence or filler-word cut made, after padding (default {SPEECH_EDIT.min_gap_s:g})",
    )
    e.add_argument(
        "--transcript",
        metavar="FILE.json",
        help="what is said, as `grounding-agent transcribe --json` writes it (for word and speech "
        "edits; else --asr-model transcribes the video when they need it)",
    )
    add_backend_options(p)


def add_output_arguments(p: argparse.ArgumentParser) -> None:
    """What an edit writes (`summarize` too): exports, the render and its settings, captions, thumbnails."""
    g = p.add_argument_group("outputs")
    g.add_argument(
        "--export",
        action="append",
        default=[],
        metavar="FILE",
        help="write the edit (.otio .edl .xml .fcpxml .srt .vtt .txt .json); repeatable",
    )
    g.add_argument("--render", metavar="OUT.mp4", help="render the edit with ffmpeg")
    g.add_argument("--copy", action="store_true", help="render by stream copy: fast, cuts move to keyframes")
    g.add_argument(
        "--captions",
        action="store_true",
        help="burn the transcript into the render, word-timed (needs --asr-model DIR or --transcript FILE); "
        "also writes OUT.srt beside it",
    )
    g.add_argument(
        "--captions-out", metavar="FILE.srt", help="where the captions' sidecar goes (.srt or .vtt)"
    )
    g.add_argument(
        "--aspect", choices=ASPECTS, help="reframe the render to this width:height, following faces"
    )
    g.add_argument("--thumbnails", metavar="OUT.png", help="contact sheet: one frame per kept segment")
    g.add_argument(
        "--json", action="store_true", help="print the edit plan as JSON (schemas/edit_plan.schema.json)"
    )
    g.add_argument("--dry-run", action="store_true", help="plan and print only; write nothing")
    g.add_argument(
        "--preset", default=EDIT.preset, help=f"libx264 preset of the accurate render (default {EDIT.preset})"
    )
    g.add_argument(
        "--crf",
        type=nonneg_int,
        default=EDIT.crf,
        help=f"libx264 CRF of the accurate render (default {EDIT.crf})",
    )


def run(args: argparse.Namespace) -> int:
    from grounding_agent.edit import plan_edit
    from grounding_agent.media.video import open_video

    check_short_form(args)
    video = open_video(args.video)
    check_outputs(args, video)
    transcript = functools.cache(lambda: load_transcript(args, video))  # once, for the edit and the captions
    plan = plan_edit(
        video,
        args.instruction,
        parser=_parser(args),
        grounder_factory=lambda: build_grounder(args),
        agent_factory=lambda grounder: build_agent(args, grounder),
        use_agent=lambda query: wants_agent(args, query),
        transcript_factory=transcript,
        saliency_factory=lambda: load_saliency(args),
        threshold_db=args.silence_db,
        min_silence_s=args.min_silence_s,
        pad_ms=args.pad_ms,
        min_gap_s=args.min_gap_s,
    )
    outputs: dict[str, Any] = {}
    problem = refusal_reason(plan)
    if not args.dry_run and problem is None:
        outputs = write_outputs(args, plan, captions=transcript() if args.captions else None)
    if args.json:
        print_json({**plan.to_dict(), "outputs": outputs, "dry_run": bool(args.dry_run)})
    else:
        print(plan_text(plan, outputs, args.dry_run))
    wanted = bool(args.export or args.render or args.thumbnails)
    if problem is not None and wanted and not args.dry_run:
        raise EditError(f"{problem}; nothing was written")
    if problem is not None:
        print(f"note: {problem}", file=sys.stderr)
    return 0


def check_outputs(args: argparse.Namespace, video: Any) -> None:
    """Every output checked before any work (`summarize` too): a bad path costs nothing and writes nothing.
    No output may be an input (the video by any name, --transcript, --prior-train) or another output."""
    from grounding_agent.edit.exports import export_format
    from grounding_agent.edit.paths import IMAGE_SUFFIXES, VIDEO_SUFFIXES, check_output
    from grounding_agent.io import refuse_inputs

    if args.copy and not args.render:
        raise EditError("--copy is a way of rendering: give --render OUT.mp4 too")
    refuse_inputs(_named_outputs(args), [("the input video", video.path), *command_inputs(args)])
    for path in args.export:
        export_format(path)
        check_output(path, video.path)
    if args.render:
        check_output(args.render, video.path, suffixes=VIDEO_SUFFIXES)
    if _captions_out(args):
        check_output(_captions_out(args), video.path, suffixes=(".srt", ".vtt"))
    if args.thumbnails:
        check_output(args.thumbnails, video.path, suffixes=IMAGE_SUFFIXES)


def _named_outputs(args: argparse.Namespace) -> list[tuple[str, str | None]]:
    """(option, path) of every file the command would write."""
    return [
        *(("--export", p) for p in args.export),
        ("--render", args.render),
        ("--thumbnails", args.thumbnails),
        ("--captions-out", _captions_out(args)),
    ]


def check_short_form(args: argparse.Namespace) -> None:
    """--captions / --aspect draw on the render: they need one, re-encoded, and captions need words."""
    if (args.captions or args.aspect) and not args.render:
        raise EditError("--captions and --aspect change the render: give --render OUT.mp4 too")
    if (args.captions or args.aspect) and args.copy:
        raise EditError("--captions and --aspect draw on the picture: render without --copy")
    if args.captions_out and not args.captions:
        raise EditError("--captions-out names the captions' file: give --captions too")
    if args.captions and not (args.transcript or getattr(args, "asr_model", None)):
        raise EditError("--captions needs the words: pass --asr-model DIR or --transcript FILE.json")


def _captions_out(args: argparse.Namespace) -> str | None:
    """The captions' sidecar: --captions-out, else the render's name with .srt."""
    if not args.captions or not args.render:
        return None
    return args.captions_out or str(Path(args.render).with_suffix(".srt"))


def write_outputs(args: argparse.Namespace, plan: Any, captions: Any = None) -> dict[str, Any]:
    """Every export, the render and the contact sheet, all or nothing: each is written to a temporary file
    beside its target and all are moved into place only when every one succeeded (an EDL refused for the
    frame rate leaves no .otio written before it)."""
    from dataclasses import replace

    from grounding_agent.edit import contact_sheet, export, render
    from grounding_agent.edit.exports import youtube_warnings
    from grounding_agent.io import atomic_paths

    targets = [p for _, p in _named_outputs(args) if p]
    outputs: dict[str, Any] = {}
    with atomic_paths(targets) as temps:
        tmp = dict(zip(targets, temps))
        for path in args.export:
            export(plan, tmp[path])
            outputs.setdefault("exports", []).append(str(path))
            if Path(path).suffix.lower() == ".txt":
                plan.notes.extend(youtube_warnings(plan))
        if args.render:
            result = render(plan, tmp[args.render], copy=args.copy, preset=args.preset, crf=args.crf,
                            captions=captions, aspect=args.aspect)  # fmt: skip
            outputs["render"] = replace(result, path=Path(args.render)).to_dict()
        if captions is not None:
            from grounding_agent.edit.captions import write_sidecar

            out = _captions_out(args)
            write_sidecar(plan, captions, tmp[out], kind=Path(out).suffix)
            outputs["captions"] = out
        if args.thumbnails:
            contact_sheet(plan, tmp[args.thumbnails])
            outputs["thumbnails"] = str(args.thumbnails)
    return outputs


def load_transcript(args: argparse.Namespace, video: Any) -> Any:
    """The transcript the edit needs: read from --transcript, else made with --asr-model, else None."""
    if args.transcript:
        import json

        from grounding_agent.errors import ConfigError
        from grounding_agent.media.transcript import Transcript

        try:
            data = json.loads(Path(args.transcript).read_text(encoding="utf-8"))
            return Transcript.from_dict(data)
        except ConfigError as exc:  # read, but its times are wrong: the message names the word
            raise EditError(f"--transcript {args.transcript}: {exc}") from None
        except (OSError, ValueError, KeyError, TypeError) as exc:
            raise EditError(
                f"--transcript {args.transcript}: not a transcript JSON ({type(exc).__name__}: {exc}); "
                "write one with `grounding-agent transcribe VIDEO --asr-model DIR --json`"
            ) from None
    transcriber = build_transcriber(args)  # the shared --asr-model / --asr-language options
    return None if transcriber is None else transcriber.transcribe(video)


def load_saliency(args: argparse.Namespace) -> Any:
    """CLIP saliency for the highlight detector with --saliency-model, else None (audio, motion, scene only)."""
    if not args.saliency_model:
        return None
    from grounding_agent.highlights.clip import ClipSaliency

    return ClipSaliency.from_pretrained(args.saliency_model)


def _parser(args: argparse.Namespace) -> Any:
    if args.parser == "rule":
        return None
    from grounding_agent.agent import chat_model
    from grounding_agent.edit import LLMEditParser

    model = args.planner_model or (args.model if args.backend == "vllm" else None)
    if not (args.server and model):
        raise EditError("--parser llm needs --server URL and --planner-model NAME (a served model)")
    return LLMEditParser(chat_model(args.server, model))


def refusal_reason(plan) -> str | None:
    """Why the edit should not be written: it keeps nothing, or everything."""
    if plan.keeps_nothing:
        return "the edit keeps nothing (every frame is cut); change the instruction"
    if plan.keeps_everything:
        return "the edit keeps the whole video (nothing is cut)"
    return None


def plan_text(plan, outputs: dict[str, Any], dry_run: bool) -> str:
    grid = plan.grid
    rate = f"{float(grid.rate):.3f}".rstrip("0").rstrip(".") + (" DF" if grid.drop_frame else "")
    lines = [
        f"{Path(plan.video.path).name}: {plan.video.duration_s:.2f} s at {rate} fps; {plan.parser} parser",
        f'instruction: "{plan.instruction}"',
        "operations:",
        # Each operation with how it was read, so a misreading shows before anything is cut.
        *(f"  {k}. {op.describe()}" + (f" ({op.read_as})" if op.read_as else "")
          for k, op in enumerate(plan.operations, 1)),
    ]  # fmt: skip
    for seg in plan.segments:
        span = f"{grid.timecode(seg.start_frame)} - {grid.timecode(seg.end_frame)}"
        lines.append(f"  {seg.action:4s} {span}  {seg.duration_s:7.2f} s  {seg.reason}")
    lines.append(f"kept {plan.kept_s:.2f} s of {plan.video.duration_s:.2f} s in {len(plan.kept)} segments")
    lines += [f"note: {n}" for n in plan.notes]
    for path in outputs.get("exports", []):
        lines.append(f"wrote {path}")
    if "render" in outputs:
        r = outputs["render"]
        lines.append(
            f"rendered {r['path']} ({r['mode']}): {r['rendered_s']:.3f} s, plan {r['planned_s']:.3f} s"
        )
        if "widened_s" in r:  # a stream copy cuts on keyframes: what that added, apart from the plan
            lines.append(
                f"  cut on keyframes: {r['widened_s']:.3f} s copied "
                f"({r['widened_s'] - r['planned_s']:+.3f} s against the plan)"
            )
        for shift in r.get("keyframe_shifts", []):
            if shift["start_shift_frames"] or shift["end_shift_frames"]:
                lines.append(
                    f"  segment {shift['segment'] + 1}: start moved {shift['start_shift_s']:+.3f} s, "
                    f"end moved {shift['end_shift_s']:+.3f} s (to keyframes)"
                )
    if "captions" in outputs:
        lines.append(f"wrote {outputs['captions']} (captions on the edited timeline)")
    if "thumbnails" in outputs:
        lines.append(f"wrote {outputs['thumbnails']}")
    if dry_run:
        lines.append("dry run: nothing written")
    return "\n".join(lines)


# --- the chat REPL's /edit and /export (grounding_agent/cli/chat.py delegates here) -------------------

_LAST_PLAN: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()  # session -> its last /edit plan


def session_plan(session: Any, instruction: str) -> Any:
    """`session.edit(instruction)`: the session's grounder, agent, saliency and transcript do the finding."""
    plan = session.edit(instruction)
    _LAST_PLAN[session] = plan
    return plan


def repl_edit(session: Any, rest: str, out: TextIO) -> None:
    """/edit INSTRUCTION: plan an edit of the session's video and show it (/export FILE writes it)."""
    if not rest:
        print(
            "usage: /edit INSTRUCTION, e.g. /edit remove the silences, then keep only the first minute",
            file=out,
        )
        return
    try:
        plan = session_plan(session, rest)
    except GroundingAgentError as exc:
        print(f"error: {exc}", file=out)
        return
    print(plan_text(plan, {}, dry_run=False), file=out)
    refusal = refusal_reason(plan)
    if refusal:
        print(f"note: {refusal}", file=out)


def repl_export(session: Any, path: str, instruction: str, out: TextIO) -> None:
    """/export FILE [INSTRUCTION]: write the last /edit plan (or INSTRUCTION's) as FILE (.otio .edl .xml ...)."""
    from grounding_agent.edit import export

    try:
        plan = session_plan(session, instruction) if instruction else _LAST_PLAN.get(session)
        if plan is None:
            print("no edit yet: /edit INSTRUCTION first, or /export FILE INSTRUCTION", file=out)
            return
        refusal = refusal_reason(plan)
        if refusal:
            print(f"error: {refusal}; nothing was written", file=out)
            return
        print(f"wrote {export(plan, path)}", file=out)
    except GroundingAgentError as exc:
        print(f"error: {exc}", file=out)
