"""What the VCL and TaoHighlight recipes share: config, data (frames or moment_detr features), the training
loop with atomic checkpoints and resume, and the evaluation against zero-shot CLIP and heuristic fusion.
A recipe's command line runs through `vcl_tao_run.run`; device and checkpoint writes: `head_training`.

Config sections (finetune/configs/vcl_tiny.yaml):
    model:     clip_model (hub id or folder; frozen)
    head:      the recipe's architecture (vcl: n_prompts, window, hidden, init_std; taohighlight: hidden, n_heads)
    loss:      the recipe's loss weights
    data:      generated (finetune/highlight_tasks.py spec) or train/val QVHighlights jsonl, plus videos
               (a folder of {vid}.mp4, read through our decoder + the frozen CLIP image encoder, cached) or
               features (moment_detr's clip_features/ folder of {vid}.npz, key pooler_output or features);
               fps, backend, cache_dir for the decoder path
    training:  output_dir, steps, batch_size, lr, weight_decay, save_every, seed, device (auto|cpu|cuda),
               threads (CPU torch threads; 1 is ~20x faster for the tiny heads on a busy machine)
    eval:      baselines (also score zero-shot CLIP and, with videos, heuristic fusion)
    resume:    auto (the output folder's checkpoint, if any) | false | a folder holding a checkpoint/
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch

from finetune.config import read_recipe_yaml
from finetune.head_training import save_state, training_device
from grounding_agent.benchmarks.annotations import Annotation
from grounding_agent.benchmarks.metrics import clip_saliency_matrix, highlight_metrics
from grounding_agent.benchmarks.qvhighlights import load_qvhighlights
from grounding_agent.benchmarks.reading import read_jsonl
from grounding_agent.benchmarks.summary_metrics import kendall_tau_b
from grounding_agent.errors import ConfigError, DatasetError, HeadError
from grounding_agent.highlights.heads import check_writable, save_head
from grounding_agent.io import write_json_atomic
from grounding_agent.types import Prediction

CHECKPOINT_DIR = "checkpoint"
STATE_NAME = "state.pt"
EVAL_NAME = "eval.json"  # the name heads.save_head expects beside a head
SECTIONS = {"model", "head", "loss", "data", "training", "eval", "resume"}
TRAINING_KEYS = {
    "output_dir",
    "steps",
    "batch_size",
    "lr",
    "weight_decay",
    "save_every",
    "seed",
    "device",
    "threads",
}
DATA_KEYS = {"generated", "train", "val", "videos", "features", "fps", "backend", "cache_dir"}


@dataclass
class RunConfig:
    clip_model: str
    head: dict[str, Any]
    loss: dict[str, Any]
    data: dict[str, Any]
    training: dict[str, Any]
    eval: dict[str, Any] = field(default_factory=dict)
    resume: str | bool = "auto"

    @property
    def output_dir(self) -> Path:
        return Path(self.training["output_dir"])


@dataclass
class Sample:
    """One query: its annotation, text (query or title), clips' CLIP features and saliency labels in 0..1."""

    ann: Annotation
    text: str
    features: np.ndarray  # (n, D)
    labels: np.ndarray  # (n,)

    @property
    def qid(self) -> int | str:
        return self.ann.qid


def load_run_config(path: str | Path, overrides: list[str], defaults: dict[str, Any]) -> RunConfig:
    """The YAML at `path` with `overrides`, over the recipe's `defaults` (head, loss, training, eval)."""
    path = Path(path)
    raw = read_recipe_yaml(path, overrides)
    unknown = set(raw) - SECTIONS
    if unknown:
        raise ConfigError(f"{path}: unknown section(s) {sorted(unknown)}; allowed: {sorted(SECTIONS)}")
    sections = {}
    for name in ("model", "head", "loss", "data", "training", "eval"):
        value = raw.get(name) or {}
        if not isinstance(value, dict):
            raise ConfigError(f"{path}: section '{name}' must be a mapping")
        sections[name] = {**defaults.get(name, {}), **value}
    _check_keys(path, "training", sections["training"], TRAINING_KEYS)
    _check_keys(path, "data", sections["data"], DATA_KEYS)
    if not sections["model"].get("clip_model"):
        raise ConfigError(f"{path}: model.clip_model is required (a CLIP hub id or folder)")
    if not sections["training"].get("output_dir"):
        raise ConfigError(f"{path}: training.output_dir is required (where the checkpoint and head go)")
    _check_numbers(path, sections["training"])
    data = sections["data"]
    if not data.get("generated") and not (data.get("train") and (data.get("videos") or data.get("features"))):
        raise ConfigError(f"{path}: set data.generated, or data.train with data.videos or data.features")
    return RunConfig(
        clip_model=str(sections["model"]["clip_model"]),
        head=sections["head"],
        loss=sections["loss"],
        data=data,
        training=sections["training"],
        eval=sections["eval"],
        resume=raw.get("resume", "auto"),
    )


def _check_numbers(path: Path, training: dict[str, Any]) -> None:
    """steps, batch_size, save_every: integers > 0; lr > 0; weight_decay >= 0 (else a one-line error)."""
    checks = {"steps": int, "batch_size": int, "save_every": int, "lr": float, "weight_decay": float}
    for key, kind in checks.items():
        value = training.get(key)
        ok = isinstance(value, (int, float)) and not isinstance(value, bool)
        ok = ok and (kind is float or float(value).is_integer())
        if not ok or value < 0 or (value == 0 and key != "weight_decay"):
            raise ConfigError(
                f"{path}: training.{key} must be a number > 0 (>= 0 for weight_decay), got {value!r}"
            )


def _check_keys(path: Path, name: str, section: dict[str, Any], allowed: set[str]) -> None:
    unknown = set(section) - allowed
    if unknown:
        raise ConfigError(f"{path}: unknown key(s) {sorted(unknown)} in '{name}'; allowed: {sorted(allowed)}")


# --- the output folder and checkpoints ----------------------------------------------------------------


def check_output(folder: Path, recipe: str) -> None:
    """Refuse, before anything is written, a folder holding another recipe's head or checkpoint, or other
    files (`heads.check_writable`, which `save_head` applies too, plus the checkpoint's recipe)."""
    check_writable(folder, recipe)
    checkpoint_recipe(folder, recipe)


def checkpoint_recipe(folder: Path, recipe: str) -> dict[str, Any] | None:
    """The checkpoint in `folder` (None if none), refused if another recipe (or nothing we read) wrote it."""
    ckpt = folder / CHECKPOINT_DIR
    if not ckpt.exists():
        return None
    try:
        state = torch.load(ckpt / STATE_NAME, map_location="cpu", weights_only=True)
    except (OSError, RuntimeError, EOFError, ValueError):
        raise HeadError(f"{ckpt} is not a {recipe} checkpoint; choose another output_dir") from None
    if not isinstance(state, dict) or state.get("recipe") != recipe:
        other = state.get("recipe") if isinstance(state, dict) else None
        raise HeadError(f"{ckpt} is a {other!r} checkpoint, not {recipe}; choose another output_dir")
    return state


def save_checkpoint(folder: Path, state: dict[str, Any]) -> None:
    """`checkpoint/state.pt`, atomically (a kill mid-write leaves the previous one)."""
    save_state(folder / CHECKPOINT_DIR / STATE_NAME, state)


def resume_state(cfg: RunConfig, recipe: str) -> dict[str, Any] | None:
    if cfg.resume is False or cfg.resume in ("false", "no"):
        return None
    folder = cfg.output_dir if cfg.resume in (True, "auto") else Path(str(cfg.resume))
    if cfg.resume not in (True, "auto") and not (folder / CHECKPOINT_DIR).exists():
        raise ConfigError(f"resume: {folder} holds no {CHECKPOINT_DIR}/; give a run's output_dir or auto")
    return checkpoint_recipe(folder, recipe)


# --- data --------------------------------------------------------------------------------------------


def read_split(jsonl: str | Path, text_field: str) -> list[tuple[Any, str]]:
    """(Annotation, text) per row; `text_field` is "query" or "title" (which rows must then have)."""
    anns = load_qvhighlights(jsonl).annotations
    if text_field == "query":
        return [(a, a.query) for a in anns]
    titles = {row.get("qid"): row.get(text_field) for _, row in read_jsonl(Path(jsonl), "qvhighlights")}
    missing = [a.qid for a in anns if not isinstance(titles.get(a.qid), str) or not titles[a.qid].strip()]
    if missing:
        raise DatasetError(
            f"{jsonl}: qid {missing[0]!r} has no {text_field!r}; taohighlight needs one per row"
        )
    return [(a, titles[a.qid]) for a in anns]


def npz_features(folder: Path, vid: str) -> np.ndarray:
    """moment_detr's per-video CLIP features: `{vid}.npz`, key pooler_output or features, (n_clips, D)."""
    path = folder / f"{vid}.npz"
    if not path.is_file():
        raise DatasetError(
            f"no features for video {vid!r}: expected {path} (moment_detr clip_features layout)"
        )
    with np.load(path) as npz:
        key = next((k for k in ("pooler_output", "features") if k in npz.files), None)
        if key is None:
            raise DatasetError(f"{path} has neither 'pooler_output' nor 'features' (keys: {npz.files})")
        feats = np.asarray(npz[key], dtype=np.float32)
    if feats.ndim != 2 or len(feats) == 0:
        raise DatasetError(f"{path}: {key} must be (n_clips, D), got shape {feats.shape}")
    return feats / np.maximum(np.linalg.norm(feats, axis=1, keepdims=True), 1e-12)


class FeatureSource:
    """Per-video clip features from moment_detr npz files, or from videos via our decoder and frozen CLIP."""

    def __init__(self, cfg: RunConfig):
        self.data = cfg.data
        self.clip_model = cfg.clip_model
        self._saliency = None

    @property
    def saliency(self):
        """`ClipSaliency` on the same frozen CLIP (torch backend: the fp32 reference; cached on disk)."""
        if self._saliency is None:
            from grounding_agent.highlights.clip import ClipSaliency

            kwargs = {"backend": self.data.get("backend", "torch"), "cache_dir": self.data.get("cache_dir")}
            if self.data.get("fps"):
                kwargs["fps"] = float(self.data["fps"])
            self._saliency = ClipSaliency.from_pretrained(self.clip_model, **kwargs)
        return self._saliency

    def video_path(self, vid: str) -> Path | None:
        if not self.data.get("videos"):
            return None
        path = Path(self.data["videos"]) / f"{vid}.mp4"
        if not path.is_file():
            raise DatasetError(f"video {vid!r} not found: expected {path}")
        return path

    def __call__(self, vid: str, duration_s: float) -> np.ndarray:
        if self.data.get("features"):
            return npz_features(Path(self.data["features"]), vid)
        from grounding_agent.highlights.heads import clip_features

        return clip_features(self.saliency.embed(self.video_path(vid)), duration_s)


def clip_labels(ann: Any, n: int) -> np.ndarray:
    """(n,) mean annotator saliency / 4 per clip (0 outside the annotated clips)."""
    full = clip_saliency_matrix(ann).mean(axis=1) / 4.0
    out = np.zeros(n, np.float32)
    out[: min(n, len(full))] = full[:n]
    return out


def load_samples(pairs: list[tuple[Any, str]], source: FeatureSource, feature_dim: int) -> list[Sample]:
    """One `Sample` per pair, features read once per video and checked against the CLIP's feature size."""
    out, cache = [], {}
    for ann, text in pairs:
        if ann.vid not in cache:
            cache[ann.vid] = source(ann.vid, ann.duration_s)
            if cache[ann.vid].shape[1] != feature_dim:
                raise DatasetError(
                    f"features of {ann.vid!r} are {cache[ann.vid].shape[1]}-d, {source.clip_model!r} makes "
                    f"{feature_dim}-d ones; set model.clip_model to the CLIP the features came from"
                )
        feats = cache[ann.vid]
        out.append(Sample(ann, text, feats, clip_labels(ann, len(feats))))
    return out


def splits(cfg: RunConfig, text_field: str) -> tuple[list[tuple[Any, str]], list[tuple[Any, str]]]:
    """(train, val) annotation/text pairs, building the generated task first if the config asks for it."""
    if cfg.data.get("generated"):
        from finetune.highlight_tasks import PlantedSpec, make_planted_task

        paths = make_planted_task(PlantedSpec.from_config(cfg.data["generated"]))
        cfg.data.update(train=str(paths["train"]), val=str(paths["val"]), videos=str(paths["videos"]))
    train = read_split(cfg.data["train"], text_field)
    val = read_split(cfg.data["val"], text_field) if cfg.data.get("val") else []
    return train, val


# --- training ---------------------------------------------------------------------------------------


def device_of(cfg: RunConfig) -> torch.device:
    """The training device (`training.device`, `training.threads`: see `head_training.training_device`)."""
    threads = cfg.training.get("threads")
    return training_device(str(cfg.training.get("device", "auto")), int(threads) if threads else None)


def start(
    recipe: str, args: list[str], defaults: dict[str, Any], text_field: str
) -> tuple[RunConfig, dict[str, Any] | None, torch.device, list[tuple[Any, str]], list[tuple[Any, str]]]:
    """A recipe's run from `CONFIG [a.b=value ...]`: config, checkpoint state, device, train and val pairs."""
    cfg = load_run_config(args[0], args[1:], defaults)
    check_output(cfg.output_dir, recipe)  # before anything is written
    state = resume_state(cfg, recipe)
    device = device_of(cfg)  # also sets the CPU thread count, before any torch work
    train_pairs, val_pairs = splits(cfg, text_field)
    torch.manual_seed(int(cfg.training["seed"]))  # the initial weights depend on the seed only
    return cfg, state, device, train_pairs, val_pairs


def train_and_save(
    recipe: str,
    net: Any,
    samples: list[Sample],
    batch_loss: Callable[[list[Sample]], torch.Tensor],
    cfg: RunConfig,
    state: dict[str, Any] | None,
    device: torch.device,
    feature_dim: int,
) -> None:
    """Train `net` on `device` (checkpointing into the output folder), then write the head there."""
    net.to(device)
    cfg.output_dir.mkdir(parents=True, exist_ok=True)
    train(recipe, net, samples, batch_loss, cfg, state)
    finish(recipe, net.cpu(), cfg, feature_dim)


def train(
    recipe: str,
    net: torch.nn.Module,
    samples: list[Sample],
    batch_loss: Callable[[list[Sample]], torch.Tensor],
    cfg: RunConfig,
    state: dict[str, Any] | None,
) -> int:
    """AdamW over the net's trainable parameters; checkpoint every `save_every` steps; the steps done."""
    t = cfg.training
    params = [p for p in net.parameters() if p.requires_grad]
    optim = torch.optim.AdamW(params, lr=float(t["lr"]), weight_decay=float(t["weight_decay"]))
    start = 0 if state is None else resume(net, optim, state, cfg)
    steps, save_every = int(t["steps"]), int(t["save_every"])
    batch = min(int(t["batch_size"]), len(samples))
    log = cfg.output_dir / CHECKPOINT_DIR / "log.jsonl"  # save_head allows only its own files
    for step in range(start, steps):
        rng = np.random.default_rng([int(t["seed"]), step])  # the batch depends on the step only: resumable
        picked = [samples[i] for i in rng.choice(len(samples), size=batch, replace=False)]
        loss = batch_loss(picked)
        optim.zero_grad()
        loss.backward()
        optim.step()
        if (step + 1) % save_every == 0 or step + 1 == steps:
            trainable = {k: v.detach().cpu() for k, v in net.state_dict().items() if k in _trainable(net)}
            save_checkpoint(
                cfg.output_dir,
                {"recipe": recipe, "step": step + 1, "model": trainable, "optim": optim.state_dict()},
            )
            line = {"step": step + 1, "loss": round(float(loss.detach()), 6), "time": time.time()}
            with log.open("a", encoding="utf-8") as fh:
                fh.write(json.dumps(line) + "\n")
    return steps


def resume(net: torch.nn.Module, optim: torch.optim.Optimizer, state: dict[str, Any], cfg: RunConfig) -> int:
    """Load a checkpoint into the net and optimizer; the step it reached. Its weights must be exactly the
    net's trainable ones: loading the frozen CLIP needs strict=False, which alone would skip any other key
    and resume from untrained weights without a word."""
    refusal = HeadError(
        f"the checkpoint in {cfg.output_dir / CHECKPOINT_DIR} does not fit this config's head; "
        "use another output_dir or resume: false"
    )
    if set(state.get("model") or {}) != _trainable(net):
        raise refusal
    try:
        net.load_state_dict(state["model"], strict=False)
        optim.load_state_dict(state["optim"])
        start = int(state["step"])
    except (KeyError, RuntimeError, ValueError):
        raise refusal from None
    print(f"resumed from step {start} ({cfg.output_dir / CHECKPOINT_DIR})", flush=True)
    return start


def _trainable(net: torch.nn.Module) -> set[str]:
    return {k for k, v in net.named_parameters() if v.requires_grad}


def finish(recipe: str, net: Any, cfg: RunConfig, feature_dim: int) -> Path:
    """Write the head folder (head_config.json + head.safetensors) into the output folder."""
    config = {
        "recipe": recipe,
        "clip_model": cfg.clip_model,
        "feature_dim": feature_dim,
        "head": cfg.head,
        "trainable_params": net.num_trainable(),
    }
    return save_head(cfg.output_dir, config, net.trainable_state())


# --- evaluation -------------------------------------------------------------------------------------


def score(samples: list[Sample], scores: dict[Any, np.ndarray]) -> dict[str, float]:
    """HIT@1 and mAP (QVHighlights "Very Good" level, percent) and Kendall tau (mean over queries)."""
    preds, taus = [], []
    for s in samples:
        users = clip_saliency_matrix(s.ann).T  # (annotators, clips)
        pred = fit(np.asarray(scores[s.qid], dtype=np.float64), users.shape[1])
        preds.append(Prediction(s.qid, s.ann.vid, s.text, [], [float(x) for x in pred]))
        taus.append(float(np.mean(kendall_tau_b(pred, users))))  # NaN: a constant side, skipped below
    hl = highlight_metrics([s.ann for s in samples], preds)
    return {
        "HIT@1": round(hl["HL-min-VeryGood-Hit1"], 2),
        "mAP": round(hl["HL-min-VeryGood-mAP"], 2),
        "kendall_tau": round(float(np.nanmean(taus)), 3),
    }


def fit(values: np.ndarray, n: int) -> np.ndarray:
    """`values` cut or zero-padded to length n (a decoded video may be a clip longer than its annotation)."""
    out = np.zeros(n, np.float64)
    out[: min(n, len(values))] = values[:n]
    return out


def baselines(samples: list[Sample], source: FeatureSource) -> dict[str, dict[str, float]]:
    """Zero-shot CLIP (query . clip feature) and, with videos, heuristic fusion (`generic_highlights`)."""
    sal = source.saliency
    zero = {s.qid: s.features @ sal.embed_texts([s.text])[0] for s in samples}
    out = {"zero-shot CLIP": score(samples, zero)}
    if source.data.get("videos"):
        from grounding_agent.highlights.windows import generic_highlights

        fused = {}
        for s in samples:
            result = generic_highlights(source.video_path(s.ann.vid), saliency=sal)
            fused[s.qid] = result.clip_scores["fused"]
        out["heuristic fusion"] = score(samples, fused)
    return out


def report(cfg: RunConfig, name: str, rows: dict[str, dict[str, float]], extra: dict[str, Any]) -> None:
    """eval.json in the output folder and the table rows on stdout."""
    write_json_atomic(cfg.output_dir / EVAL_NAME, {"rows": rows, **extra})
    print(f"{'scorer':<22} {'HIT@1':>7} {'mAP':>7} {'tau':>7}")
    for scorer, m in rows.items():
        label = name if scorer == "head" else scorer
        print(f"{label:<22} {m['HIT@1']:>7.2f} {m['mAP']:>7.2f} {m['kendall_tau']:>7.3f}")
