"""`summarize`: a keyshot summary of a video as an `EditPlan` (exported and rendered like any edit).

    from grounding_agent.summaries import summarize
    plan = summarize("talk.mp4", ratio=0.15)                 # 15 % of the video (the default)
    plan = summarize("talk.mp4", seconds=30, transcript=t)   # 30 s; cuts at sentence ends, never mid-word

Shots (`shots`), their importance from the generic highlight signals (`scores`, `importance`), a 0/1
knapsack over frames to the budget (`keyshots`). The plan has one operation: keep the best highlights
within the budget (target "highlights", like `edit "a 30-second summary"`), its instruction says the budget
("summary: 15 % (90.0 s)"), and each kept segment's evidence names the shot and the signals behind it.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from grounding_agent.defaults import EDIT, SPEECH_EDIT, SUMMARY
from grounding_agent.edit.plan import EditPlan, Operation, apply_operations
from grounding_agent.edit.sources import as_transcript
from grounding_agent.edit.speech_spans import floor_level
from grounding_agent.edit.timeline import FrameGrid
from grounding_agent.errors import SummaryError
from grounding_agent.media.transcript import Transcript, fit_to_video
from grounding_agent.summaries.keyshots import select, spans
from grounding_agent.summaries.scores import highlight_result
from grounding_agent.summaries.shots import detect_shots
from grounding_agent.types import Video

if TYPE_CHECKING:
    from grounding_agent.highlights.clip import ClipSaliency


def budget_s(
    duration_s: float, seconds: float | None = None, ratio: float | None = None
) -> tuple[float, str]:
    """The budget in seconds and how to say it ("15 % (90.0 s)", "30 s (5.0 %)").

    Raises:
        SummaryError: both or a bad one given: 0 or less, over 100 %, not shorter than the video.
    """
    if seconds is not None and ratio is not None:
        raise SummaryError("give the summary's length as seconds or as a ratio, not both")
    if seconds is None:
        ratio = SUMMARY.ratio if ratio is None else ratio
        if isinstance(ratio, bool) or not isinstance(ratio, int | float) or not 0 < ratio < 1:
            raise SummaryError(
                f"the summary's ratio must be above 0 and below 1 (100 %), got {ratio!r}; e.g. 0.15 for 15 %"
            )
        return ratio * duration_s, f"{ratio * 100:g} % ({ratio * duration_s:.1f} s)"
    if isinstance(seconds, bool) or not isinstance(seconds, int | float) or not seconds > 0:
        raise SummaryError(f"the summary's length must be more than 0 seconds, got {seconds!r}")
    if not seconds < duration_s or not math.isfinite(seconds):
        raise SummaryError(
            f"a {seconds:g}-second summary is not shorter than the video ({duration_s:.2f} s); ask for less"
        )
    return float(seconds), f"{seconds:g} s ({seconds / duration_s * 100:.1f} %)"


def summarize(
    video: Video | str | Path,
    *,
    seconds: float | None = None,
    ratio: float | None = None,
    transcript: Any = None,
    saliency: ClipSaliency | None = None,
    title: str | None = None,
    extra_clip_scores: Mapping[str, np.ndarray] | None = None,
    diversity: float = SUMMARY.diversity,
    cache: bool = True,
) -> EditPlan:
    """A keyshot summary of `video` lasting `seconds`, or `ratio` of it (default `SUMMARY.ratio`).

    Args:
        transcript: what is said (`media.transcript.Transcript`, or a hand-made one `edit` reads): shot
            boundaries move to sentence ends and never fall inside a word; speech becomes a signal.
        saliency: a `ClipSaliency` adds CLIP's similarity to the generic highlight prompts as a signal.
        title: the video's title, a CLIP query signal (needs `saliency`).
        extra_clip_scores: per-2-s-clip scores by name (`highlights.windows.EXTRA_SIGNALS`: a learned
            head's, `highlights.heads.head_scores`).
        diversity: lambda of `importance - lambda * similarity to a more important shot`.
        cache: read and write the shots and highlight scores cached on disk (by the file's content).

    Raises:
        SummaryError: a bad budget (see `budget_s`), or one shorter than a frame.
        VideoError: the video cannot be read.
    """
    from grounding_agent.media.video import open_video

    video = video if isinstance(video, Video) else open_video(video)
    budget, said = budget_s(video.duration_s, seconds, ratio)
    grid = FrameGrid.from_video(video)
    words, notes = _fitted(video, transcript) if transcript is not None else (None, [])
    shots = detect_shots(video.path, cache=cache)
    result = highlight_result(video.path, saliency=saliency, transcript=words, title=title,
                              extra_clip_scores=extra_clip_scores, cache=cache)  # fmt: skip
    selection = select(grid, shots, result.clip_scores, budget, transcript=words, diversity=diversity)
    if selection.capacity < 1:
        raise SummaryError(f"a summary of {said} is shorter than one frame; ask for more")
    found = spans(grid, selection, result, shots.source)
    instruction = f"summary: {said}"
    op = Operation("keep", "highlights", total_s=budget, text=instruction,
                   read_as=f"summary: keyshots by importance, knapsack to {selection.capacity} frames")  # fmt: skip
    plan = apply_operations(video, grid, instruction, [op], lambda _: found)
    plan.notes.extend([*notes, *selection.notes, f"summary: shots by {shots.source}",
                       f"summary: signals used: {', '.join(sorted(result.weights)) or 'none'}"])  # fmt: skip
    if result.absent:
        absent = "; ".join(f"{name} ({why})" for name, why in sorted(result.absent.items()))
        plan.notes.append(f"summary: signals left out: {absent}")
    return plan


def _fitted(video: Video, transcript: Any) -> tuple[Transcript, list[str]]:
    """The transcript checked, fitted to the video, its word ends reaching where their sound falls."""
    from grounding_agent.media.audio import audio_energy
    from grounding_agent.media.vad import fit_to_energy

    fitted, notes = fit_to_video(as_transcript(transcript), video.duration_s)
    curve = audio_energy(video.path, hop_s=SPEECH_EDIT.energy_hop_s)
    if curve is None:
        return fitted, notes
    level = floor_level(curve.values, EDIT.silence_db, SPEECH_EDIT.floor_margin_db)
    return fit_to_energy(fitted, curve, level, SPEECH_EDIT.tail_max_s), notes
