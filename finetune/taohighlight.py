"""TaoHighlight recipe: train the title-aware co-attention head (head_tao.py) over frozen CLIP features.

    grounding-agent finetune --recipe taohighlight finetune/configs/taohighlight_tiny.yaml
    python finetune/taohighlight.py finetune/configs/taohighlight_qvhighlights.yaml    # full scale, GPU

Data: QVHighlights jsonl rows with a "title" field (the product / video title), plus videos (our decoder +
the frozen CLIP image tower, cached) or moment_detr's `clip_features/{vid}.npz`.

Loss per video, with W = predicted (start, end) and G = the GT window (the longest), both as fractions of
the video, K = the top_k clips by predicted saliency, y = per-clip saliency label (mean score / 4):
    L_reg = |W.start - G.start| + |W.end - G.end|
    L_ag  = theta_r * (1 - IoU(W, G)) + theta_d * |centre(W) - centre(G)| / |W u G|
            + theta_s * (1 - cos(sigmoid(logits_K), y_K))
    L     = reg * L_reg + L_ag + saliency * BCE(logits, y)
(the BCE term on every clip is our addition: L_ag's cosine only sees the top k). The paper's optional graph
fine-tuning over the top-k frames is not implemented. Writes the checkpoint/, the head and eval.json as the
VCL recipe does (finetune/vcl_tao_train.py).
"""

from __future__ import annotations

import sys
from pathlib import Path

if __package__ in (None, ""):  # run as `python finetune/taohighlight.py`: make the checkout importable
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import torch
from torch.nn import functional as F

from finetune import vcl_tao_train as common
from finetune.config import run_recipe
from finetune.vcl_tao_run import HeadRecipe, run
from grounding_agent.highlights import head_tao

RECIPE = "taohighlight"
DEFAULTS = {
    "head": {"hidden": 32, "n_heads": 2},
    "loss": {"reg": 1.0, "theta_r": 1.0, "theta_d": 1.0, "theta_s": 1.0, "top_k": 3, "saliency": 1.0},
    "training": {
        "steps": 200,
        "batch_size": 8,
        "lr": 0.003,
        "weight_decay": 0.0001,
        "save_every": 50,
        "seed": 0,
    },
    "eval": {"baselines": True},
}


def span_terms(pred: torch.Tensor, gt: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """(2,) predicted and GT [start, end] -> (L1 of start and end, IoU, centre distance / union length)."""
    l1 = (pred - gt).abs().sum()
    inter = (torch.minimum(pred[1], gt[1]) - torch.maximum(pred[0], gt[0])).clamp(min=0)
    union = (pred[1] - pred[0]) + (gt[1] - gt[0]) - inter
    iou = inter / union.clamp(min=1e-6)
    distance = (pred.mean() - gt.mean()).abs() / union.clamp(min=1e-6)
    return l1, iou, distance


def sample_loss(
    logits: torch.Tensor, span: torch.Tensor, s: common.Sample, w: dict, device: torch.device
) -> torch.Tensor:
    labels = torch.from_numpy(s.labels).to(device)
    loss = w["saliency"] * F.binary_cross_entropy_with_logits(logits, labels)
    k = min(int(w["top_k"]), len(logits))
    top = logits.topk(k).indices
    cosine = F.cosine_similarity(torch.sigmoid(logits[top]), labels[top], dim=0, eps=1e-6)
    loss = loss + w["theta_s"] * (1 - cosine)
    if s.ann.windows_s:
        start, end = max(s.ann.windows_s, key=lambda x: x[1] - x[0])
        gt = torch.tensor([start, end], dtype=span.dtype, device=device) / s.ann.duration_s
        l1, iou, distance = span_terms(span, gt.clamp(0, 1))
        loss = loss + w["reg"] * l1 + w["theta_r"] * (1 - iou) + w["theta_d"] * distance
    return loss


def make_batch_loss(net: head_tao.TaoHighlightNet, tokenizer, cfg: common.RunConfig, device: torch.device):
    w = cfg.loss

    def batch_loss(batch: list[common.Sample]) -> torch.Tensor:
        tokens = tokenizer([s.text for s in batch], padding=True, truncation=True, return_tensors="pt")
        ids, text_mask = tokens["input_ids"].to(device), tokens["attention_mask"].to(device)
        states = net.title_states(ids, text_mask)
        n = max(len(s.features) for s in batch)
        feats = torch.zeros(len(batch), n, batch[0].features.shape[1], device=device)
        clip_mask = torch.zeros(len(batch), n, dtype=torch.bool, device=device)
        for i, s in enumerate(batch):
            feats[i, : len(s.features)] = torch.from_numpy(s.features)
            clip_mask[i, : len(s.features)] = True
        logits, spans = net(feats, clip_mask, states, text_mask)
        losses = [
            sample_loss(logits[i, : len(s.features)], spans[i], s, w, device) for i, s in enumerate(batch)
        ]
        return torch.stack(losses).mean()

    return batch_loss


TAO = HeadRecipe(
    name=RECIPE,
    title="TaoHighlight (trained)",
    usage=__doc__.splitlines()[2].strip(),
    defaults=DEFAULTS,
    text_field="title",
    build=head_tao.build,
    head=head_tao.TaoHighlightHead,
    batch_loss=make_batch_loss,
    describe=lambda net, cfg: f"taohighlight: {net.num_trainable():,} trainable parameters; CLIP frozen",
)


def main(argv: list[str] | None = None) -> int:
    return run(TAO, argv)


if __name__ == "__main__":
    run_recipe(main)
