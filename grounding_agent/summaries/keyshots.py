"""Keyshot selection: the shots worth most that fit a budget, in frames, with the evidence for each.

Long shots are split where the highlight score changes (`segment`); shot boundaries are moved to sentence ends and off spoken words (`speech`, given a transcript) and snapped
to the video's frame grid; a 0/1 knapsack (`utils.knapsack`) picks whole shots whose frames fit the budget
(rounded to frames); what is left (less than the shortest unpicked shot) is filled by continuing a picked
shot into its best neighbour, so the summary lasts the budget to the frame (a little less where the fill
would end inside a word). `edit`'s teaser without whole sentences uses this too.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass

import numpy as np

from grounding_agent.defaults import SUMMARY
from grounding_agent.edit.plan import Span
from grounding_agent.edit.timeline import FrameGrid, clock
from grounding_agent.highlights.result import HighlightResult
from grounding_agent.media.transcript import Transcript
from grounding_agent.summaries.importance import shot_values, signals_per_shot
from grounding_agent.summaries.segment import split_long_shots
from grounding_agent.summaries.shots import Shots, detect_shots
from grounding_agent.summaries.speech import (
    first_free_at_or_after,
    free_boundaries,
    last_free_at_or_before,
    nearest_free,
    snap_to_sentences,
)
from grounding_agent.types import Evidence, Video
from grounding_agent.utils.knapsack import knapsack

# The knapsack's table is items x capacity booleans: past this many cells, weights count in groups of
# frames (rounded up, so the budget still holds).
MAX_KNAPSACK_CELLS = 20_000_000


@dataclass(frozen=True)
class Keyshot:
    """A kept run of frames [start_frame, end_frame) of shot `shot`; `fill`: part of a shot, topping up."""

    shot: int
    start_frame: int
    end_frame: int
    fill: bool = False


@dataclass
class Selection:
    """What was picked and why: keyshots in time order, the shot boundaries (frames) and per-shot numbers."""

    keyshots: list[Keyshot]
    frames: np.ndarray
    importance: np.ndarray
    penalty: np.ndarray
    like: np.ndarray
    signals: dict[str, np.ndarray]
    capacity: int
    notes: list[str]


def budget_frames(grid: FrameGrid, budget_s: float) -> int:
    """The budget in frames: the frame count nearest `budget_s` at the video's mean frame length."""
    return int(round(budget_s * grid.num_frames / grid.duration_s))


def select(
    grid: FrameGrid,
    shots: Shots,
    clip_scores: Mapping[str, np.ndarray],
    budget_s: float,
    *,
    transcript: Transcript | None = None,
    diversity: float = SUMMARY.diversity,
    max_snap_s: float = SUMMARY.max_snap_s,
    max_shot_s: float = SUMMARY.max_shot_s,
) -> Selection:
    """Keyshots of at most `budget_s` (see the module docstring)."""
    notes: list[str] = []
    fused = np.asarray(clip_scores.get("fused", np.zeros(0)))
    bounds = split_long_shots(shots.bounds_s, fused, max_shot_s=max_shot_s)
    if len(bounds) > len(shots.bounds_s):
        notes.append(f"summary: shots over {max_shot_s:g} s split where the highlight score changes")
    if transcript is not None:
        bounds, moved = snap_to_sentences(bounds, transcript, grid.duration_s, max_snap_s)
        if moved:
            notes.append(
                f"summary: {moved} shot boundar{'y' if moved == 1 else 'ies'} moved to sentence ends"
            )
    free = free_boundaries(grid, transcript)
    frames = _frame_bounds(grid, bounds, free)
    times = grid.bounds_s[frames]
    signals = signals_per_shot(clip_scores, times)
    importance = signals.get("fused", np.zeros(len(frames) - 1))
    lengths = np.diff(frames)
    features = shots.features(times)
    values, penalty, like = shot_values(importance, features, np.diff(times), diversity)
    capacity = budget_frames(grid, budget_s)
    chosen = _knapsack(values, lengths, capacity)
    keyshots = [Keyshot(i, int(frames[i]), int(frames[i + 1])) for i in chosen]
    keyshots = _fill(keyshots, frames, importance, capacity, free)
    return Selection(keyshots, frames, importance, penalty, like, signals, capacity, notes)


def _frame_bounds(grid: FrameGrid, bounds_s: np.ndarray, free: np.ndarray) -> np.ndarray:
    """Shot boundaries as frame boundaries (0 and N at the ends, free of words inside), empty shots dropped."""
    n = grid.num_frames
    inner = [nearest_free(free, grid.snap(t), lo=1, hi=n - 1) for t in bounds_s[1:-1]]
    return np.unique(np.asarray([0, *inner, n], dtype=np.int64))


def _knapsack(values: np.ndarray, lengths: np.ndarray, capacity: int) -> list[int]:
    unit = max(1, math.ceil(len(values) * capacity / MAX_KNAPSACK_CELLS))
    weights = [math.ceil(int(w) / unit) for w in lengths]
    return knapsack(values.tolist(), weights, capacity // unit)


def _fill(
    keyshots: list[Keyshot], frames: np.ndarray, importance: np.ndarray, capacity: int, free: np.ndarray
) -> list[Keyshot]:
    """Top the picked shots up to `capacity` frames by continuing them into their best unpicked neighbour
    (or, with none picked, by the start of the best shot); a fill ends where no word is said."""
    picked = {k.shot for k in keyshots}
    out = list(keyshots)
    for _ in range(len(frames)):
        rest = capacity - sum(k.end_frame - k.start_frame for k in out)
        if rest <= 0:
            break
        taken = {k.shot for k in out}
        options = [i for i in range(len(frames) - 1) if i not in taken
                   and (not picked or i - 1 in taken or i + 1 in taken)]  # fmt: skip
        if not options:
            break
        i = max(options, key=lambda j: (importance[j], -j))
        a, b = int(frames[i]), int(frames[i + 1])
        if picked and i - 1 not in taken:  # continues the shot after it: keep this shot's end
            start = first_free_at_or_after(free, max(a, b - rest), b)
            piece = Keyshot(i, start, b, fill=True)
        else:
            piece = Keyshot(i, a, last_free_at_or_before(free, min(b, a + rest), a), fill=True)
        if piece.end_frame <= piece.start_frame:
            break
        out.append(piece)
        picked.add(i)
    return sorted(out, key=lambda k: k.start_frame)


def spans(grid: FrameGrid, selection: Selection, result: HighlightResult, shots_source: str) -> list[Span]:
    """Edit spans of the keyshots, each with its evidence: the shot's importance from every signal, then
    the signals that lift it above the video's typical level (`HighlightResult.evidence`)."""
    out: list[Span] = []
    sel, n_shots = selection, len(selection.frames) - 1
    signals = [name for name in sel.signals if name != "fused"]
    weights = ", ".join(f"{k} {w:.2f}" for k, w in sorted(result.weights.items())) or "none (all flat)"
    for k in sel.keyshots:
        a, b = grid.time_s(k.start_frame), grid.time_s(k.end_frame)
        i = k.shot
        parts = ", ".join(f"{name} {sel.signals[name][i]:.2f}" for name in signals) or "no signal"
        text = f"shot {i + 1} of {n_shots} ({clock(a)}-{clock(b)}): importance {sel.importance[i]:.2f} from {parts}"
        if sel.like[i] >= 0:
            text += f"; looks {sel.penalty[i]:.0%} like shot {sel.like[i] + 1}"
        if k.fill:
            text += "; part of the shot, filling the budget"
        score = float(np.clip(sel.importance[i], 0.0, 1.0))
        out.append(
            Span(a, b, Evidence("saliency", a, b, score, text, f"summary: {shots_source}; weights {weights}"))
        )
        out += [Span(a, b, ev) for ev in result.evidence(a, b)]
    return out


def keyshot_spans(
    video: Video,
    grid: FrameGrid,
    budget_s: float,
    result: HighlightResult,
    *,
    transcript: Transcript | None = None,
    shots: Shots | None = None,
    cache: bool = True,
) -> tuple[list[Span], list[str]]:
    """The spans of a keyshot summary of `budget_s` (the teaser without sentences), and notes."""
    shots = shots if shots is not None else detect_shots(video.path, cache=cache)
    selection = select(grid, shots, result.clip_scores, budget_s, transcript=transcript)
    return spans(grid, selection, result, shots.source), selection.notes
