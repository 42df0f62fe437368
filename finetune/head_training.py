"""What the highlight-head recipes' torch loops share (`rank_common.py`: Less is More, engagement;
`vcl_tao_train.py`: VCL, TaoHighlight): the training device and the atomic checkpoint write.

Imports torch and `grounding_agent` only; the recipe modules import this one, never the other way.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch

from grounding_agent.errors import ConfigError
from grounding_agent.io import atomic_path


def training_device(name: str = "auto", threads: int | None = None) -> torch.device:
    """`training.device` (auto: cuda when visible, else cpu); `training.threads` CPU threads set first,
    before any torch work. A cuda device with no GPU visible is a one-line error, not a crash mid-run."""
    if threads:
        torch.set_num_threads(int(threads))
    if name == "auto":
        name = "cuda" if torch.cuda.is_available() else "cpu"
    if name.startswith("cuda") and not torch.cuda.is_available():
        raise ConfigError(f"training.device is {name!r} but no CUDA GPU is visible; set training.device=cpu")
    return torch.device(name)


def save_state(path: Path, state: dict[str, Any]) -> None:
    """`torch.save(state)` to `path` atomically: a kill mid-write leaves the previous checkpoint whole."""
    with atomic_path(path) as tmp:
        torch.save(state, tmp)
