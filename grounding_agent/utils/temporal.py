"""Temporal IoU and temporal non-maximum suppression on [start_s, end_s] spans."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from grounding_agent.errors import ConfigError
from grounding_agent.types import Moment


def tiou(a: Sequence[float], b: Sequence[float]) -> float:
    """IoU of two spans (start, end). Two zero-length spans at the same time have IoU 0 (no extent).

    Raises:
        ConfigError: a span that is not two numbers.
    """
    try:
        inter = max(0.0, min(a[1], b[1]) - max(a[0], b[0]))
        union = max(a[1], b[1]) - min(a[0], b[0])
    except (TypeError, IndexError, KeyError):
        raise ConfigError(f"a span is (start_s, end_s), two numbers: got {a!r} and {b!r}") from None
    return inter / union if union > 0 else 0.0


def _spans(x: object, what: str) -> np.ndarray:
    """(N, 2) float spans from an (N, 2) array-like, one (start, end) pair, or nothing."""
    try:
        arr = np.asarray(x, dtype=np.float64)
    except (TypeError, ValueError):
        raise ConfigError(f"{what} must be (start, end) pairs of numbers") from None
    if arr.size == 0 or (arr.ndim == 1 and arr.shape[0] == 2):
        return arr.reshape(-1, 2)
    if arr.ndim != 2 or arr.shape[1] != 2:
        raise ConfigError(f"{what} must be (start, end) pairs, shape (N, 2); got shape {arr.shape}")
    return arr


def tiou_matrix(pred: np.ndarray, gt: np.ndarray) -> np.ndarray:
    """Pairwise IoU between spans: pred (N, 2) x gt (M, 2) -> (N, M)."""
    pred, gt = _spans(pred, "pred"), _spans(gt, "gt")
    inter = np.clip(
        np.minimum(pred[:, None, 1], gt[None, :, 1]) - np.maximum(pred[:, None, 0], gt[None, :, 0]), 0.0, None
    )
    union = np.maximum(pred[:, None, 1], gt[None, :, 1]) - np.minimum(pred[:, None, 0], gt[None, :, 0])
    return np.divide(inter, union, out=np.zeros_like(inter), where=union > 0)


def nms(moments: Sequence[Moment], iou_threshold: float = 0.7, max_keep: int | None = None) -> list[Moment]:
    """Greedy temporal NMS: keep the best-scored moment, drop those overlapping it by > iou_threshold.

    Returns the kept moments sorted by score (best first). Ties keep input order.

    Raises:
        ConfigError: `iou_threshold` outside [0, 1], a bad `max_keep`, or `moments` that are not Moments.
    """
    if (
        isinstance(iou_threshold, bool)
        or not isinstance(iou_threshold, (int, float))
        or not 0 <= iou_threshold <= 1
    ):
        raise ConfigError(f"iou_threshold must be a number in [0, 1], got {iou_threshold!r}")
    if max_keep is not None and (isinstance(max_keep, bool) or not isinstance(max_keep, int) or max_keep < 0):
        raise ConfigError(f"max_keep must be a whole number >= 0 or None, got {max_keep!r}")
    if not isinstance(moments, Sequence) or not all(isinstance(m, Moment) for m in moments):
        raise ConfigError("nms takes a list of Moment")
    order = sorted(range(len(moments)), key=lambda i: -moments[i].score)
    kept: list[Moment] = []
    for i in order:
        m = moments[i]
        if all(tiou((m.start_s, m.end_s), (k.start_s, k.end_s)) <= iou_threshold for k in kept):
            kept.append(m)
            if max_keep is not None and len(kept) >= max_keep:
                break
    return kept
