"""`HighlightResult`: what a highlight detector found, with its evidence; made by `windows`, drawn by `plots`."""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from grounding_agent.types import Curve, Moment, Prediction


@dataclass
class HighlightResult:
    """What a detector found, and the evidence (for plots and explanations).

    Attributes:
        prediction: QVHighlights-shaped answer.
        windows: the chosen windows, best first.
        clip_scores: signal name -> per-clip scores in [0, 1] (plus "fused"; query mode: "clip" only).
        curves: the raw signals on their own time axes.
        weights: the weights actually used (renormalised), by signal.
        absent: signal name -> why it was not used.
        duration_s: the video's duration.
    """

    prediction: Prediction
    windows: list[Moment]
    clip_scores: dict[str, np.ndarray]
    curves: dict[str, Curve]
    weights: dict[str, float]
    absent: dict[str, str] = field(default_factory=dict)
    duration_s: float = 0.0
