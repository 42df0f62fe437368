"""The grounder registry: `GROUNDERS` (name -> factory) and `make_grounder`, the one way to build one.

    make_grounder("vllm", server="http://127.0.0.1:8000/v1", model=None)   # server: default $GA_VLLM_URL
    make_grounder("hf", model="Qwen/Qwen2.5-VL-7B-Instruct", adapter=None)
    make_grounder("uniform")                                               # or "prior", "random"

`Session`, the CLI (`cli.options.build_grounder`) and hence eval build their grounders here. Factories import
their backend lazily, so listing grounders never imports torch or the HTTP client.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from typing import Any

from grounding_agent.defaults import DEFAULT_SERVER_URL
from grounding_agent.errors import ConfigError
from grounding_agent.grounders.base import BaseGrounder
from grounding_agent.grounders.baselines import BASELINES


def _hf(model: str | None = None, **options: Any) -> BaseGrounder:
    """An in-process `HFGrounder`; `model` (a hub id or a local folder) is required."""
    if not model:
        raise ConfigError(
            "--backend hf needs --model (model=... in Python): a hub id or a local model folder"
        )
    from grounding_agent.grounders.hf import HFGrounder

    return HFGrounder(model, **options)


def _vllm(server: str | None = None, model: str | None = None, **options: Any) -> BaseGrounder:
    """A `VLLMGrounder` on `server` (default: $GA_VLLM_URL, else the local default); `model`: the served
    model or LoRA name (default: the first served)."""
    from grounding_agent.grounders.vllm import VLLMGrounder

    if server is None:
        server = os.environ.get("GA_VLLM_URL", DEFAULT_SERVER_URL)
    return VLLMGrounder(server, model, **options)


GROUNDERS: dict[str, Callable[..., BaseGrounder]] = {"hf": _hf, "vllm": _vllm, **BASELINES}


def make_grounder(backend: str, **options: Any) -> BaseGrounder:
    """A grounder by registry name: "vllm" (`server`, `model`), "hf" (`model` required), or a baseline
    ("prior": `train_gt`; "uniform"; "random": `seed`), built with `options`.

    Raises:
        ConfigError: an unknown name, or options the grounder does not accept.
    """
    if backend not in GROUNDERS:
        raise ConfigError(f"unknown grounder {backend!r}; choose one of {sorted(GROUNDERS)}")
    return GROUNDERS[backend](**options)
