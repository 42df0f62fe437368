"""How much each shot is worth keeping: its fused highlight saliency, less a diversity penalty.

Importance is the mean of the fused per-2-s-clip score (`highlights.windows.generic_highlights`, every
signal it used) over the shot, each clip weighted by its overlap. Diversity (the post-processing of video
highlight detection surveys: `score - lambda * similarity`): a shot that looks like a better one (colour
histograms, `shots.Shots.features`) is worth less, so the summary is not five shots of the same scene. The
knapsack value of a shot is that, plus a small floor (so a flat video still fills the budget), times its
length: the summary keeps the most importance-seconds that fit.
"""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np

from grounding_agent.defaults import CLIP_LEN_S, SUMMARY

# Every shot is worth a little: with flat scores the budget still fills (with the most diverse shots).
VALUE_FLOOR = 0.02


def per_shot(clip_scores: np.ndarray, bounds_s: np.ndarray, clip_len_s: float = CLIP_LEN_S) -> np.ndarray:
    """(n_shots,) overlap-weighted mean of per-clip scores over each shot [bounds_s[i], bounds_s[i + 1])."""
    scores = np.asarray(clip_scores, dtype=np.float64)
    if len(scores) == 0:
        return np.zeros(len(bounds_s) - 1)
    edges = np.arange(len(scores) + 1) * clip_len_s
    a, b = np.asarray(bounds_s[:-1])[:, None], np.asarray(bounds_s[1:])[:, None]
    overlap = np.clip(np.minimum(edges[1:], b) - np.maximum(edges[:-1], a), 0, None)
    total = overlap.sum(axis=1)
    return np.where(total > 0, (overlap * scores).sum(axis=1) / np.maximum(total, 1e-12), 0.0)


def signals_per_shot(clip_scores: Mapping[str, np.ndarray], bounds_s: np.ndarray) -> dict[str, np.ndarray]:
    """Every per-clip signal (and "fused") averaged over each shot."""
    return {name: per_shot(values, bounds_s) for name, values in clip_scores.items()}


def similarity(features: np.ndarray) -> np.ndarray:
    """(n, n) similarity of shots' colour histograms: 1 - total-variation distance, in [0, 1]."""
    f = np.asarray(features, dtype=np.float64)
    if len(f) == 0:
        return np.zeros((0, 0))
    channels = max(1.0, float(np.round(f[0].sum())))  # each channel's histogram sums to 1
    distance = 0.5 * np.abs(f[:, None, :] - f[None, :, :]).sum(axis=2) / channels
    return 1.0 - distance


def diversity_penalty(importance: np.ndarray, features: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Each shot's similarity to the most alike *more important* shot, and that shot's index (-1: none)."""
    n = len(importance)
    sim = similarity(features)
    penalty, like = np.zeros(n), np.full(n, -1)
    order = np.argsort(-np.asarray(importance), kind="stable")
    for rank, i in enumerate(order):
        better = order[:rank]
        if len(better):
            j = better[int(np.argmax(sim[i, better]))]
            penalty[i], like[i] = sim[i, j], j
    return penalty, like


def shot_values(
    importance: np.ndarray,
    features: np.ndarray,
    lengths: np.ndarray,
    diversity: float = SUMMARY.diversity,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Knapsack values (score - diversity * similarity, floored, times length), and the penalty and the
    alike shot behind each."""
    penalty, like = diversity_penalty(importance, features)
    per_second = np.maximum(np.asarray(importance) - diversity * penalty, 0.0) + VALUE_FLOOR
    return per_second * np.asarray(lengths, dtype=np.float64), penalty, like
