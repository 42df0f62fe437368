"""Personalization: rank clips like the one to five spans a user liked (`--like START-END`).

    likes = parse_likes(["12-18", "40.5-44"])
    scores = personalize(feats, likes)      # feats: `heads.clip_features(...)`, one row per 2-s clip

Few-shot, no training: each clip's feature minus the video's mean feature (what every clip shares, which
dominates CLIP image embeddings) is compared by cosine with the liked clips' prototype, the mean of their
centred features weighted by how much of each clip a liked span covers. Callers add the result as the
"like" signal of the generic detector.
"""

from __future__ import annotations

import math

import numpy as np

from grounding_agent.defaults import CLIP_LEN_S, HEADS
from grounding_agent.errors import ConfigError


def parse_likes(texts: list[str]) -> list[tuple[float, float]]:
    """'START-END' strings in seconds ('12-18.5') -> spans; checked by `check_likes` once the video is known."""
    spans = []
    for text in texts:
        start, sep, end = str(text).strip().partition("-")
        try:
            if not sep:
                raise ValueError
            spans.append((float(start), float(end)))
        except ValueError:
            raise ConfigError(f"--like {text!r} is not START-END in seconds (e.g. --like 12-18.5)") from None
    return spans


def check_likes(likes_s: list[tuple[float, float]], duration_s: float) -> None:
    """1..max_likes spans, each finite, start < end, inside [0, duration_s]; else a one-line ConfigError."""
    if not 1 <= len(likes_s) <= HEADS.max_likes:
        raise ConfigError(f"give 1 to {HEADS.max_likes} liked spans (--like START-END), got {len(likes_s)}")
    for start, end in likes_s:
        if not (math.isfinite(start) and math.isfinite(end)) or not start < end:
            raise ConfigError(f"liked span {start:g}-{end:g} must have start < end, in seconds")
        if start < 0 or end > duration_s + 1e-6:
            raise ConfigError(
                f"liked span {start:g}-{end:g} is outside the video (0-{duration_s:.2f} s); pick a span inside it"
            )


def like_weights(
    n_clips: int, likes_s: list[tuple[float, float]], clip_len_s: float = CLIP_LEN_S
) -> np.ndarray:
    """(n_clips,) share of each clip covered by the liked spans (0..1)."""
    starts = np.arange(n_clips) * clip_len_s
    cover = np.zeros(n_clips)
    for a, b in likes_s:
        cover += np.clip(np.minimum(starts + clip_len_s, b) - np.maximum(starts, a), 0, None) / clip_len_s
    return np.clip(cover, 0.0, 1.0)


def personalize(
    clip_features: np.ndarray,
    likes_s: list[tuple[float, float]],
    *,
    clip_len_s: float = CLIP_LEN_S,
    duration_s: float | None = None,
) -> np.ndarray:
    """(n_clips,) preference score in [-1, 1] per clip: centred cosine to the liked clips' prototype.

    `duration_s` (default: n_clips * clip_len_s) bounds the spans.

    Raises:
        ConfigError: no spans or more than `HEADS.max_likes`, start >= end, a span outside the video.
    """
    feats = np.asarray(clip_features, dtype=np.float64)
    if feats.ndim != 2 or len(feats) == 0:
        raise ConfigError(f"clip features must be (n_clips, dim), got shape {feats.shape}")
    check_likes(likes_s, len(feats) * clip_len_s if duration_s is None else duration_s)
    weights = like_weights(len(feats), likes_s, clip_len_s)
    if weights.sum() <= 0:
        raise ConfigError("the liked spans cover no clip; pick spans inside the video")
    centred = feats - feats.mean(axis=0)
    centred /= np.maximum(np.linalg.norm(centred, axis=1, keepdims=True), 1e-12)
    prototype = weights @ centred
    norm = np.linalg.norm(prototype)
    if norm <= 1e-12:  # the liked clips are the video's average: nothing to prefer
        return np.zeros(len(feats))
    return centred @ (prototype / norm)
