"""Saliency features of a candidate window, and their fusion with a grounder's confidence.

The agent reranks grounded candidates with a query's saliency curve (`ClipSaliency.curve`):

    feats = window_features(curve, moment)              # z-normalised over the video by default
    score = fuse(moment.score, feats, FusionWeights())  # in [0, 1] when the confidence is

(`agent.rerank.Reranker` applies both to a list of moments, with the evidence typed.)

Why z-normalise per video: raw CLIP cosines sit in a narrow, model- and query-dependent band (about
0.15-0.35 for CLIP ViT-B/32), so "0.27 inside the window" means nothing alone. After subtracting the
video's mean and dividing by its standard deviation, a feature says how many standard deviations this
window stands out from the rest of *this* video, which is comparable across videos, queries and models.

Fused score (documented contract):

    score = (w_conf * confidence + w_mean * sigmoid(mean_in) + w_contrast * sigmoid(contrast)
             + w_peak * sigmoid(peak)) / (w_conf + w_mean + w_contrast + w_peak)

The logistic squashes z-scores into (0, 1) so they live on the confidence's scale; a window that is
average for its video (z = 0) contributes 0.5 per saliency term.

Speech (with a transcript, `speech.Transcript`): `speech_features` scores how well the words spoken in a
window match the query, `fuse_speech` mixes that in: (1 - w) * score + w * match.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass

import numpy as np

from grounding_agent.errors import ConfigError
from grounding_agent.types import Curve, Moment


@dataclass(frozen=True)
class WindowFeatures:
    """What the saliency curve says about one window.

    Attributes:
        mean_in: mean curve value of the frames inside [start_s, end_s].
        mean_out: mean over the frames outside (0 when the window covers every frame).
        contrast: mean_in - mean_out.
        peak: the highest value inside.
        peak_time_s: when that peak is.
        frames_in: how many sampled frames fall inside (0: the window is shorter than the sampling step,
            and the values are interpolated at its centre).
    """

    mean_in: float
    mean_out: float
    contrast: float
    peak: float
    peak_time_s: float
    frames_in: int

    def to_dict(self) -> dict[str, float]:
        return asdict(self)


@dataclass(frozen=True)
class FusionWeights:
    """Weights of `fuse`. Defaults trust the grounder most and use saliency to break near-ties."""

    confidence: float = 0.5
    mean: float = 0.2
    contrast: float = 0.3
    peak: float = 0.0

    def __post_init__(self) -> None:
        values = asdict(self).values()
        if any(not math.isfinite(v) or v < 0 for v in values) or sum(values) <= 0:
            raise ConfigError(f"fusion weights must be finite, >= 0 and not all 0, got {asdict(self)}")


def window_features(curve: Curve, moment: Moment, *, normalize: bool = True) -> WindowFeatures:
    """Features of `moment`'s window on `curve` (z-normalised over the whole curve unless normalize=False).

    Raises:
        ConfigError: if the curve is empty.
    """
    if len(curve) == 0:
        raise ConfigError(f"curve {curve.name!r} is empty: sample at least one frame")
    values = curve.zscore().values if normalize else curve.values
    times = curve.times_s
    inside = (times >= moment.start_s) & (times <= moment.end_s)
    n_in = int(inside.sum())
    if n_in == 0:
        centre_s = 0.5 * (moment.start_s + moment.end_s)
        value = float(np.interp(centre_s, times, values))
        mean_out = float(values.mean())
        return WindowFeatures(value, mean_out, value - mean_out, value, centre_s, 0)
    inner = values[inside]
    mean_in = float(inner.mean())
    mean_out = float(values[~inside].mean()) if n_in < len(values) else 0.0
    top = int(np.argmax(inner))
    return WindowFeatures(
        mean_in, mean_out, mean_in - mean_out, float(inner[top]), float(times[inside][top]), n_in
    )


def _sigmoid(z: float) -> float:
    return 1.0 / (1.0 + math.exp(-max(-60.0, min(60.0, z))))


def fuse(confidence: float, features: WindowFeatures, weights: FusionWeights = FusionWeights()) -> float:
    """The documented weighted mean of the confidence and the squashed saliency features (see module doc)."""
    w = weights
    total = w.confidence + w.mean + w.contrast + w.peak
    score = (
        w.confidence * float(confidence)
        + w.mean * _sigmoid(features.mean_in)
        + w.contrast * _sigmoid(features.contrast)
        + w.peak * _sigmoid(features.peak)
    )
    return score / total


# --- speech: the words spoken in the window ---------------------------------------------------------


@dataclass(frozen=True)
class SpeechFeatures:
    """What the transcript says about one window.

    Attributes:
        match: how well the words spoken inside the window match the query, in [0, 1] (the fuzzy
            word-level alignment score of `speech.search_words`; 0 when nothing relevant is said).
        speech_fraction: the fraction of the window with voice activity.
        said: the words spoken inside the window (for evidence and explanations).
    """

    match: float
    speech_fraction: float
    said: str

    def to_dict(self) -> dict[str, float | str]:
        return asdict(self)


def speech_features(transcript, moment: Moment, query: str) -> SpeechFeatures:
    """`SpeechFeatures` of `moment`'s window for `query` (its quote, if it has one, else its words)."""
    from grounding_agent.media.speech_query import speech_query
    from grounding_agent.media.transcript import search_words

    words = transcript.words_between(moment.start_s, moment.end_s)
    best = search_words(words, speech_query(query) or query, top_k=1, min_score=0.0) if words else []
    return SpeechFeatures(
        match=best[0].score if best else 0.0,
        speech_fraction=transcript.speech_fraction(moment.start_s, moment.end_s),
        said=" ".join(w.text for w in words),
    )


def fuse_speech(score: float, features: SpeechFeatures, weight: float = 0.3) -> float:
    """(1 - weight) * score + weight * match: a window where the query's words are said gains up to `weight`."""
    if not 0.0 <= weight <= 1.0:
        raise ConfigError(f"speech weight must be in [0, 1], got {weight}")
    return (1.0 - weight) * float(score) + weight * features.match
