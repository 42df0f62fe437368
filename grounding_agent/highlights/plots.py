"""Pictures: the highlights plot and the grounding timeline (PNG via matplotlib, written atomically).

Both draw time on x from 0 to the video's duration and scores on a 0-1 axis that ends at 1. Windows and
moments are bars in lanes *below* the curve: overlapping bars go to separate lanes (interval colouring),
so labels never pile up, and a bar's height says nothing about its score (the label does).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from grounding_agent.defaults import CLIP_LEN_S
from grounding_agent.highlights.result import HighlightResult
from grounding_agent.io import atomic_path
from grounding_agent.types import Moment, minmax

NOTHING_STANDS_OUT = "nothing stands out: the saliency curve is flat"
_SIGNAL_COLORS = {
    "clip": "tab:purple",
    "motion": "tab:blue",
    "scene": "tab:olive",
    "audio": "tab:orange",
    "fused": "black",
}
_BAR_COLORS = ("tab:green", "tab:red", "tab:cyan", "tab:pink", "tab:brown", "tab:gray")


@dataclass(frozen=True)
class Bar:
    """One labelled span on a timeline row."""

    start_s: float
    end_s: float
    label: str
    color: str = "tab:green"


def lanes(spans: Sequence[tuple[float, float]]) -> list[int]:
    """A lane per span such that spans sharing a lane do not overlap (greedy by start: fewest lanes)."""
    order = sorted(range(len(spans)), key=lambda i: (spans[i][0], spans[i][1]))
    lane_end: list[float] = []
    out = [0] * len(spans)
    for i in order:
        start, end = spans[i]
        # Touching spans share a lane only with a visible gap, else their labels would collide.
        free = next((k for k, e in enumerate(lane_end) if e <= start), None)
        if free is None:
            free = len(lane_end)
            lane_end.append(end)
        lane_end[free] = max(end, start + 1e-9)
        out[i] = free
    return out


def _pyplot():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def _draw_bars(ax, rows: Sequence[tuple[str, Sequence[Bar]]], duration_s: float) -> None:
    """Rows of bars (a row per group, lanes inside a row), labelled on the y axis."""
    y, ticks, names = 0.0, [], []
    for name, bars in reversed(rows):
        assigned = lanes([(b.start_s, b.end_s) for b in bars]) if bars else []
        depth = max(assigned, default=0) + 1
        for bar, lane in zip(bars, assigned, strict=True):
            top = y + depth - lane - 0.5
            width = max(bar.end_s - bar.start_s, duration_s * 0.002)
            ax.barh(
                top,
                width,
                left=bar.start_s,
                height=0.7,
                color=bar.color,
                alpha=0.75,
                edgecolor="white",
                linewidth=1.5,
            )
            ax.text(
                bar.start_s + width / 2, top, bar.label, ha="center", va="center", fontsize=7, clip_on=True
            )
        ticks.append(y + depth / 2)
        names.append(name)
        y += depth
    ax.set_yticks(ticks, names, fontsize=8)
    ax.set_ylim(0, max(y, 1))
    ax.set_xlim(0, duration_s)
    ax.grid(axis="x", alpha=0.3)


def _save(fig, path: str | Path) -> Path:
    plt = _pyplot()
    path = Path(path)
    try:
        with atomic_path(path) as tmp:
            fig.savefig(tmp, dpi=110, format=path.suffix.lstrip(".") or "png")
    finally:
        plt.close(fig)
    return path


def save_highlights_plot(result: HighlightResult, path: str | Path, *, title: str | None = None) -> Path:
    """PNG: per-clip saliency (0-1) with each window as a ranked bar below it; says so when nothing stands out."""
    plt = _pyplot()
    n = len(next(iter(result.clip_scores.values())))
    edges = np.arange(n + 1) * CLIP_LEN_S
    edges[-1] = max(min(edges[-1], result.duration_s), edges[-2] + 1e-3)  # the last clip may be short
    duration_s = float(edges[-1])
    fig, (top, middle, bottom) = plt.subplots(3, 1, figsize=(12, 7), sharex=True, height_ratios=(3, 1.2, 2))
    main = "fused" if "fused" in result.clip_scores else "clip"
    for name, scores in result.clip_scores.items():
        style = {"lw": 2.6, "zorder": 3} if name == main else {"lw": 1.3, "alpha": 0.85}
        top.stairs(
            scores,
            edges,
            baseline=None,
            label=f"{name} (per 2-s clip)",
            color=_SIGNAL_COLORS.get(name),
            **style,
        )
    top.set_ylim(0, 1)
    top.set_ylabel("saliency (0-1)")
    bars = [
        Bar(w.start_s, w.end_s, f"#{rank} {w.score:.2f}", _BAR_COLORS[(rank - 1) % len(_BAR_COLORS)])
        for rank, w in enumerate(result.windows, 1)
    ]
    _draw_bars(middle, [("windows", bars)], duration_s)
    if not result.windows:
        middle.text(duration_s / 2, 0.5, NOTHING_STANDS_OUT, ha="center", va="center", fontsize=10)
    for bar in bars:
        top.axvspan(bar.start_s, bar.end_s, color=bar.color, alpha=0.12, lw=0)
    for name, curve in result.curves.items():
        bottom.plot(curve.times_s, minmax(curve.values), lw=1, label=name, color=_SIGNAL_COLORS.get(name))
    bottom.set_ylim(0, 1)
    bottom.set_ylabel("raw signals\n(min-max)")
    bottom.set_xlabel("time (s)")
    for ax in (top, bottom):
        ax.legend(loc="upper left", bbox_to_anchor=(1.01, 1.0), fontsize=8, frameon=False)
        ax.grid(axis="x", alpha=0.3)
    pred = result.prediction
    top.set_title(title or (f"query: {pred.query}" if pred.query else "generic highlights"), fontsize=11)
    top.set_xlim(0, duration_s)
    fig.tight_layout()
    return _save(fig, path)


def save_timeline(
    path: str | Path,
    duration_s: float,
    moments: Sequence[Moment],
    *,
    steps: Sequence[tuple[str, Sequence[Moment]]] = (),
    curve: tuple[np.ndarray, np.ndarray] | None = None,
    speech: Sequence[Bar] = (),
    title: str = "",
) -> Path:
    """PNG of one answer: the returned moments, each sub-event's candidates, and optionally a saliency
    curve (times_s, scores) and speech segments, on one time axis from 0 to `duration_s`."""
    plt = _pyplot()
    rows: list[tuple[str, list[Bar]]] = [
        (
            "moments",
            [
                Bar(m.start_s, m.end_s, f"#{i} {m.score:.2f}", _BAR_COLORS[0])
                for i, m in enumerate(moments, 1)
            ],
        )
    ]
    for k, (name, candidates) in enumerate(steps):
        color = _BAR_COLORS[(k + 1) % len(_BAR_COLORS)]
        rows.append((name, [Bar(m.start_s, m.end_s, f"{m.score:.2f}", color) for m in candidates]))
    if speech:
        rows.append(("speech", list(speech)))
    n_lanes = sum(max(lanes([(b.start_s, b.end_s) for b in bars]), default=0) + 1 for _, bars in rows)
    if curve is not None:
        fig, (ax_curve, ax_bars) = plt.subplots(
            2, 1, figsize=(12, 2.2 + 0.45 * n_lanes), sharex=True, height_ratios=(2, max(1.0, 0.5 * n_lanes))
        )
        times_s, scores = curve
        ax_curve.plot(times_s, scores, color="tab:purple", lw=1.5, label="saliency")
        ax_curve.set_ylim(0, 1)
        ax_curve.set_ylabel("saliency (0-1)", fontsize=8)
        ax_curve.grid(axis="x", alpha=0.3)
        for m in moments:
            ax_curve.axvspan(m.start_s, m.end_s, color=_BAR_COLORS[0], alpha=0.15, lw=0)
    else:
        fig, ax_bars = plt.subplots(1, 1, figsize=(12, 1.0 + 0.45 * n_lanes))
        ax_curve = ax_bars
    _draw_bars(ax_bars, rows, duration_s)
    if not moments:
        ax_bars.text(duration_s / 2, 0.5, "no moment found", ha="center", va="center", fontsize=10)
    ax_bars.set_xlabel("time (s)")
    if title:
        ax_curve.set_title(title, fontsize=11)
    fig.tight_layout()
    return _save(fig, path)
