"""Natural-language video editing: instruction -> frame-exact `EditPlan` -> NLE exports, render, thumbnails.

    from grounding_agent.edit import plan_edit, export, render, contact_sheet
    plan = plan_edit("talk.mp4", "remove the silences, then keep only the first minute")
    export(plan, "talk.otio"); export(plan, "talk.edl"); export(plan, "chapters.srt")
    render(plan, "talk_edit.mp4")                 # accurate (re-encode); copy=True: stream copy on keyframes
    contact_sheet(plan, "talk_edit.png")

Moments ("cut the part where the dog jumps") need a grounder (`grounder=`, any backend, `uniform`
included) or an agent; spoken words need a transcript (`transcript=`). See `parse` for the grammar.

Modules: `parse` (instruction -> operations, or a one-line refusal; `parse_rules`, `parse_llm`,
`parse_numbers`, `parse_base`), `sources` (what decides a span: times, moments, highlights,
silences, words), `plan` (`EditPlan`, `EditSegment`), `timeline` (frame-exact times), `exports` (OTIO
adapters, subtitles, chapters), `rendering` (ffmpeg), `captions` (burnt-in and sidecar captions on the
edited timeline), `reframe` (face-following crop to 9:16, 1:1, 4:5), `teaser` (sentence-exact teasers),
`thumbs`, `paths`. May import: the core modules,
`utils`, `media`, `highlights`, `agent.llm` (the LLM parser) and `summaries.keyshots` (a teaser without
sentences is a keyshot summary); grounders and agents come in as arguments.
"""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path
from typing import Any

from grounding_agent.edit.exports import EXPORTS, export, to_timeline
from grounding_agent.edit.parse import LLMEditParser, ParsedInstruction, RuleEditParser, parse_instruction
from grounding_agent.edit.plan import EditPlan, EditSegment, Operation, Span, apply_operations
from grounding_agent.edit.rendering import RenderResult, render
from grounding_agent.edit.sources import EditSources
from grounding_agent.edit.thumbs import contact_sheet
from grounding_agent.edit.timeline import FrameGrid, timecode
from grounding_agent.errors import EditError
from grounding_agent.types import Video

__all__ = [
    "EXPORTS",
    "EditPlan",
    "EditSegment",
    "EditSources",
    "FrameGrid",
    "LLMEditParser",
    "Operation",
    "ParsedInstruction",
    "RenderResult",
    "RuleEditParser",
    "Span",
    "contact_sheet",
    "export",
    "parse_instruction",
    "plan_edit",
    "render",
    "timecode",
    "to_timeline",
]


def plan_edit(
    video: Video | str | Path,
    instruction: str,
    *,
    parser: Any = None,
    grounder: Any = None,
    agent: Any = None,
    use_agent: Any = None,
    grounder_factory: Any = None,
    agent_factory: Any = None,
    transcript_factory: Any = None,
    saliency_factory: Any = None,
    saliency: Any = None,
    transcript: Any = None,
    threshold_db: float | None = None,
    min_silence_s: float | None = None,
    pad_ms: float | None = None,
    min_gap_s: float | None = None,
) -> EditPlan:
    """The frame-exact `EditPlan` for `instruction` on `video`.

    Args:
        parser: `RuleEditParser` (default) or `LLMEditParser`.
        grounder, agent, use_agent: find described moments (see `EditSources`); grounder_factory() and
            agent_factory(grounder) build them on first use instead (nothing is loaded if no moment is asked).
        saliency (or saliency_factory()): CLIP saliency for highlights (optional); transcript (or
            transcript_factory()): for word and speech edits (`grounding_agent.media.transcript.Transcript` or alike).
            The factories run on first use only.
        threshold_db, min_silence_s: silence defaults (-40 dBFS, 0.5 s).
        pad_ms, min_gap_s: audio kept beside wanted speech (60 ms; never past halfway to an unwanted word)
            and the shortest silence or word cut made (0.1 s); see `defaults.SpeechEditDefaults`.

    Raises:
        EditError: the instruction reads as nothing, or needs a source that was not given.
        VideoError: the video cannot be read.
    """
    from grounding_agent.media.video import open_video

    video = video if isinstance(video, Video) else open_video(video)
    parsed = parse_instruction(instruction, parser=parser, duration_s=video.duration_s)
    sources = EditSources(
        grounder=grounder, agent=agent, use_agent=use_agent, grounder_factory=grounder_factory,
        agent_factory=agent_factory, transcript_factory=transcript_factory, saliency_factory=saliency_factory,
        saliency=saliency, transcript=transcript,
    )  # fmt: skip
    if threshold_db is not None:
        sources.threshold_db = threshold_db
    if min_silence_s is not None:
        sources.min_silence_s = min_silence_s
    if pad_ms is not None:
        sources.pad_ms = _at_least(pad_ms, 0.0, "pad_ms")
    if min_gap_s is not None:
        sources.min_gap_s = _at_least(min_gap_s, 0.0, "min_gap_s")
    # Silences get their actual sizes written in, so the plan (and its JSON) says what was cut.
    operations = [
        replace(op, threshold_db=sources.threshold_db if op.threshold_db is None else op.threshold_db,
                min_silence_s=sources.min_silence_s if op.min_silence_s is None else op.min_silence_s)
        if op.target == "silence" else op
        for op in parsed.operations
    ]  # fmt: skip
    grid = FrameGrid.from_video(video)
    plan = apply_operations(
        video, grid, instruction, operations, lambda op: sources.resolve(video, op),
        parser=parsed.parser, notes=parsed.notes,
    )  # fmt: skip
    plan.notes.extend(sources.notes)
    return plan


def _at_least(value: float, low: float, name: str) -> float:
    if not (isinstance(value, int | float) and low <= value < float("inf")):
        raise EditError(f"{name} must be a number >= {low:g}, got {value!r}")
    return float(value)
