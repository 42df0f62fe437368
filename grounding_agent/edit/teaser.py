"""A teaser of an asked length: whole sentences when there is a transcript, highlight windows otherwise.

With sentences (transcript segments, from their first word's start to their last word's end, padded a
little), the teaser is the set of sentences whose lengths add up to the asked length within
`SHORT_FORM.teaser_slack_s` and whose highlight score (the fused per-2-s-clip saliency over each sentence,
times its length) is highest: a small knapsack over 50-ms steps. So it starts and ends on sentence
boundaries and keeps no silence between them. Without sentences (or when no set fits), the highlight
windows are grown around their middles (or trimmed) until they add up to the asked length.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from grounding_agent.defaults import CLIP_LEN_S, SHORT_FORM

_STEP_S = 0.05  # knapsack resolution
_FLOOR = 0.05  # every sentence is worth a little, so a flat curve still fills the length


def sentence_spans(
    transcript, duration_s: float, pad_s: float = SHORT_FORM.teaser_pad_s
) -> list[tuple[float, float]]:
    """Each sentence's (start, end): first word to last word, padded by `pad_s` but never into a neighbour."""
    raw = []
    for seg in transcript.segments:
        words = [w for w in seg.words if w.text.strip()]
        start, end = (words[0].start_s, words[-1].end_s) if words else (seg.start_s, seg.end_s)
        if end > start:
            raw.append((start, end))
    raw.sort()
    out = []
    for i, (start, end) in enumerate(raw):
        lo = raw[i - 1][1] if i else 0.0
        hi = raw[i + 1][0] if i + 1 < len(raw) else duration_s
        out.append((max(start - pad_s, (lo + start) / 2, 0.0), min(end + pad_s, (end + hi) / 2, duration_s)))
    return out


def span_score(fused: np.ndarray, start_s: float, end_s: float) -> float:
    """Mean fused highlight score of the 2-s clips a span overlaps, weighted by the overlap."""
    if len(fused) == 0:
        return 0.0
    edges = np.arange(len(fused) + 1) * CLIP_LEN_S
    overlap = np.clip(np.minimum(edges[1:], end_s) - np.maximum(edges[:-1], start_s), 0, None)
    return float((fused * overlap).sum() / overlap.sum()) if overlap.sum() > 0 else 0.0


def pick_sentences(
    spans: Sequence[tuple[float, float]],
    scores: Sequence[float],
    total_s: float,
    slack_s: float = SHORT_FORM.teaser_slack_s,
) -> list[int] | None:
    """Indices of the sentences to keep (best summed score x length, total within `slack_s` of `total_s`,
    the closest to it on ties); None when no set fits."""
    cap = int(round((total_s + slack_s) / _STEP_S))
    best = np.full(cap + 1, -np.inf)
    best[0] = 0.0
    choice: list[list[int]] = [[] for _ in range(cap + 1)]
    for i, (start, end) in enumerate(spans):
        size = max(1, int(round((end - start) / _STEP_S)))
        value = (max(scores[i], 0.0) + _FLOOR) * (end - start)
        for c in range(cap, size - 1, -1):
            if best[c - size] + value > best[c]:
                best[c], choice[c] = best[c - size] + value, [*choice[c - size], i]
    low = int(round((total_s - slack_s) / _STEP_S))
    feasible = [c for c in range(max(low, 1), cap + 1) if np.isfinite(best[c])]
    if not feasible:
        return None
    top = max(best[c] for c in feasible)
    # Among the sets worth at least 95 % of the best, the one closest to the asked length.
    good = [c for c in feasible if best[c] >= 0.95 * top]
    c = min(good, key=lambda c: abs(c * _STEP_S - total_s))
    return sorted(choice[c])


def fit_windows(
    spans: list[tuple[float, float]], total_s: float, duration_s: float
) -> list[tuple[float, float]]:
    """Windows (best first) trimmed or grown around their middles until they add up to `total_s`."""
    out: list[tuple[float, float]] = []
    for start, end in spans:  # best first: the later ones give way (overlaps count once)
        excess = _length(_merged([*out, (start, end)])) - total_s
        if excess > 0:
            end -= excess
        if end > start:
            out = _merged([*out, (start, end)])
        if excess >= 0:
            break
    for _ in range(20):  # grow: each round shares what is missing; overlaps merge
        missing = total_s - _length(out)
        if missing <= 1e-3 or not out or _length(out) >= duration_s - 1e-3:
            break
        grow = missing / (2 * len(out))
        out = _merged([(max(0.0, a - grow), min(duration_s, b + grow)) for a, b in out])
    return out


def _length(spans: list[tuple[float, float]]) -> float:
    return sum(b - a for a, b in spans)


def _merged(spans: list[tuple[float, float]]) -> list[tuple[float, float]]:
    out: list[tuple[float, float]] = []
    for a, b in sorted(spans):
        if out and a <= out[-1][1]:
            out[-1] = (out[-1][0], max(out[-1][1], b))
        else:
            out.append((a, b))
    return out
