"""Shot boundaries that respect speech: moved to sentence ends, never inside a word.

With a transcript, a shot boundary that falls inside a sentence moves to the nearest sentence end within
`max_snap_s` (sentences as `edit.teaser.sentence_spans` gives them: first word to last word, padded into the
pause). Then every boundary lands on a frame boundary where no word is being said (`free_boundaries`): the
nearest one to it, so no kept shot starts or ends mid-word even where no sentence end was in reach.
"""

from __future__ import annotations

import numpy as np

from grounding_agent.edit.teaser import sentence_spans
from grounding_agent.edit.timeline import FrameGrid
from grounding_agent.media.transcript import Transcript

# How far (in frames) a boundary may move to reach a frame where no word is said; past it, it stays.
MAX_FREE_SEARCH_FRAMES = 250


def snap_to_sentences(
    bounds_s: np.ndarray, transcript: Transcript, duration_s: float, max_snap_s: float
) -> tuple[np.ndarray, int]:
    """Boundaries (0 and the end excepted) inside a sentence moved to the nearest sentence end within
    `max_snap_s`; shots that collapse are dropped. Returns the boundaries and how many moved."""
    sentences = sentence_spans(transcript, duration_s)
    ends = np.asarray([b for _, b in sentences])
    out, moved = [float(bounds_s[0])], 0
    for t in bounds_s[1:-1]:
        inside = any(a < t < b for a, b in sentences)
        if inside and len(ends):
            nearest = float(ends[np.argmin(np.abs(ends - t))])
            if abs(nearest - t) <= max_snap_s:
                t, moved = nearest, moved + 1
        if t > out[-1]:
            out.append(float(t))
    if float(bounds_s[-1]) > out[-1]:
        out.append(float(bounds_s[-1]))
    else:
        out[-1] = float(bounds_s[-1])
    return np.asarray(out), moved


def free_boundaries(grid: FrameGrid, transcript: Transcript | None) -> np.ndarray:
    """(N + 1,) True where a frame boundary is not strictly inside a spoken word."""
    bounds = grid.bounds_s
    free = np.ones(len(bounds), dtype=bool)
    if transcript is None:
        return free
    for word in transcript.words:
        i = int(np.searchsorted(bounds, word.start_s, side="right"))
        j = int(np.searchsorted(bounds, word.end_s, side="left"))
        free[i:j] = False
    return free


def nearest_free(free: np.ndarray, frame: int, *, lo: int = 0, hi: int | None = None) -> int:
    """The free boundary nearest `frame` within [lo, hi] (ties: the earlier), else `frame` itself."""
    hi = len(free) - 1 if hi is None else hi
    for step in range(MAX_FREE_SEARCH_FRAMES + 1):
        for k in (frame - step, frame + step):
            if lo <= k <= hi and free[k]:
                return k
    return frame


def last_free_at_or_before(free: np.ndarray, frame: int, lo: int) -> int:
    """The latest free boundary in [lo, frame], else lo (nothing fits)."""
    for k in range(frame, lo, -1):
        if free[k]:
            return k
    return lo


def first_free_at_or_after(free: np.ndarray, frame: int, hi: int) -> int:
    """The earliest free boundary in [frame, hi], else hi (nothing fits)."""
    for k in range(frame, hi):
        if free[k]:
            return k
    return hi
