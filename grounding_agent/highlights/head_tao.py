"""TaoHighlight head (commodity-aware): clip features fused with the title's text by co-attention.

    head = load_head("runs/tao")                              # a folder `finetune --recipe taohighlight` wrote
    scores = head.score_clips(clip_features, "Red kettle, 1.7 l")   # one saliency (0..1) per 2-s clip
    start_s, end_s = head.span(clip_features, "Red kettle, 1.7 l", duration_s)

Model (nn code and inference; training and the losses are finetune/taohighlight.py):
- CLIP stays frozen. The title's token hidden states (CLIP's text tower, last layer, final layer norm) and
  the per-clip image features are projected to `hidden` dims.
- Co-attention: the video is the query, the title's tokens the keys and values; fused = LayerNorm(v +
  MultiheadAttention(v, t, t)).
- Saliency head: MLP over [v, fused] per clip -> one logit per clip.
- Span head: attention pooling of the fused clips -> (centre, width) in 0..1 of the video -> (start, end).
The optional graph fine-tuning over the top-k frames of the paper is not implemented.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from grounding_agent.errors import HeadError
from grounding_agent.highlights.head_vcl import FrozenClipNet, load_clip, load_trainable
from grounding_agent.highlights.heads import check_features

RECIPE = "taohighlight"


class TaoHighlightNet(FrozenClipNet):
    """Frozen CLIP text tower + the trainable co-attention, saliency and span heads."""

    def __init__(self, clip: Any, *, feature_dim: int, hidden: int, n_heads: int):
        super().__init__()
        if hidden < 1 or n_heads < 1 or hidden % n_heads:
            raise HeadError(
                f"taohighlight: hidden ({hidden}) must be a positive multiple of n_heads ({n_heads})"
            )
        self.text_model = clip.text_model.requires_grad_(False)
        text_width = int(clip.config.text_config.hidden_size)
        self.video_proj = nn.Linear(feature_dim, hidden)
        self.text_proj = nn.Linear(text_width, hidden)
        self.attn = nn.MultiheadAttention(hidden, n_heads, batch_first=True)
        self.norm = nn.LayerNorm(hidden)
        self.saliency_head = nn.Sequential(nn.Linear(2 * hidden, hidden), nn.ReLU(), nn.Linear(hidden, 1))
        self.pool = nn.Linear(hidden, 1)
        self.span_head = nn.Linear(hidden, 2)

    def title_states(self, input_ids: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
        """(B, L, width) frozen CLIP token hidden states of the titles."""
        with torch.no_grad():
            return self.text_model(input_ids=input_ids, attention_mask=attention_mask).last_hidden_state

    def forward(
        self,
        clip_features: torch.Tensor,
        clip_mask: torch.Tensor,
        title_states: torch.Tensor,
        title_mask: torch.Tensor,
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """(B, n, D) clips (mask (B, n) True = real) and (B, L, width) title tokens (mask (B, L)) ->
        (B, n) saliency logits and (B, 2) (start, end) as fractions of the video."""
        v = self.video_proj(nn.functional.normalize(clip_features, dim=-1))
        t = self.text_proj(title_states)
        attended, _ = self.attn(v, t, t, key_padding_mask=~title_mask.bool(), need_weights=False)
        fused = self.norm(v + attended)
        logits = self.saliency_head(torch.cat([v, fused], dim=-1)).squeeze(-1)
        weights = self.pool(fused).squeeze(-1).masked_fill(~clip_mask.bool(), float("-inf")).softmax(dim=-1)
        centre, width = torch.sigmoid(self.span_head((weights.unsqueeze(-1) * fused).sum(dim=1))).unbind(-1)
        span = torch.stack([(centre - width / 2).clamp(0, 1), (centre + width / 2).clamp(0, 1)], dim=-1)
        return logits.masked_fill(~clip_mask.bool(), 0.0), span


class TaoHighlightHead:
    """A trained TaoHighlight head (the `HighlightHead` protocol): title-aware clip saliency and a span."""

    recipe = RECIPE
    needs_text = True

    def __init__(self, net: TaoHighlightNet, tokenizer: Any, *, clip_model: str, feature_dim: int):
        self.net = net.eval()
        self.tokenizer = tokenizer
        self.clip_model = clip_model
        self.feature_dim = feature_dim

    def _run(self, clip_features: np.ndarray, text: str | None) -> tuple[torch.Tensor, torch.Tensor]:
        if not (text and text.strip()):
            raise HeadError("the taohighlight head scores clips against the video's title; give one")
        feats = torch.from_numpy(check_features(clip_features, self.feature_dim, self.clip_model))
        tokens = self.tokenizer([text], truncation=True, return_tensors="pt")
        with torch.inference_mode():
            states = self.net.title_states(tokens["input_ids"], tokens["attention_mask"])
            mask = torch.ones(1, len(feats), dtype=torch.bool)
            return self.net(feats[None], mask, states, tokens["attention_mask"])

    def score_clips(self, clip_features: np.ndarray, text: str | None = None) -> np.ndarray:
        """One saliency probability per clip."""
        logits, _ = self._run(clip_features, text)
        return torch.sigmoid(logits[0]).numpy().astype(np.float64)

    def span(self, clip_features: np.ndarray, text: str | None, duration_s: float) -> tuple[float, float]:
        """The predicted highlight (start_s, end_s)."""
        _, span = self._run(clip_features, text)
        start, end = (float(x) * duration_s for x in span[0])
        return start, end


def build(clip_model: str, head: dict[str, Any]) -> tuple[TaoHighlightNet, Any, int]:
    """A fresh TaoHighlightNet over the frozen CLIP at `clip_model`, its tokenizer and the feature size."""
    clip, tokenizer = load_clip(clip_model)
    feature_dim = int(clip.config.projection_dim)
    try:
        net = TaoHighlightNet(
            clip, feature_dim=feature_dim, hidden=int(head["hidden"]), n_heads=int(head["n_heads"])
        )
    except KeyError as exc:
        raise HeadError(f"a taohighlight head config needs {exc.args[0]!r}; retrain the head") from None
    return net, tokenizer, feature_dim


def load(folder: Path, config: dict[str, Any]) -> TaoHighlightHead:
    """The head in `folder` (`heads.load_head` calls this after checking the folder's format)."""
    net, tokenizer, feature_dim = build(config["clip_model"], config.get("head", {}))
    load_trainable(folder, net, RECIPE)
    return TaoHighlightHead(net, tokenizer, clip_model=config["clip_model"], feature_dim=feature_dim)
