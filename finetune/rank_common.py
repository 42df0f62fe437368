"""What the ranking-head recipes (Less is More, engagement) share: config, clip features, checkpoints, the loop.
A recipe's command line runs through `rank_eval.run`; device and checkpoint writes: `head_training`.

Config sections (finetune/configs/*less_is_more*.yaml, *engagement*.yaml):
    model:     clip_model (hub id or folder), backend (torch | onnx | onnx-int8), fps, hidden, dropout
    data:      videos (a folder), csv (engagement), synthetic (true or a `RankTaskSpec` mapping: the recipe
               builds the generated task and trains on its train split), short_max_s / long_min_s
    training:  output_dir, steps, batch (pairs or videos per step), lr, weight_decay, save_every, seed,
               confidence (Less is More's h), loss (engagement: listnet | ranknet), temperature
    eval:      after_training (the held-out table of the generated task), likes (personalization counts)
    resume:    auto (the checkpoint in output_dir if any) | false (start over)

Checkpoints (`output_dir/checkpoint/state.pt`, written atomically every `save_every` steps) hold the nets,
the optimizer and the step; each step draws its batch from a generator seeded by (seed, step), so a run
killed and resumed trains on the same batches as one that was not.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Callable
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any

import numpy as np
import torch

from finetune.config import read_recipe_yaml
from finetune.head_training import save_state, training_device
from finetune.highlight_tasks_rank import RankTaskSpec, make_rank_task
from grounding_agent.defaults import HEADS, HIGHLIGHTS
from grounding_agent.errors import ConfigError
from grounding_agent.highlights.head_rank import head_config
from grounding_agent.highlights.heads import check_writable, save_head
from grounding_agent.io import refuse_inputs

CHECKPOINT = "checkpoint/state.pt"


@dataclass
class RankModel:
    clip_model: str
    backend: str = "torch"
    fps: float = HIGHLIGHTS.clip_fps
    hidden: int = HEADS.hidden
    dropout: float = HEADS.dropout


@dataclass
class RankData:
    videos: str | None = None
    csv: str | None = None
    synthetic: bool | dict[str, Any] = False
    short_max_s: float = HEADS.short_max_s
    long_min_s: float = HEADS.long_min_s


@dataclass
class RankTraining:
    output_dir: str
    steps: int = HEADS.steps
    batch: int = HEADS.pairs_per_step  # Less is More: pairs per step; engagement: videos per step
    lr: float = HEADS.lr
    weight_decay: float = HEADS.weight_decay
    save_every: int = HEADS.save_every
    seed: int = HEADS.seed
    margin: float = HEADS.margin
    confidence: bool = True
    loss: str = "listnet"
    temperature: float = HEADS.listwise_temperature
    device: str = "auto"  # auto: cuda when available, else cpu
    threads: int | None = None  # CPU threads of torch (1: a small head on a busy machine is ~30x faster)


@dataclass
class RankEval:
    after_training: bool = True
    likes: list[int] = field(default_factory=lambda: [1, 3])


@dataclass
class RankConfig:
    recipe: str
    model: RankModel
    data: RankData
    training: RankTraining
    eval: RankEval
    resume: bool | str = "auto"
    source: str = ""

    @property
    def output_dir(self) -> Path:
        return Path(self.training.output_dir)


def parse_run(recipe: str, argv: list[str] | None, doc: str, example: str) -> tuple[RankConfig, Path | None]:
    """A recipe's `CONFIG [KEY=VALUE ...]` command line: its config (the output folder checked before any
    work: never over another recipe's head) and the generated task (built when `data.synthetic`), or None."""
    p = argparse.ArgumentParser(description=doc.splitlines()[0])
    example_config = f"finetune/configs/tiny_{recipe.replace('-', '_')}.yaml"
    p.add_argument("config", help=f"YAML config, e.g. {example_config}")
    p.add_argument("overrides", nargs="*", metavar="KEY=VALUE", help=f"e.g. {example}")
    args = p.parse_args(argv)
    cfg = load_rank_config(recipe, args.config, args.overrides)
    check_writable(cfg.output_dir, recipe)
    task = make_rank_task(RankTaskSpec.from_config(cfg.data.synthetic)) if cfg.data.synthetic else None
    return cfg, task


def _section(path: Path, name: str, cls: type, raw: Any) -> Any:
    if not isinstance(raw, dict):
        raise ConfigError(f"{path}: section '{name}' must be a mapping, got {type(raw).__name__}")
    known = {f.name for f in fields(cls)}
    if unknown := set(raw) - known:
        raise ConfigError(f"{path}: unknown key(s) {sorted(unknown)} in '{name}'; allowed: {sorted(known)}")
    try:
        return cls(**raw)
    except TypeError as exc:
        raise ConfigError(f"{path}: section '{name}': {exc}") from None


def load_rank_config(recipe: str, path: str | Path, overrides: list[str] | None = None) -> RankConfig:
    """Read a ranking recipe's YAML, apply `a.b=value` overrides, check it; nothing is written."""
    path = Path(path)
    raw = read_recipe_yaml(path, overrides or [])
    if unknown := set(raw) - {"model", "data", "training", "eval", "resume"}:
        raise ConfigError(
            f"{path}: unknown section(s) {sorted(unknown)}; allowed: model, data, training, eval, resume"
        )
    for required in ("model", "data", "training"):
        if required not in raw:
            raise ConfigError(f"{path}: missing section '{required}'")
    cfg = RankConfig(
        recipe=recipe,
        model=_section(path, "model", RankModel, raw["model"]),
        data=_section(path, "data", RankData, raw["data"]),
        training=_section(path, "training", RankTraining, raw["training"]),
        eval=_section(path, "eval", RankEval, raw.get("eval") or {}),
        resume=raw.get("resume", "auto"),
        source=str(path),
    )
    _check(cfg, path)
    return cfg


def _check(cfg: RankConfig, path: Path) -> None:
    t = cfg.training
    if not (t.steps >= 1 and t.batch >= 1 and t.save_every >= 1 and t.lr > 0):
        raise ConfigError(f"{path}: training.steps, batch, save_every must be >= 1 and lr > 0")
    if t.loss not in ("listnet", "ranknet"):
        raise ConfigError(f"{path}: training.loss must be listnet or ranknet, got {t.loss!r}")
    if cfg.resume not in ("auto", True, False):
        raise ConfigError(f"{path}: resume must be auto, true or false, got {cfg.resume!r}")
    if not cfg.data.short_max_s < cfg.data.long_min_s:
        raise ConfigError(f"{path}: data.short_max_s must be < data.long_min_s")
    inputs = [("the config file", path), ("data.videos", cfg.data.videos), ("data.csv", cfg.data.csv)]
    inputs.append(("model.clip_model", cfg.model.clip_model))
    refuse_inputs([("training.output_dir", cfg.training.output_dir)], inputs, kind="folder")


# --- features ---------------------------------------------------------------------------------------


def list_videos(folder: str | Path) -> list[Path]:
    """The video files of a folder (sorted by name); a one-line error when there are none."""
    folder = Path(folder)
    if not folder.is_dir():
        raise ConfigError(f"data.videos {folder} is not a folder; give a folder of video files")
    exts = {".mp4", ".mkv", ".mov", ".webm", ".avi", ".m4v"}
    videos = sorted(p for p in folder.iterdir() if p.suffix.lower() in exts and p.is_file())
    if not videos:
        raise ConfigError(f"data.videos {folder} holds no video files ({', '.join(sorted(exts))})")
    return videos


def load_saliency(cfg: RankConfig) -> Any:
    """The CLIP model the head's features come from (`ClipSaliency`, embeddings cached on disk)."""
    from grounding_agent.highlights.clip import ClipSaliency

    return ClipSaliency.from_pretrained(cfg.model.clip_model, backend=cfg.model.backend, fps=cfg.model.fps)


def video_features(saliency: Any, path: Path) -> tuple[np.ndarray, float]:
    """(n_clips, d) clip features of one video and its duration."""
    from grounding_agent.highlights.heads import clip_features
    from grounding_agent.media.video import open_video

    duration_s = open_video(path).duration_s
    return clip_features(saliency.embed(path), duration_s), duration_s


def video_tensors(cfg: RankConfig, videos: list[Path]) -> list[tuple[torch.Tensor, float]]:
    """Each video's (n_clips, d) clip features on the training device, and its duration, in order."""
    saliency, device = load_saliency(cfg), device_of(cfg)
    out = []
    for video in videos:
        feats, duration_s = video_features(saliency, video)
        out.append((torch.from_numpy(feats).to(device), duration_s))
    return out


# --- checkpoints and the loop ----------------------------------------------------------------------


def save_checkpoint(
    out: Path, step: int, modules: dict[str, torch.nn.Module], opt: Any, fingerprint: str
) -> None:
    """`out/checkpoint/state.pt`, atomically: a kill mid-write leaves the previous checkpoint."""
    state = {
        "step": step,
        "fingerprint": fingerprint,
        "modules": {k: m.state_dict() for k, m in modules.items()},
        "optimizer": opt.state_dict(),
    }
    save_state(out / CHECKPOINT, state)


def load_checkpoint(cfg: RankConfig, modules: dict[str, torch.nn.Module], opt: Any, fingerprint: str) -> int:
    """The step to start from: the checkpoint's (resume: auto, one present, same run) or 0."""
    path = cfg.output_dir / CHECKPOINT
    if cfg.resume is True and not path.is_file():
        raise ConfigError(
            f"resume: true but {path} does not exist; set resume=auto to start when there is none"
        )
    if cfg.resume is False or not path.is_file():
        return 0
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except (OSError, RuntimeError, EOFError, ValueError) as exc:
        raise ConfigError(
            f"{path} is damaged ({type(exc).__name__}); delete it or set resume=false"
        ) from None
    if state.get("fingerprint") != fingerprint:
        raise ConfigError(
            f"{path} is from another run (other data or model); set resume=false or another training.output_dir"
        )
    for name, module in modules.items():
        module.load_state_dict(state["modules"][name])
    opt.load_state_dict(state["optimizer"])
    return int(state["step"])


def train_loop(
    cfg: RankConfig,
    modules: dict[str, torch.nn.Module],
    step_loss: Callable[[np.random.Generator], torch.Tensor],
    fingerprint: str,
) -> list[float]:
    """AdamW over `modules` for `training.steps` steps of `step_loss(rng)`, checkpointing and resuming."""
    t = cfg.training
    device = training_device(t.device, t.threads)
    for module in modules.values():
        module.to(device)
    params = [p for m in modules.values() for p in m.parameters()]
    opt = torch.optim.AdamW(params, lr=t.lr, weight_decay=t.weight_decay)
    start = load_checkpoint(cfg, modules, opt, fingerprint)
    if start:
        print(f"resumed from step {start} ({cfg.output_dir / CHECKPOINT})", file=sys.stderr, flush=True)
    losses: list[float] = []
    for module in modules.values():
        module.train()
    for step in range(start, t.steps):
        torch.manual_seed(t.seed * 1_000_003 + step)  # dropout: the same masks after a resume
        loss = step_loss(np.random.default_rng([t.seed, step]))
        opt.zero_grad()
        loss.backward()
        opt.step()
        losses.append(float(loss.detach()))
        done = step + 1
        if done % t.save_every == 0 or done == t.steps:
            save_checkpoint(cfg.output_dir, done, modules, opt, fingerprint)
            mean = float(np.mean(losses[-t.save_every :]))
            print(f"step {done}/{t.steps} loss {mean:.4f}", file=sys.stderr, flush=True)
    for module in modules.values():
        module.eval().cpu()
    return losses


def train_and_save(
    cfg: RankConfig,
    modules: dict[str, torch.nn.Module],
    step_loss: Callable[[np.random.Generator], torch.Tensor],
    names: list[str],
    feature_dim: int,
    **extra: Any,
) -> dict[str, Any]:
    """`train_loop`, then the scorer saved as the recipe's head (`extra`: more head_config fields)."""
    train_loop(cfg, modules, step_loss, fingerprint(cfg, names, feature_dim))
    config = head_config(cfg.recipe, cfg.model.clip_model, feature_dim, cfg.model.hidden, **extra)
    save_head(cfg.output_dir, config, modules["scorer"].state_dict())
    return config


def device_of(cfg: RankConfig) -> torch.device:
    """The training device (`training.device`; see `head_training.training_device`)."""
    return training_device(cfg.training.device)


def fingerprint(cfg: RankConfig, names: list[str], feature_dim: int) -> str:
    """What a checkpoint must match to be resumed: recipe, model, the nets' shapes, the data, the seed."""
    t = cfg.training
    parts = [
        cfg.recipe,
        cfg.model.clip_model,
        feature_dim,
        cfg.model.hidden,
        t.confidence,
        t.loss,
        t.seed,
        names,
    ]
    return json.dumps(parts, default=str)
