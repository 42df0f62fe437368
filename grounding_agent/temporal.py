"""Temporal IoU and temporal non-maximum suppression on [start_s, end_s] spans."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from grounding_agent.types import Moment


def tiou(a: Sequence[float], b: Sequence[float]) -> float:
    """IoU of two spans (start, end). Two zero-length spans at the same time have IoU 0 (no extent)."""
    inter = max(0.0, min(a[1], b[1]) - max(a[0], b[0]))
    union = max(a[1], b[1]) - min(a[0], b[0])
    return inter / union if union > 0 else 0.0


def tiou_matrix(pred: np.ndarray, gt: np.ndarray) -> np.ndarray:
    """Pairwise IoU between spans: pred (N, 2) x gt (M, 2) -> (N, M)."""
    pred = np.asarray(pred, dtype=np.float64).reshape(-1, 2)
    gt = np.asarray(gt, dtype=np.float64).reshape(-1, 2)
    inter = np.clip(
        np.minimum(pred[:, None, 1], gt[None, :, 1]) - np.maximum(pred[:, None, 0], gt[None, :, 0]), 0.0, None
    )
    union = np.maximum(pred[:, None, 1], gt[None, :, 1]) - np.minimum(pred[:, None, 0], gt[None, :, 0])
    return np.divide(inter, union, out=np.zeros_like(inter), where=union > 0)


def nms(moments: Sequence[Moment], iou_threshold: float = 0.7, max_keep: int | None = None) -> list[Moment]:
    """Greedy temporal NMS: keep the best-scored moment, drop those overlapping it by > iou_threshold.

    Returns the kept moments sorted by score (best first). Ties keep input order.
    """
    order = sorted(range(len(moments)), key=lambda i: -moments[i].score)
    kept: list[Moment] = []
    for i in order:
        m = moments[i]
        if all(tiou((m.start_s, m.end_s), (k.start_s, k.end_s)) <= iou_threshold for k in kept):
            kept.append(m)
            if max_keep is not None and len(kept) >= max_keep:
                break
    return kept
