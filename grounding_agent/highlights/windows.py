"""Highlight detection: saliency per 2-second clip, then top-k windows (temporal NMS + diversity).

Two modes, one output (a QVHighlights-shaped `Prediction`: `pred_saliency_scores` per 2-s clip and
`pred_relevant_windows` [start_s, end_s, score]):

- query-based: a query's CLIP saliency curve (`ClipSaliency.curve`) averaged per clip;
- generic (no query): a weighted fusion of CLIP similarity to a prompt set (and to the video's title),
  visual motion, scene novelty, audio loudness, speech arousal and an applause cue (`prosody`), speech
  activity (given a transcript), speech emotion (given a model), and per-clip scores the caller computed
  (`extra_clip_scores`: a learned head's "head", personalization's "like"), each averaged per clip and
  min-max normalised over the video (`signals` gathers the curves). A signal that is missing (no model, no
  audio stream, no transcript) or flat is left out, the remaining weights are renormalised, and the
  prediction records which signals it used and why others were absent.

Every window carries its evidence (`HighlightResult.evidence`): the signals that lifted it above the
video's typical level, with their contributions; in the prediction as `window_evidence`, one list per window.

Windows: every run of 1..16 clips is a candidate, scored by its total excess over a threshold
(sum of clip score - tau, tau = mean + threshold_std * std over the video), so the best window covers
the whole salient stretch instead of its single highest clip; then `temporal.nms` and a greedy diversity
penalty (score - diversity * max IoU with the windows already chosen). Window scores are divided by the
best candidate's, so the top window scores 1; a window that is mostly below the threshold scores < 0.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

# CLIP_LEN_S: QVHighlights' clip length
from grounding_agent.defaults import CLIP_LEN_S, HIGHLIGHTS, LIMITS, SAMPLING, SIGNAL_WEIGHTS
from grounding_agent.errors import ConfigError
from grounding_agent.highlights.plots import save_highlights_plot
from grounding_agent.highlights.result import HighlightResult
from grounding_agent.highlights.signals import collect_signals
from grounding_agent.types import Curve, Moment, Prediction, minmax
from grounding_agent.utils.temporal import nms, tiou

if TYPE_CHECKING:
    from grounding_agent.highlights.clip import ClipSaliency
    from grounding_agent.highlights.emotion import EmotionModel
    from grounding_agent.media.transcript import Transcript

__all__ = [
    "EXTRA_SIGNALS",
    "MIN_SPAN",
    "SIGNALS",
    "HighlightWeights",
    "WindowSearch",
    "clip_scores",
    "find_windows",
    "generic_highlights",
    "collect_signals",
    "num_clips",
    "query_highlights",
    "save_plot",
]

# Per-clip scores varying less than this are flat: no window stands out.
FLAT_SPAN = 1e-6
SIGNALS = (
    "clip",
    "motion",
    "scene",
    "audio",
    "speech",
    "arousal",
    "applause",
    "emotion",
    "title",
    "head",
    "like",
)
# Per-clip scores the caller computes (`generic_highlights(extra_clip_scores=...)`): a learned head, likes.
EXTRA_SIGNALS = ("head", "like")
EXTRA_HINTS = {"head": "no head scores given: --head DIR", "like": "no liked spans given: --like START-END"}
# Smallest per-clip range that counts as a real variation, in each signal's unit. A signal varying less
# is left out as steady (its noise would otherwise be blown up to the full [0, 1] by min-max scaling);
# one varying a little more is scaled by max(range, 2 * this) so it cannot dominate.
MIN_SPAN = {
    "clip": 0.0,
    "motion": 0.01,
    "scene": 0.05,
    "audio": 6.0,
    "speech": 0.1,
    "arousal": 0.5,
    "applause": 0.5,
    "emotion": 0.05,
    "title": 0.0,
    "head": 0.0,
    "like": 0.0,
}  # -, grey/255, TV, dB, fraction, z (floored spread: prosody), z, probability, -, -, -


@dataclass(frozen=True)
class HighlightWeights:
    """Weights of the generic detector's signals (renormalised over the signals actually present)."""

    clip: float = 1.0
    motion: float = 1.0
    scene: float = 0.5
    audio: float = 1.0
    speech: float = 1.0  # voice activity from a transcript (`speech.Transcript`), when one is given
    arousal: float = SIGNAL_WEIGHTS.arousal  # louder, higher, faster speech (`prosody`)
    applause: float = SIGNAL_WEIGHTS.applause  # loud broadband noise: claps, cheering
    emotion: float = SIGNAL_WEIGHTS.emotion  # a speech-emotion model's arousal, when one is given
    title: float = SIGNAL_WEIGHTS.title  # CLIP similarity to the video's title, when both are given
    head: float = SIGNAL_WEIGHTS.head  # a learned head's per-clip scores (`heads`), when given
    like: float = SIGNAL_WEIGHTS.like  # similarity to the clips a user liked (`personalize`), when given

    def __post_init__(self) -> None:
        for name, value in asdict(self).items():
            if not math.isfinite(value) or value < 0:
                raise ConfigError(f"highlight weight {name} must be a finite number >= 0, got {value}")

    def of(self, name: str) -> float:
        """The weight of signal `name` (one of `SIGNALS`)."""
        return float(asdict(self)[name])

    @classmethod
    def parse(cls, text: str) -> HighlightWeights:
        """'audio=2,motion=0.5' -> weights (unnamed ones keep their defaults)."""
        values: dict[str, float] = {}
        for part in filter(None, (p.strip() for p in text.split(","))):
            name, _, value = part.partition("=")
            if name.strip() not in SIGNALS:
                raise ConfigError(
                    f"unknown signal {name.strip()!r} in weights {text!r}; use {', '.join(SIGNALS)}"
                )
            try:
                values[name.strip()] = float(value)
            except ValueError:
                raise ConfigError(f"weight {part!r} is not NAME=NUMBER (e.g. audio=2)") from None
        return cls(**values)


@dataclass(frozen=True)
class WindowSearch:
    """How windows are proposed and chosen.

    Attributes:
        top_k: windows returned.
        widths_clips: candidate lengths, in clips.
        nms_iou: candidates overlapping a better one by more than this are dropped.
        diversity: penalty per unit of IoU with an already chosen window.
        threshold_std: tau = mean + threshold_std * std of the clip scores; clips above tau add to a
            window's score, clips below take away.
    """

    top_k: int = 5
    widths_clips: tuple[int, ...] = (1, 2, 3, 4, 5, 6, 8, 10, 12, 16)
    nms_iou: float = 0.3
    diversity: float = 0.5
    threshold_std: float = 0.5

    def __post_init__(self) -> None:
        LIMITS.check_count(self.top_k, "top_k")
        if self.top_k < 1 or not self.widths_clips or min(self.widths_clips) < 1:
            raise ConfigError(f"top_k and window widths must be >= 1, got {self.top_k}, {self.widths_clips}")
        if not 0 <= self.nms_iou <= 1 or self.diversity < 0:
            raise ConfigError(
                f"nms_iou must be in [0, 1] and diversity >= 0, got {self.nms_iou}, {self.diversity}"
            )


# --- per-clip scores and windows -------------------------------------------------------------------


def num_clips(duration_s: float, clip_len_s: float = CLIP_LEN_S) -> int:
    return max(1, math.ceil(duration_s / clip_len_s - 1e-9))


def clip_scores(curve: Curve, duration_s: float, clip_len_s: float = CLIP_LEN_S) -> np.ndarray:
    """Mean of the curve over each clip [k*c, (k+1)*c); a clip with no sample gets the curve at its centre."""
    if len(curve) == 0:
        raise ConfigError(f"curve {curve.name!r} is empty: nothing to score")
    n = num_clips(duration_s, clip_len_s)
    ids = np.clip(np.floor(curve.times_s / clip_len_s).astype(np.int64), 0, n - 1)
    sums = np.bincount(ids, weights=curve.values, minlength=n)
    counts = np.bincount(ids, minlength=n)
    centres = (np.arange(n) + 0.5) * clip_len_s
    filled = np.interp(centres, curve.times_s, curve.values)
    return np.where(counts > 0, sums / np.maximum(counts, 1), filled)


def find_windows(
    scores: np.ndarray,
    duration_s: float,
    search: WindowSearch = WindowSearch(),
    clip_len_s: float = CLIP_LEN_S,
) -> list[Moment]:
    """Top-k windows over per-clip scores: excess-scored candidates, temporal NMS, diversity penalty.

    Raises:
        ConfigError: scores that are empty, not flat, or not finite; a duration that is not > 0.
    """
    try:
        scores = np.asarray(scores, dtype=np.float64)
    except (TypeError, ValueError):
        raise ConfigError("scores must be a flat list of numbers, one per clip") from None
    if scores.ndim != 1 or len(scores) == 0 or not np.isfinite(scores).all():
        raise ConfigError(f"scores must be a non-empty flat list of finite numbers (shape {scores.shape})")
    if isinstance(duration_s, bool) or not isinstance(duration_s, (int, float)) or not duration_s > 0 \
            or not np.isfinite(duration_s):  # fmt: skip
        raise ConfigError(f"duration_s must be a number of seconds > 0, got {duration_s!r}")
    n = len(scores)
    if n and np.ptp(scores) <= FLAT_SPAN:
        return []  # a flat curve: nothing stands out, so no window is a highlight
    tau = scores.mean() + search.threshold_std * scores.std()
    cum = np.concatenate([[0.0], np.cumsum(scores - tau)])
    spans, excess = [], []
    for width in sorted({min(w, n) for w in search.widths_clips}):
        starts = np.arange(0, n - width + 1)
        spans.extend((int(s), int(s) + width) for s in starts)
        excess.append(cum[starts + width] - cum[starts])
    values = np.concatenate(excess)
    top = values.max()
    values = values / top if top > 1e-12 else values  # the top candidate scores 1
    candidates = [
        Moment(a * clip_len_s, max(a * clip_len_s, min(b * clip_len_s, duration_s)), float(v))
        for (a, b), v in zip(spans, values, strict=True)
    ]
    # A sliver of the last, partial clip is not a highlight worth showing on its own.
    min_len_s = 0.5 * min(clip_len_s, duration_s)
    candidates = [m for m in candidates if m.length_s >= min_len_s] or candidates
    # The diversity pass only needs a few more candidates than it returns.
    pool = nms(candidates, iou_threshold=search.nms_iou, max_keep=4 * search.top_k + 16)
    chosen: list[Moment] = []
    while pool and len(chosen) < search.top_k:
        adjusted = [
            m.score
            - search.diversity
            * max((tiou((m.start_s, m.end_s), (c.start_s, c.end_s)) for c in chosen), default=0)
            for m in pool
        ]
        best = int(np.argmax(adjusted))
        chosen.append(pool.pop(best).with_score(float(adjusted[best])))
    return sorted(chosen, key=lambda m: -m.score)


def _prediction(
    windows: list[Moment], saliency: np.ndarray, *, qid: int | str, vid: str, query: str, **extra: object
) -> Prediction:
    pred = Prediction.from_moments(qid, vid, query, windows, **extra)
    pred.pred_saliency_scores = [float(round(v, 6)) for v in saliency]
    return pred


# --- query-based ------------------------------------------------------------------------------------


def query_highlights(
    saliency: ClipSaliency,
    path: str | Path,
    query: str,
    *,
    fps: float | None = None,
    search: WindowSearch = WindowSearch(),
    qid: int | str = 0,
    head_scores: np.ndarray | None = None,
) -> HighlightResult:
    """Highlights of `query` in a video from its CLIP saliency curve, or from `head_scores` (one per 2-s
    clip: a learned head such as VCL that read the query; `heads.head_scores` computes them)."""
    from grounding_agent.media.video import open_video

    LIMITS.check_text(query)
    if fps is not None:
        LIMITS.check_fps(fps)  # before the video is opened: nothing runs away

    duration_s = open_video(path).duration_s
    if head_scores is None:
        name, curve = "clip", saliency.curve(path, query, fps=fps)
        raw = clip_scores(curve, duration_s)
    else:
        raw = np.asarray(head_scores, dtype=np.float64)
        name, curve = "head", Curve("head", CLIP_LEN_S * (np.arange(len(raw)) + 0.5), raw)
    windows = find_windows(minmax(raw), duration_s, search)
    result = HighlightResult(
        Prediction(qid, Path(path).stem, query, []),
        windows,
        {name: minmax(raw)},
        {name: curve},
        {name: 1.0},
        {},
        duration_s,
    )
    return _with_evidence(
        result,
        raw,
        qid=qid,
        vid=Path(path).stem,
        query=query,
        highlight_mode="query",
        model=saliency.model_id,
    )


# --- generic ----------------------------------------------------------------------------------------


def generic_highlights(
    path: str | Path,
    *,
    saliency: ClipSaliency | None = None,
    prompts: tuple[str, ...] = HIGHLIGHTS.prompts,
    weights: HighlightWeights = HighlightWeights(),
    fps: float = SAMPLING.fps,
    search: WindowSearch = WindowSearch(),
    qid: int | str = 0,
    transcript: Transcript | None = None,
    title: str | None = None,
    emotion: EmotionModel | None = None,
    extra_clip_scores: dict[str, np.ndarray] | None = None,
) -> HighlightResult:
    """Query-free highlights: fused CLIP-prompt/title, motion, scene, audio, speech arousal (and speech,
    emotion, head and like scores when given) saliency per 2-s clip, each window with its evidence.

    Args:
        title: the video's title (or any metadata text) as a CLIP query: the "title" signal (needs `saliency`).
        emotion: a speech-emotion model: the "emotion" signal.
        extra_clip_scores: name in `EXTRA_SIGNALS` -> one score per 2-s clip, computed by the caller.

    Raises:
        ConfigError: an extra signal of an unknown name, of the wrong length or not finite.
    """
    from grounding_agent.media.video import open_video

    LIMITS.check_fps(fps)  # before the video is opened: nothing runs away
    if title is not None:
        LIMITS.check_text(title)

    duration_s = open_video(path).duration_s
    extra = _check_extra(extra_clip_scores or {}, num_clips(duration_s))
    skip = frozenset(name for name in SIGNALS if weights.of(name) == 0)
    found = collect_signals(
        path,
        saliency=saliency,
        prompts=prompts,
        fps=fps,
        skip=skip,
        transcript=transcript,
        title=title,
        emotion=emotion,
    )
    curves, absent = found.curves, found.absent
    raw_scores = {name: clip_scores(curve, duration_s) for name, curve in curves.items()}
    for name in EXTRA_SIGNALS:
        if name in extra and name not in skip:
            raw_scores[name] = extra[name]
        elif name not in skip:
            absent[name] = EXTRA_HINTS[name]
    per_clip: dict[str, np.ndarray] = {}
    for name, raw in raw_scores.items():
        if np.ptp(raw) <= max(MIN_SPAN[name], 1e-9):
            absent[name] = f"steady over this video (varies by {np.ptp(raw):.3g} < {MIN_SPAN[name]:g})"
        else:
            per_clip[name] = (raw - raw.min()) / max(np.ptp(raw), 2 * MIN_SPAN[name])
    total = sum(weights.of(name) for name in per_clip)
    used = {name: weights.of(name) / total for name in per_clip} if total > 0 else {}
    fused = sum((used[name] * per_clip[name] for name in used), np.zeros(num_clips(duration_s)))
    windows = find_windows(fused, duration_s, search)
    result = HighlightResult(
        Prediction(qid, Path(path).stem, "", []),
        windows,
        {**per_clip, "fused": fused},
        curves,
        used,
        absent,
        duration_s,
        describers=found.describers(),
    )
    return _with_evidence(
        result,
        fused,
        qid=qid,
        vid=Path(path).stem,
        query="",
        highlight_mode="generic",
        signals_used={k: round(v, 6) for k, v in used.items()},
        signals_absent=dict(absent),
    )


def _check_extra(extra: dict[str, np.ndarray], n_clips: int) -> dict[str, np.ndarray]:
    """The caller's per-clip scores as float arrays, or a one-line ConfigError saying what is wrong."""
    out = {}
    for name, scores in extra.items():
        if name not in EXTRA_SIGNALS:
            raise ConfigError(f"unknown extra signal {name!r}; use {', '.join(EXTRA_SIGNALS)}")
        try:
            values = np.asarray(scores, dtype=np.float64)
        except (TypeError, ValueError):
            raise ConfigError(f"{name} scores must be numbers, one per 2-s clip") from None
        if values.shape != (n_clips,) or not np.isfinite(values).all():
            raise ConfigError(
                f"{name} scores must be {n_clips} finite numbers (one per 2-s clip), got shape {values.shape}"
            )
        out[name] = values
    return out


def _with_evidence(result: HighlightResult, saliency: np.ndarray, **fields: object) -> HighlightResult:
    """The result with each window's evidence on the window and in the prediction (`window_evidence`)."""
    evidence = [result.evidence(w.start_s, w.end_s) for w in result.windows]
    result.windows = [
        w.with_score(w.score, {"evidence": [e.to_dict() for e in ev]})
        for w, ev in zip(result.windows, evidence, strict=True)
    ]
    result.prediction = _prediction(
        result.windows,
        saliency,
        window_evidence=[[e.to_dict() for e in ev] for ev in evidence],
        **fields,  # type: ignore[arg-type]
    )
    return result


# --- picture ----------------------------------------------------------------------------------------


def save_plot(result: HighlightResult, path: str | Path, *, title: str | None = None) -> Path:
    """PNG of the per-clip saliency, the raw curves and the chosen windows (`plots.save_highlights_plot`)."""
    return save_highlights_plot(result, path, title=title)
