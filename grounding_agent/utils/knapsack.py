"""0/1 knapsack: the most valuable set of items whose integer weights fit a capacity.

Keyshot summaries (TVSum/SumMe evaluation, `summarize`) pick whole shots whose total length, in frames,
fits a budget; this is the standard dynamic programme over (item, capacity), O(items x capacity) time and
a boolean table of the same size to recover the choice.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np


def knapsack(values: Sequence[float], weights: Sequence[int], capacity: int) -> list[int]:
    """Indices (ascending) of the items to take: maximal total value with total weight <= capacity.

    Items of weight 0 are free and taken when their value is positive; negative-value items are never taken.
    Ties keep the earlier item out (the DP only takes an item that strictly improves the value).

    Raises:
        ValueError: lengths differ, a weight or the capacity is negative, or a value is not finite.
    """
    vals = np.asarray(values, dtype=np.float64)
    wts = np.asarray(weights, dtype=np.int64)
    if vals.shape != wts.shape or vals.ndim != 1:
        raise ValueError(f"knapsack: {vals.size} values but {wts.size} weights")
    if capacity < 0 or (wts < 0).any():
        raise ValueError("knapsack: weights and capacity must be >= 0")
    if not np.isfinite(vals).all():
        raise ValueError("knapsack: values must be finite")
    best = np.zeros(capacity + 1)
    took = np.zeros((len(vals), capacity + 1), dtype=bool)
    for i, (v, w) in enumerate(zip(vals, wts, strict=True)):
        if v <= 0 or w > capacity:
            continue
        cand = np.full(capacity + 1, -np.inf)
        cand[w:] = best[: capacity + 1 - w] + v
        better = cand > best
        took[i] = better
        best = np.where(better, cand, best)
    chosen, c = [], capacity
    for i in range(len(vals) - 1, -1, -1):
        if took[i, c]:
            chosen.append(i)
            c -= int(wts[i])
    return sorted(chosen)
