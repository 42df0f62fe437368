"""Less is More (Xiong et al., CVPR 2019): a highlight head learned from video durations, no labels.

    python finetune/less_is_more.py finetune/configs/tiny_less_is_more.yaml [training.steps=100 ...]
    grounding-agent finetune --recipe less-is-more finetune/configs/tiny_less_is_more.yaml    # the same

`data.videos` is a folder of unlabeled videos: those shorter than `data.short_max_s` are "short", those
longer than `data.long_min_s` "long" (the rest are not used). Each step draws `training.batch` pairs (a
clip of a short video, a clip of a long one) and minimises the hinge max(0, margin - f(x_i) + f(x_j)),
weighted by w = softmax over the batch of the confidence net h(x_i, x_j) (`training.confidence: false`:
uniform weights). f and h are small MLPs over 2-s clip CLIP features (`head_rank`). The head folder
(`training.output_dir`) loads with `highlights --head DIR`; with `data.synthetic` the recipe builds the
generated task, trains on its train split and writes the held-out table to `eval.json`.
"""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import torch

if __package__ in (None, ""):  # run as `python finetune/less_is_more.py`: make the checkout importable
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from finetune.config import run_recipe
from finetune.rank_common import RankConfig, list_videos, train_and_save, video_tensors
from finetune.rank_eval import run
from grounding_agent.errors import ConfigError
from grounding_agent.highlights.head_rank import ClipScorer, PairConfidence, less_is_more_loss
from grounding_agent.media.video import open_video

RECIPE = "less-is-more"


def split_by_duration(videos: list[Path], cfg: RankConfig) -> tuple[list[Path], list[Path]]:
    """(short, long) videos by duration; a one-line error when either side is empty."""
    durations = {v: open_video(v).duration_s for v in videos}
    short = [v for v, d in durations.items() if d < cfg.data.short_max_s]
    long = [v for v, d in durations.items() if d > cfg.data.long_min_s]
    if not short or not long:
        raise ConfigError(
            f"data.videos needs short (< {cfg.data.short_max_s:g} s) and long (> {cfg.data.long_min_s:g} s) videos; "
            f"found {len(short)} short and {len(long)} long of {len(videos)}"
        )
    return short, long


def train(cfg: RankConfig, videos: list[Path]) -> dict:
    """Train f (and h) on the short/long clips; save the head; the head config written."""
    short, long = split_by_duration(videos, cfg)
    feats = [x for x, _ in video_tensors(cfg, short + long)]
    x_short, x_long = torch.cat(feats[: len(short)]), torch.cat(feats[len(short) :])
    device = x_short.device
    dim = int(x_short.shape[1])
    torch.manual_seed(cfg.training.seed)  # the initial weights depend on the seed only
    scorer = ClipScorer(dim, cfg.model.hidden, cfg.model.dropout)
    modules: dict[str, torch.nn.Module] = {"scorer": scorer}
    if cfg.training.confidence:
        modules["confidence"] = PairConfidence(dim, cfg.model.hidden, cfg.model.dropout)

    def step_loss(rng: np.random.Generator) -> torch.Tensor:
        i = torch.from_numpy(rng.integers(len(x_short), size=cfg.training.batch)).to(device)
        j = torch.from_numpy(rng.integers(len(x_long), size=cfg.training.batch)).to(device)
        loss, _ = less_is_more_loss(
            scorer, modules.get("confidence"), x_short[i], x_long[j], cfg.training.margin
        )
        return loss

    names = sorted(v.name for v in short + long)
    return train_and_save(
        cfg,
        modules,
        step_loss,
        names,
        dim,
        short_videos=len(short),
        long_videos=len(long),
        short_max_s=cfg.data.short_max_s,
        long_min_s=cfg.data.long_min_s,
        steps=cfg.training.steps,
        confidence=cfg.training.confidence,
    )


def fit(cfg: RankConfig, task: Path | None) -> None:
    """Train on the generated task's `train` videos, or on data.videos."""
    folder = task / "train" if task else cfg.data.videos
    if folder is None:
        raise ConfigError(f"{cfg.source}: data.videos is required (or set data.synthetic: true)")
    train(cfg, list_videos(folder))


def main(argv: list[str] | None = None) -> int:
    return run(RECIPE, argv, __doc__, "training.steps=100", fit)


if __name__ == "__main__":
    run_recipe(main)
