"""`HighlightResult`: what a highlight detector found, with its evidence; made by `windows`, drawn by `plots`."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np

from grounding_agent.defaults import CLIP_LEN_S, EVIDENCE_MIN_LIFT
from grounding_agent.types import Curve, Evidence, EvidenceKind, Moment, Prediction

# The evidence channel of each signal (`types.EvidenceKind`).
EVIDENCE_KIND: dict[str, EvidenceKind] = {
    "clip": "saliency",
    "title": "saliency",
    "head": "saliency",
    "like": "saliency",
    "motion": "saliency",
    "scene": "saliency",
    "audio": "audio",
    "arousal": "audio",
    "applause": "audio",
    "emotion": "audio",
    "speech": "speech",
}
SIGNAL_NAMES = {
    "clip": "CLIP similarity to the prompts",
    "title": "CLIP similarity to the title",
    "head": "learned head",
    "like": "like the clips you liked",
    "motion": "motion",
    "scene": "scene change",
    "audio": "loudness",
    "arousal": "speech arousal",
    "applause": "applause-like noise",
    "emotion": "speech emotion",
    "speech": "speech activity",
}


@dataclass
class HighlightResult:
    """What a detector found, and the evidence (for plots and explanations).

    Attributes:
        prediction: QVHighlights-shaped answer.
        windows: the chosen windows, best first (each `explanation["evidence"]`: `evidence()` as dicts).
        clip_scores: signal name -> per-clip scores in [0, 1] (plus "fused"; query mode: "clip" only).
        curves: the raw signals on their own time axes.
        weights: the weights actually used (renormalised), by signal.
        absent: signal name -> why it was not used.
        duration_s: the video's duration.
        describers: signal name -> (start_s, end_s) -> words on what stood out there (e.g. prosody's).
    """

    prediction: Prediction
    windows: list[Moment]
    clip_scores: dict[str, np.ndarray]
    curves: dict[str, Curve]
    weights: dict[str, float]
    absent: dict[str, str] = field(default_factory=dict)
    duration_s: float = 0.0
    describers: dict[str, Callable[[float, float], str]] = field(default_factory=dict)

    def evidence(self, start_s: float, end_s: float) -> list[Evidence]:
        """The signals that lift [start_s, end_s] above the video's typical level, biggest contribution first.

        A signal lifts a span when its mean per-clip score there (clips weighted by overlap) exceeds its
        median over the video by at least `EVIDENCE_MIN_LIFT`; its contribution to the fused score is
        weight x that mean. Each is an `Evidence` of the signal's channel (`EVIDENCE_KIND`), source
        "highlights:NAME", score the mean, text the numbers (and what stood out, where a describer says).
        """
        overlap = self._overlap(start_s, end_s)
        if overlap.sum() <= 0:
            return []
        found = []
        for name, weight in self.weights.items():
            scores = self.clip_scores.get(name)
            if scores is None or len(scores) != len(overlap):
                continue
            here = float(overlap @ scores / overlap.sum())
            typical = float(np.median(scores))
            if here - typical < EVIDENCE_MIN_LIFT:
                continue
            text = (
                f"{SIGNAL_NAMES.get(name, name)}: {here:.2f} here vs {typical:.2f} typical; "
                f"contributes {weight:.2f} x {here:.2f} = {weight * here:.2f}"
            )
            if name in self.describers:
                text += f" ({self.describers[name](start_s, end_s)})"
            kind = EVIDENCE_KIND.get(name, "saliency")
            found.append(
                (weight * here, Evidence(kind, start_s, end_s, round(here, 4), text, f"highlights:{name}"))
            )
        return [e for _, e in sorted(found, key=lambda pair: -pair[0])]

    def _overlap(self, start_s: float, end_s: float) -> np.ndarray:
        """Seconds of [start_s, end_s] inside each 2-s clip."""
        n = len(next(iter(self.clip_scores.values()), ()))
        edges = np.arange(n + 1) * CLIP_LEN_S
        return np.clip(np.minimum(edges[1:], end_s) - np.maximum(edges[:-1], start_s), 0.0, None)
