"""VCL recipe: learn N prompt vectors in a frozen CLIP text encoder and the moment MLP (head_vcl.py).

    grounding-agent finetune --recipe vcl finetune/configs/vcl_tiny.yaml [training.steps=300 ...]
    python finetune/vcl.py finetune/configs/vcl_qvhighlights.yaml      # full scale, public features, GPU

Loss per query (weights in the config's `loss` section):
    saliency   * MSE(image . prompted text, per-clip saliency label)         (label = mean score / 4)
    membership * BCE(member logit, clip inside a GT window)
    giou       * mean over Hungarian-matched pairs of (1 - GIoU(clip's window, GT window))
Matching (DETR-style, scipy linear_sum_assignment): every clip predicts a window [i+0.5-d_start,
i+0.5+d_end] (in clips) with probability p; cost(i, j) = -GIoU(window_i, gt_j) - match_p * p_i.

Data: QVHighlights jsonl + videos (our decoder + the frozen CLIP image tower, cached) or moment_detr's
`clip_features/{vid}.npz`; text features always come from our prompted text encoder. Writes OUTPUT_DIR/
checkpoint/ (every save_every steps; `resume: auto` continues after a kill), then the head (head_config.json
+ head.safetensors, loaded by `load_head`) and eval.json (head vs zero-shot CLIP vs heuristic fusion).
"""

from __future__ import annotations

import sys
from pathlib import Path

if __package__ in (None, ""):  # run as `python finetune/vcl.py`: make the checkout importable
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import numpy as np
import torch
from scipy.optimize import linear_sum_assignment

from finetune import vcl_tao_train as common
from finetune.config import run_recipe
from finetune.vcl_tao_run import HeadRecipe, run
from grounding_agent.defaults import CLIP_LEN_S
from grounding_agent.highlights import head_vcl

RECIPE = "vcl"
DEFAULTS = {
    "head": {"n_prompts": 4, "window": 5, "hidden": 10, "init_std": 0.02},
    "loss": {"saliency": 1.0, "membership": 1.0, "giou": 1.0, "match_p": 1.0},
    "training": {"steps": 300, "batch_size": 8, "lr": 0.01, "weight_decay": 0.0, "save_every": 50, "seed": 0},
    "eval": {"baselines": True},
}


def giou_1d(pred: torch.Tensor, gt: torch.Tensor) -> torch.Tensor:
    """(P, 2) x (G, 2) [start, end] -> (P, G) generalised IoU: IoU - (hull - union) / hull."""
    ps, pe = pred[:, None, 0], pred[:, None, 1]
    gs, ge = gt[None, :, 0], gt[None, :, 1]
    inter = (torch.minimum(pe, ge) - torch.maximum(ps, gs)).clamp(min=0)
    union = (pe - ps) + (ge - gs) - inter
    hull = torch.maximum(pe, ge) - torch.minimum(ps, gs)
    return inter / union.clamp(min=1e-6) - (hull - union) / hull.clamp(min=1e-6)


def clip_windows(outputs: torch.Tensor) -> torch.Tensor:
    """(n, 3) MLP outputs -> (n, 2) each clip's predicted window, in clips."""
    centre = torch.arange(len(outputs), dtype=outputs.dtype, device=outputs.device) + 0.5
    return torch.stack([centre - outputs[:, 1], centre + outputs[:, 2]], dim=1)


def hungarian_giou(outputs: torch.Tensor, gt: torch.Tensor, match_p: float) -> torch.Tensor:
    """Mean (1 - GIoU) over the DETR-style optimal matching of clip windows to GT windows (in clips)."""
    windows, p = clip_windows(outputs), torch.sigmoid(outputs[:, 0])
    giou = giou_1d(windows, gt)
    cost = (-giou - match_p * p[:, None]).detach().cpu().numpy()
    rows, cols = linear_sum_assignment(cost)
    rows, cols = torch.as_tensor(rows, device=giou.device), torch.as_tensor(cols, device=giou.device)
    return (1 - giou[rows, cols]).mean()


def membership_labels(windows_s: tuple[tuple[float, float], ...], n: int) -> np.ndarray:
    """(n,) 1.0 where the clip's centre lies inside a GT window."""
    centres = (np.arange(n) + 0.5) * CLIP_LEN_S
    return np.array([any(s <= c < e for s, e in windows_s) for c in centres], np.float32)


def sample_loss(
    net: head_vcl.VCLNet, s: common.Sample, text: torch.Tensor, w: dict, device: torch.device
) -> torch.Tensor:
    feats = torch.from_numpy(s.features).to(device)
    sal = net.saliency(feats, text)
    loss = w["saliency"] * torch.nn.functional.mse_loss(sal, torch.from_numpy(s.labels).to(device))
    out = net.moment_outputs(sal)
    member = torch.from_numpy(membership_labels(s.ann.windows_s, len(feats))).to(device)
    loss = loss + w["membership"] * torch.nn.functional.binary_cross_entropy_with_logits(out[:, 0], member)
    if s.ann.windows_s:
        gt = torch.tensor(s.ann.windows_s, dtype=out.dtype, device=device) / CLIP_LEN_S
        loss = loss + w["giou"] * hungarian_giou(out, gt, float(w["match_p"]))
    return loss


def make_batch_loss(net: head_vcl.VCLNet, tokenizer, cfg: common.RunConfig, device: torch.device):
    w = cfg.loss
    max_positions = int(net.encoder.text_model.config.max_position_embeddings)

    def batch_loss(batch: list[common.Sample]) -> torch.Tensor:
        inputs = head_vcl.tokenize(tokenizer, [s.text for s in batch], net.encoder.n_prompts, max_positions)
        texts = net.text_features(inputs["input_ids"].to(device), inputs["attention_mask"].to(device))
        return torch.stack([sample_loss(net, s, t, w, device) for s, t in zip(batch, texts)]).mean()

    return batch_loss


def evaluate(head: head_vcl.VCLHead, samples: list[common.Sample]) -> tuple[dict, dict]:
    """(clip scores by qid, {"moments": metrics}): the MLP's joined windows against GT, R1@0.5 and mIoU of
    the best-scored window (percent; a query with no member clip counts IoU 0)."""
    from grounding_agent.benchmarks.metrics import top_k_ious
    from grounding_agent.types import Prediction

    scores = {s.qid: head.score_clips(s.features, s.text) for s in samples}
    preds = [
        Prediction(s.qid, s.ann.vid, s.text, [list(w) for w in head.windows(s.features, s.text)])
        for s in samples
    ]
    top1 = top_k_ious([s.ann for s in samples], preds, 1)[:, 0]
    moments = {
        "R1@0.5": round(100 * float((top1 >= 0.5).mean()), 2),
        "mIoU": round(100 * float(top1.mean()), 2),
    }
    return scores, {"moments": moments}


def describe(net: head_vcl.VCLNet, cfg: common.RunConfig) -> str:
    return (
        f"vcl: {net.num_trainable():,} trainable parameters ({net.encoder.n_prompts} prompts x "
        f"{net.encoder.prompts.shape[1]} + MLP {net.window}->{cfg.head['hidden']}->3); CLIP frozen"
    )


def moments_line(more: dict) -> str:
    m = more["moments"]
    return f"VCL moments (joined member clips): R1@0.5 {m['R1@0.5']:.2f}  mIoU {m['mIoU']:.2f}"


VCL = HeadRecipe(
    name=RECIPE,
    title="VCL (trained)",
    usage=__doc__.splitlines()[2].strip(),
    defaults=DEFAULTS,
    text_field="query",
    build=head_vcl.build,
    head=head_vcl.VCLHead,
    batch_loss=make_batch_loss,
    describe=describe,
    evaluate=evaluate,
    footer=moments_line,
)


def main(argv: list[str] | None = None) -> int:
    return run(VCL, argv)


if __name__ == "__main__":
    run_recipe(main)
