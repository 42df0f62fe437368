"""Long shots split where the highlight signals change: 1-D change points by dynamic programming.

A shot longer than `max_shot_s` (a talk, a game filmed in one take, a video with no cut at all) is cut into
pieces at 2-s clip edges, choosing the pieces that minimise the within-piece spread of the fused per-clip
score plus `split_penalty` per piece (kernel temporal segmentation in one dimension, the spread in units of
the score's variance over the video), each piece between `min_shot_s` and `max_shot_s` long. So an
exciting stretch inside a long scene becomes its own pieces instead of straddling arbitrary ones. Where the
score is flat over the shot (or no set of pieces fits), the shot is cut into equal pieces.
"""

from __future__ import annotations

import math

import numpy as np

from grounding_agent.defaults import CLIP_LEN_S, SUMMARY

FLAT = 1e-9


def split_long_shots(
    bounds_s: np.ndarray,
    fused: np.ndarray,
    *,
    max_shot_s: float = SUMMARY.max_shot_s,
    min_shot_s: float = SUMMARY.min_shot_s,
    split_penalty: float = SUMMARY.split_penalty,
) -> np.ndarray:
    """Boundaries with every shot longer than `max_shot_s` split (see the module docstring)."""
    scores = np.asarray(fused, dtype=np.float64)
    scale = float(scores.var()) if len(scores) else 0.0
    out = [float(bounds_s[0])]
    for a, b in zip(bounds_s[:-1], bounds_s[1:], strict=True):
        a, b = float(a), float(b)
        if b - a > max_shot_s + 1e-9:
            pieces = _change_points(a, b, scores, scale, max_shot_s, min_shot_s, split_penalty)
            out += pieces if pieces else _equal(a, b, max_shot_s)
        else:
            out.append(b)
    return np.asarray(out)


def _equal(a: float, b: float, max_s: float) -> list[float]:
    n = max(1, math.ceil((b - a) / max_s - 1e-9))
    return [a + (b - a) * (i + 1) / n for i in range(n)]


def _change_points(
    a: float, b: float, scores: np.ndarray, scale: float, max_s: float, min_s: float, penalty: float
) -> list[float] | None:
    """The boundaries after `a` up to `b` of the best split at clip edges, or None (flat, or nothing fits)."""
    edges = np.arange(math.floor(a / CLIP_LEN_S) + 1, math.ceil(b / CLIP_LEN_S)) * CLIP_LEN_S
    points = [a, *[float(e) for e in edges if e - a >= min_s and b - e >= min_s], b]
    inside = scores[int(a // CLIP_LEN_S) : int(math.ceil(b / CLIP_LEN_S))]
    if scale <= FLAT or len(inside) == 0 or np.ptp(inside) <= FLAT:
        return None
    n = len(points)
    best = np.full(n, np.inf)
    best[0] = 0.0
    back = np.zeros(n, dtype=np.int64)
    for j in range(1, n):
        for i in range(j - 1, -1, -1):
            if points[j] - points[i] > max_s + 1e-9:
                break
            cost = best[i] + _spread(scores, points[i], points[j]) / scale + penalty
            if cost < best[j]:
                best[j], back[j] = cost, i
    if not np.isfinite(best[-1]):
        return None
    cuts, j = [], n - 1
    while j > 0:
        cuts.append(points[j])
        j = int(back[j])
    return sorted(cuts)


def _spread(scores: np.ndarray, a: float, b: float) -> float:
    """Overlap-weighted sum of squared deviations from the mean, in clips, of the scores over [a, b)."""
    first, last = int(a // CLIP_LEN_S), min(len(scores), int(math.ceil(b / CLIP_LEN_S)))
    if last <= first:
        return 0.0
    lo = np.arange(first, last) * CLIP_LEN_S
    w = (np.minimum(lo + CLIP_LEN_S, b) - np.maximum(lo, a)) / CLIP_LEN_S
    x = scores[first:last]
    mean = float((w * x).sum() / max(w.sum(), 1e-12))
    return float((w * (x - mean) ** 2).sum())
