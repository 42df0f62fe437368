"""Ranking heads: Less is More (video duration as the label) and engagement (a business signal as the label).

Both score each 2-s clip with the same scorer f, a small MLP over the clip's CLIP image feature:

- Less is More (Xiong et al., CVPR 2019): clips of short videos (< 15 s) should outrank clips of long
  ones (> 45 s). Per pair, the hinge `max(0, margin - f(x_i) + f(x_j))`, weighted by a confidence
  `w = softmax` over the batch's pairs of a second net h(x_i, x_j) trained jointly, so that pairs that
  contradict the rest (a dull clip of a short video, a great one of a long video) count less.
- Engagement: f is fitted to a per-video time series (GMV, viewers, gifts, CTR) resampled to the clips,
  list-wise (ListNet: cross-entropy between softmax(target / T) and softmax(f)) or pair-wise (RankNet).

`load(folder, config)` is what `heads.load_head` calls for the "less-is-more" and "engagement" recipes.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from grounding_agent.defaults import CLIP_LEN_S, HEADS
from grounding_agent.errors import HeadError
from grounding_agent.highlights.heads import check_features, read_weights

RECIPES = ("less-is-more", "engagement")


class ClipScorer(nn.Module):
    """f: (n, d) clip features -> (n,) scores."""

    def __init__(self, feature_dim: int, hidden: int = HEADS.hidden, dropout: float = HEADS.dropout):
        super().__init__()
        self.net = nn.Sequential(
            nn.Linear(feature_dim, hidden), nn.GELU(), nn.Dropout(dropout), nn.Linear(hidden, 1)
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x).squeeze(-1)


class PairConfidence(nn.Module):
    """h: (p, d) x (p, d) pairs -> (p,) logits of the pairs' weights (softmax over the batch)."""

    def __init__(self, feature_dim: int, hidden: int = HEADS.hidden, dropout: float = HEADS.dropout):
        super().__init__()
        self.net = nn.Sequential(
            nn.Linear(2 * feature_dim, hidden), nn.GELU(), nn.Dropout(dropout), nn.Linear(hidden, 1)
        )

    def forward(self, x_i: torch.Tensor, x_j: torch.Tensor) -> torch.Tensor:
        return self.net(torch.cat([x_i, x_j], dim=-1)).squeeze(-1)


# --- losses ---------------------------------------------------------------------------------------


def hinge(s_i: torch.Tensor, s_j: torch.Tensor, margin: float = HEADS.margin) -> torch.Tensor:
    """(p,) max(0, margin - s_i + s_j): s_i (the short video's clip) should beat s_j by the margin."""
    return torch.clamp(margin - s_i + s_j, min=0.0)


def less_is_more_loss(
    scorer: ClipScorer,
    confidence: PairConfidence | None,
    x_short: torch.Tensor,
    x_long: torch.Tensor,
    margin: float = HEADS.margin,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Confidence-weighted hinge over (short clip, long clip) pairs; returns (loss, the pairs' weights)."""
    losses = hinge(scorer(x_short), scorer(x_long), margin)
    if confidence is None:
        weights = torch.full_like(losses, 1.0 / len(losses))
    else:
        weights = torch.softmax(confidence(x_short, x_long), dim=0)
    return (weights * losses).sum(), weights.detach()


def listnet_loss(
    scores: torch.Tensor, targets: torch.Tensor, temperature: float = HEADS.listwise_temperature
) -> torch.Tensor:
    """ListNet top-1 cross-entropy of one video's clips: -sum softmax(t / T) * log_softmax(s)."""
    target = torch.softmax(targets / temperature, dim=-1)
    return -(target * torch.log_softmax(scores, dim=-1)).sum(dim=-1).mean()


def ranknet_loss(scores: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
    """RankNet: mean log(1 + exp(-(s_i - s_j))) over one video's clip pairs with t_i > t_j."""
    diff_t = targets[:, None] - targets[None, :]
    mask = diff_t > 0
    if not mask.any():
        return scores.sum() * 0.0  # a flat series orders nothing
    diff_s = scores[:, None] - scores[None, :]
    return nn.functional.softplus(-diff_s[mask]).mean()


def standardise(values: np.ndarray) -> np.ndarray:
    """(v - mean) / std over one video (the engagement scale differs from stream to stream)."""
    v = np.asarray(values, dtype=np.float64)
    std = v.std()
    return (v - v.mean()) / std if std > 1e-12 else np.zeros_like(v)


def resample_to_clips(
    times_s: np.ndarray, values: np.ndarray, n_clips: int, clip_len_s: float = CLIP_LEN_S
) -> np.ndarray:
    """Mean of a time series over each clip [k*c, (k+1)*c); a clip with no sample is interpolated."""
    times_s, values = np.asarray(times_s, dtype=np.float64), np.asarray(values, dtype=np.float64)
    order = np.argsort(times_s, kind="mergesort")
    times_s, values = times_s[order], values[order]
    ids = np.clip(np.floor(times_s / clip_len_s).astype(np.int64), 0, n_clips - 1)
    sums = np.bincount(ids, weights=values, minlength=n_clips)
    counts = np.bincount(ids, minlength=n_clips)
    centres = (np.arange(n_clips) + 0.5) * clip_len_s
    return np.where(counts > 0, sums / np.maximum(counts, 1), np.interp(centres, times_s, values))


# --- the head -------------------------------------------------------------------------------------


class RankHead:
    """A trained ranking head (`heads.HighlightHead`): f over CLIP image features; no text needed."""

    needs_text = False

    def __init__(self, recipe: str, clip_model: str, feature_dim: int, scorer: ClipScorer):
        self.recipe = recipe
        self.clip_model = clip_model
        self.feature_dim = feature_dim
        self.scorer = scorer.eval()

    def score_clips(self, clip_features: np.ndarray, text: str | None = None) -> np.ndarray:
        feats = check_features(clip_features, self.feature_dim, self.clip_model)
        with torch.inference_mode():
            return self.scorer(torch.from_numpy(feats)).double().numpy()


def head_config(recipe: str, clip_model: str, feature_dim: int, hidden: int, **extra: Any) -> dict[str, Any]:
    """The head_config.json fields of a ranking head (`heads.save_head` adds format and version)."""
    return {"recipe": recipe, "clip_model": clip_model, "feature_dim": feature_dim, "hidden": hidden, **extra}


def load(folder: Path, config: dict[str, Any]) -> RankHead:
    """Build the head `heads.load_head` found in `folder` (config already checked)."""
    if config["recipe"] not in RECIPES:
        raise HeadError(
            f"{folder} holds a {config['recipe']!r} head, not a ranking head ({', '.join(RECIPES)})"
        )
    try:
        feature_dim, hidden = int(config["feature_dim"]), int(config["hidden"])
        scorer = ClipScorer(feature_dim, hidden)
        scorer.load_state_dict(read_weights(folder))
    except (KeyError, TypeError, ValueError, RuntimeError) as exc:
        detail = str(exc).splitlines()[0][:120] if str(exc) else type(exc).__name__
        raise HeadError(
            f"{folder}: weights do not match head_config.json ({detail}); retrain the head"
        ) from None
    return RankHead(config["recipe"], str(config["clip_model"]), feature_dim, scorer)
