"""VCL (Visual Context Learner) head: learned prompts in a frozen CLIP text encoder, and a moment MLP.

    head = load_head("runs/vcl")                         # a folder `finetune --recipe vcl` wrote
    scores = head.score_clips(clip_features, "a red kettle on the table")   # one saliency per 2-s clip
    windows = head.windows(clip_features, "a red kettle on the table")      # [(start_s, end_s, score)]

Model (the library part: nn code and inference; the training loop is finetune/vcl.py):
- CLIP's image and text encoders stay frozen. N learnable prompt vectors (CoOp-style, as wide as the text
  encoder) are inserted right after the query's BOS token embedding; the text transformer then runs on those
  embeddings with CLIP's own position embeddings and causal mask, and pools at the query's EOS token (moved
  N places right), then CLIP's text projection.
- Per-clip saliency = unit(image feature) . unit(prompted text feature).
- A small MLP reads each clip's window of `window` z-scored saliencies and outputs three numbers: moment
  membership (logit) and the distances (in clips) from the clip to the moment's start and end. Member clips
  next to each other are joined into windows.

Trainable parameters = N*w + (window*h + h) + (3*h + 3), w = text width, h = hidden. With N=4, window=5,
h=10: CLIP ViT-B/32 (w=512) 2,048 + 93 = 2,141 (the paper's "about 2,141"; the split between prompts and
MLP is our reading, the paper gives the total); the tiny test CLIP (w=32) 128 + 93 = 221.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from grounding_agent.defaults import CLIP_LEN_S
from grounding_agent.errors import HeadError, ModelLoadError
from grounding_agent.highlights.heads import check_features, read_weights

RECIPE = "vcl"
# Membership probability above which a clip is part of a moment (the MLP is trained with BCE on 0/1).
MEMBER_P = 0.5


def load_clip(name: str) -> tuple[Any, Any]:
    """A frozen transformers CLIPModel (eval mode, no grads) and its tokenizer, from a hub id or folder."""
    from transformers import AutoTokenizer, CLIPModel

    try:
        model = CLIPModel.from_pretrained(name, dtype=torch.float32)
        tokenizer = AutoTokenizer.from_pretrained(name)
    except (OSError, ValueError) as exc:
        raise ModelLoadError(f"cannot load the CLIP model {name!r}: {exc}".splitlines()[0]) from exc
    model.eval().requires_grad_(False)
    return model, tokenizer


def tokenize(tokenizer: Any, texts: list[str], n_prompts: int, max_positions: int) -> dict[str, torch.Tensor]:
    """Padded token ids with room left for `n_prompts` inserted vectors (the EOS token is kept)."""
    return tokenizer(
        texts, padding=True, truncation=True, max_length=max_positions - n_prompts, return_tensors="pt"
    )


class PromptedTextEncoder(nn.Module):
    """CLIP's text tower with N learnable vectors inserted after BOS; only the vectors are trainable."""

    def __init__(self, clip: Any, n_prompts: int, init_std: float):
        super().__init__()
        self.text_model = clip.text_model.requires_grad_(False)
        self.projection = clip.text_projection.requires_grad_(False)
        width = int(clip.config.text_config.hidden_size)
        self.prompts = nn.Parameter(torch.randn(n_prompts, width) * init_std)
        self.eos_token_id = int(clip.config.text_config.eos_token_id)

    @property
    def n_prompts(self) -> int:
        return int(self.prompts.shape[0])

    def forward(self, input_ids: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
        """(B, L) token ids -> (B, D) projected text features (not normalised)."""
        from transformers.masking_utils import create_causal_mask

        tm, n, batch = self.text_model, self.n_prompts, input_ids.shape[0]
        tokens = tm.embeddings.token_embedding(input_ids)
        prompts = self.prompts.unsqueeze(0).expand(batch, -1, -1).to(tokens.dtype)
        embeds = torch.cat([tokens[:, :1], prompts, tokens[:, 1:]], dim=1)
        mask = torch.cat([attention_mask[:, :1], attention_mask.new_ones(batch, n), attention_mask[:, 1:]], 1)
        hidden = tm.embeddings(inputs_embeds=embeds)  # adds CLIP's position embeddings
        causal = create_causal_mask(
            config=tm.config, inputs_embeds=hidden, attention_mask=mask, past_key_values=None
        )
        hidden = tm.encoder(inputs_embeds=hidden, attention_mask=causal, is_causal=True).last_hidden_state
        hidden = tm.final_layer_norm(hidden)
        pooled = hidden[torch.arange(batch), self._eos_positions(input_ids) + n]
        return self.projection(pooled)

    def _eos_positions(self, input_ids: torch.Tensor) -> torch.Tensor:
        # The same rule as CLIPTextModel: legacy configs (eos id 2) take the highest id, others the first EOS.
        if self.eos_token_id == 2:
            return input_ids.to(torch.int).argmax(dim=-1)
        return (input_ids == self.eos_token_id).int().argmax(dim=-1)


class FrozenClipNet(nn.Module):
    """A net over a frozen CLIP: only its own parameters train, and only they go into a head folder."""

    def trainable_state(self) -> dict[str, torch.Tensor]:
        """Everything a head folder stores (CLIP itself comes from `clip_model`)."""
        return {k: v for k, v in self.named_parameters() if v.requires_grad}

    def num_trainable(self) -> int:
        return sum(v.numel() for v in self.trainable_state().values())


class VCLNet(FrozenClipNet):
    """Prompted text encoder + the moment MLP over a window of per-clip saliencies."""

    def __init__(self, clip: Any, *, n_prompts: int, window: int, hidden: int, init_std: float):
        super().__init__()
        if window < 1 or window % 2 == 0:
            raise HeadError(f"the VCL saliency window must be an odd number of clips >= 1, got {window}")
        self.encoder = PromptedTextEncoder(clip, n_prompts, init_std)
        self.window = window
        self.mlp = nn.Sequential(nn.Linear(window, hidden), nn.ReLU(), nn.Linear(hidden, 3))

    def text_features(self, input_ids: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
        """(B, D) unit-norm prompted text features."""
        return nn.functional.normalize(self.encoder(input_ids, attention_mask), dim=-1)

    @staticmethod
    def saliency(clip_features: torch.Tensor, text_feature: torch.Tensor) -> torch.Tensor:
        """(n,) cosine of each clip's image feature with one text feature (D,)."""
        return nn.functional.normalize(clip_features, dim=-1) @ text_feature

    def moment_outputs(self, saliency: torch.Tensor) -> torch.Tensor:
        """(n,) saliency -> (n, 3): membership logit, clips back to the start, clips on to the end (>= 0)."""
        z = (saliency - saliency.mean()) / (saliency.std(unbiased=False) + 1e-6)  # scale-free across videos
        half = self.window // 2
        padded = nn.functional.pad(z[None, None], (half, half), mode="replicate")[0, 0]
        out = self.mlp(padded.unfold(0, self.window, 1))
        return torch.cat([out[:, :1], nn.functional.softplus(out[:, 1:])], dim=1)


def join_members(member_p: np.ndarray, clip_len_s: float = CLIP_LEN_S) -> list[tuple[float, float, float]]:
    """Runs of consecutive member clips (p > MEMBER_P) as (start_s, end_s, mean p), best first."""
    out, start = [], None
    for i, inside in enumerate([*(np.asarray(member_p) > MEMBER_P), False]):
        if inside and start is None:
            start = i
        elif not inside and start is not None:
            out.append((start * clip_len_s, i * clip_len_s, float(np.mean(member_p[start:i]))))
            start = None
    return sorted(out, key=lambda w: w[2], reverse=True)


class VCLHead:
    """A trained VCL head (the `HighlightHead` protocol): query-conditioned clip saliency and moments."""

    recipe = RECIPE
    needs_text = True

    def __init__(self, net: VCLNet, tokenizer: Any, *, clip_model: str, feature_dim: int):
        self.net = net.eval()
        self.tokenizer = tokenizer
        self.clip_model = clip_model
        self.feature_dim = feature_dim

    def text_feature(self, text: str | None) -> torch.Tensor:
        if not (text and text.strip()):
            raise HeadError("the vcl head scores clips against a query; give one")
        max_positions = int(self.net.encoder.text_model.config.max_position_embeddings)
        inputs = tokenize(self.tokenizer, [text], self.net.encoder.n_prompts, max_positions)
        return self.net.text_features(inputs["input_ids"], inputs["attention_mask"])[0]

    def _saliency(self, clip_features: np.ndarray, text: str | None) -> torch.Tensor:
        feats = torch.from_numpy(check_features(clip_features, self.feature_dim, self.clip_model))
        return self.net.saliency(feats, self.text_feature(text))

    def score_clips(self, clip_features: np.ndarray, text: str | None = None) -> np.ndarray:
        """One saliency (cosine, -1..1) per clip."""
        with torch.inference_mode():
            return self._saliency(clip_features, text).numpy().astype(np.float64)

    def windows(self, clip_features: np.ndarray, text: str | None = None) -> list[tuple[float, float, float]]:
        """The moments: consecutive member clips joined, (start_s, end_s, score) best first."""
        with torch.inference_mode():
            out = self.net.moment_outputs(self._saliency(clip_features, text))
            return join_members(torch.sigmoid(out[:, 0]).numpy())


def build(clip_model: str, head: dict[str, Any]) -> tuple[VCLNet, Any, int]:
    """A fresh VCLNet over the frozen CLIP at `clip_model`, its tokenizer, and the image feature size."""
    clip, tokenizer = load_clip(clip_model)
    try:
        net = VCLNet(
            clip,
            n_prompts=int(head["n_prompts"]),
            window=int(head["window"]),
            hidden=int(head["hidden"]),
            init_std=float(head["init_std"]),
        )
    except KeyError as exc:
        raise HeadError(f"a vcl head config needs {exc.args[0]!r}; retrain the head") from None
    return net, tokenizer, int(clip.config.projection_dim)


def load_trainable(folder: Path, net: FrozenClipNet, recipe: str) -> None:
    """Copy the head folder's weights into `net`'s trainable parameters (those a CLIP head saves)."""
    state = read_weights(folder)
    own = net.trainable_state()
    if set(state) != set(own) or any(state[k].shape != own[k].shape for k in own):
        raise HeadError(f"{folder}: the weights do not fit a {recipe} head of this config; retrain the head")
    with torch.no_grad():
        for k, v in own.items():
            v.copy_(state[k])


def load(folder: Path, config: dict[str, Any]) -> VCLHead:
    """The head in `folder` (`heads.load_head` calls this after checking the folder's format)."""
    net, tokenizer, feature_dim = build(config["clip_model"], config.get("head", {}))
    load_trainable(folder, net, RECIPE)
    return VCLHead(net, tokenizer, clip_model=config["clip_model"], feature_dim=feature_dim)
