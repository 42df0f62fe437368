"""Learned highlight heads: the registry, the folder format, and the per-clip CLIP features they score.

    head = load_head("runs/lim-head")                     # any recipe; expect="engagement" to insist
    scores = head_scores(head, saliency, "video.mp4")     # one float per 2-s clip

A head folder holds `head_config.json` ({"format": "grounding-agent-head", "version": 1, "recipe": ...,
"clip_model": ..., "feature_dim": ..., plus the recipe's own fields}) and `head.safetensors`; it loads by
path like a PEFT adapter. `HEADS` maps a recipe to the module whose `load(folder, config)` builds its head
(imported by name, so this module imports none of them).
"""

from __future__ import annotations

import hashlib
import importlib
import json
import os
import tempfile
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

import numpy as np

from grounding_agent.defaults import CLIP_LEN_S
from grounding_agent.defaults import HEADS as HEAD_DEFAULTS
from grounding_agent.errors import HeadError
from grounding_agent.highlights.windows import num_clips

if TYPE_CHECKING:
    from grounding_agent.highlights.clip import ClipSaliency, FrameEmbeddings

HEADS: dict[str, str] = {
    "vcl": "grounding_agent.highlights.head_vcl",
    "taohighlight": "grounding_agent.highlights.head_tao",
    "less-is-more": "grounding_agent.highlights.head_rank",
    "engagement": "grounding_agent.highlights.head_rank",
}
CONFIG_NAME = "head_config.json"
WEIGHTS_NAME = "head.safetensors"


class HighlightHead(Protocol):
    """A trained head: scores each 2-s clip of a video from its CLIP features (and a text, if it needs one)."""

    recipe: str
    clip_model: str
    needs_text: bool

    def score_clips(self, clip_features: np.ndarray, text: str | None = None) -> np.ndarray: ...


# --- features -------------------------------------------------------------------------------------


def clip_features(
    embeddings: FrameEmbeddings, duration_s: float, clip_len_s: float = CLIP_LEN_S
) -> np.ndarray:
    """(n_clips, D) L2-normalised mean frame embedding per clip; a clip without a frame takes the nearest."""
    vectors = np.asarray(embeddings.vectors, dtype=np.float32)
    if len(vectors) == 0:
        raise HeadError("the video gave no frames to embed; check the file or sample at a higher fps")
    n = num_clips(duration_s, clip_len_s)
    ids = np.clip(np.floor(np.asarray(embeddings.times_s) / clip_len_s).astype(np.int64), 0, n - 1)
    sums = np.zeros((n, vectors.shape[1]), np.float64)
    np.add.at(sums, ids, vectors)
    counts = np.bincount(ids, minlength=n)
    centres = (np.arange(n) + 0.5) * clip_len_s
    nearest = np.abs(np.asarray(embeddings.times_s)[None, :] - centres[:, None]).argmin(axis=1)
    means = np.where(counts[:, None] > 0, sums / np.maximum(counts, 1)[:, None], vectors[nearest])
    norms = np.linalg.norm(means, axis=1, keepdims=True)
    return (means / np.maximum(norms, 1e-12)).astype(np.float32)


def check_features(clip_features: np.ndarray, feature_dim: int, clip_model: str) -> np.ndarray:
    """The features as float32 (n, feature_dim), or a HeadError naming the CLIP model the head expects."""
    feats = np.asarray(clip_features, dtype=np.float32)
    if feats.ndim != 2 or feats.shape[1] != feature_dim:
        raise HeadError(
            f"this head scores {feature_dim}-d features of {clip_model!r}, got shape {feats.shape}; "
            f"pass --clip-model {clip_model}"
        )
    return feats


def head_scores(
    head: HighlightHead, saliency: ClipSaliency, path: str | Path, *, text: str | None = None
) -> np.ndarray:
    """One score per 2-s clip of the video at `path`: embed it with `saliency`'s model, then the head."""
    from grounding_agent.media.video import open_video

    if head.needs_text and not (text and text.strip()):
        raise HeadError(f"the {head.recipe} head scores clips against a text; give a query or a title")
    duration_s = open_video(path).duration_s
    feats = clip_features(saliency.embed(path), duration_s)
    return np.asarray(head.score_clips(feats, text), dtype=np.float64)


# --- folders --------------------------------------------------------------------------------------


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def read_config(folder: str | Path) -> dict[str, Any]:
    """The folder's head_config.json, checked to be a head of this package's format and version."""
    folder = Path(folder)
    if not folder.is_dir():
        raise HeadError(f"head folder {str(folder)!r} does not exist; pass a folder written by `finetune`")
    config_path = folder / CONFIG_NAME
    if not config_path.is_file():
        what = "a PEFT adapter folder" if (folder / "adapter_config.json").exists() else "not a head folder"
        raise HeadError(f"{folder} is {what} (no {CONFIG_NAME}); pass a folder a highlight-head recipe wrote")
    try:
        config = json.loads(config_path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise HeadError(
            f"{config_path} is not valid JSON ({exc.__class__.__name__}); retrain the head"
        ) from None
    if not isinstance(config, dict) or config.get("format") != HEAD_DEFAULTS.format:
        raise HeadError(f"{config_path} is not a grounding-agent head config; pass a folder `finetune` wrote")
    if config.get("version") != HEAD_DEFAULTS.version:
        raise HeadError(
            f"{config_path} has head format version {config.get('version')!r}, this package reads "
            f"{HEAD_DEFAULTS.version}; retrain the head with this version"
        )
    if config.get("recipe") not in HEADS:
        raise HeadError(
            f"{config_path} names unknown recipe {config.get('recipe')!r}; use one of {sorted(HEADS)}"
        )
    return config


def read_weights(folder: str | Path) -> dict[str, Any]:
    """The head's tensors (torch), checked against the checksum its config recorded."""
    from safetensors import SafetensorError
    from safetensors.torch import load_file

    folder = Path(folder)
    path = folder / WEIGHTS_NAME
    if not path.is_file():
        raise HeadError(f"{folder} has no {WEIGHTS_NAME}; the head was not saved completely, retrain it")
    expected = read_config(folder).get("weights_sha256")
    if expected is not None and _sha256(path) != expected:
        raise HeadError(f"{path} is damaged (checksum differs from {CONFIG_NAME}); retrain the head")
    try:
        return load_file(str(path))
    except (SafetensorError, OSError, ValueError) as exc:
        raise HeadError(f"{path} is damaged ({str(exc).splitlines()[0][:120]}); retrain the head") from None


def load_head(folder: str | Path, *, expect: str | None = None) -> HighlightHead:
    """Load the head in `folder` (any recipe of `HEADS`, or only `expect`).

    Raises:
        HeadError: no folder, not a head folder (e.g. a PEFT adapter), another recipe than `expect`,
            an unknown format version, weights missing or damaged.
    """
    config = read_config(folder)
    if expect is not None and config["recipe"] != expect:
        raise HeadError(
            f"{folder} holds a {config['recipe']!r} head, not {expect!r}; pass a {expect} head folder"
        )
    read_weights(folder)  # fail here, in one line, before the recipe's module builds anything
    module = importlib.import_module(HEADS[config["recipe"]])
    return module.load(Path(folder), config)


def _write_atomic(path: Path, write: Any) -> None:
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    os.close(fd)
    try:
        write(tmp)
        os.replace(tmp, path)
    finally:
        Path(tmp).unlink(missing_ok=True)


def save_head(folder: str | Path, config: dict[str, Any], state_dict: dict[str, Any]) -> Path:
    """Write `head.safetensors` and `head_config.json` into `folder`, each atomically (temp + rename).

    `config` needs "recipe", "clip_model" and "feature_dim"; "format" and "version" are added. A folder
    holding anything else (another recipe's head, an adapter, other files) is never overwritten.
    """
    from safetensors.torch import save_file

    folder = Path(folder)
    recipe = config.get("recipe")
    if recipe not in HEADS:
        raise HeadError(f"unknown head recipe {recipe!r}; use one of {sorted(HEADS)}")
    for key in ("clip_model", "feature_dim"):
        if key not in config:
            raise HeadError(f"a head config needs {key!r}")
    check_writable(folder, recipe)
    folder.mkdir(parents=True, exist_ok=True)
    tensors = {k: v.detach().cpu().contiguous() for k, v in state_dict.items()}
    _write_atomic(folder / WEIGHTS_NAME, lambda tmp: save_file(tensors, tmp))
    full = {
        "format": HEAD_DEFAULTS.format,
        "version": HEAD_DEFAULTS.version,
        **config,
        "weights_sha256": _sha256(folder / WEIGHTS_NAME),
    }
    text = json.dumps(full, indent=2, sort_keys=True) + "\n"
    _write_atomic(folder / CONFIG_NAME, lambda tmp: Path(tmp).write_text(text, encoding="utf-8"))
    return folder


def check_writable(folder: str | Path, recipe: str) -> None:
    """Refuse (HeadError) a folder `save_head` must not write a `recipe` head into: a file, another recipe's
    head, or a folder of other things (an adapter, a dataset). Recipes call it before any work."""
    folder = Path(folder)
    if not folder.exists():
        return
    if not folder.is_dir():
        raise HeadError(f"{folder} exists and is not a folder; choose another output folder")
    if (folder / CONFIG_NAME).is_file():
        other = read_config(folder)["recipe"]
        if other != recipe:
            raise HeadError(
                f"{folder} holds a {other!r} head; choose another output folder for this {recipe} head"
            )
        return
    ours = {WEIGHTS_NAME, "checkpoint", "eval.json"}
    extra = sorted(p.name for p in folder.iterdir() if p.name not in ours and not p.name.startswith("."))
    if extra:
        raise HeadError(
            f"{folder} is not empty and holds no head ({extra[0]}, ...); choose another output folder"
        )
