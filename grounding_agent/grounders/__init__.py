"""Grounders: (video, query) -> ranked `Moment`s. The registry `GROUNDERS` maps a name to a factory.

- "hf": a Qwen-VL model in this process (transformers, optional PEFT adapter / bitsandbytes).
- "vllm": a Qwen-VL model behind vLLM's OpenAI-compatible server (production).
- "prior", "uniform", "random": model-free baselines (`baselines.py`).

Factories import their backend lazily, so listing grounders never imports torch or openai.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from grounding_agent.grounders.base import BaseGrounder, Grounder, Grounding
from grounding_agent.grounders.baselines import BASELINES


def _hf(*args: Any, **kwargs: Any) -> BaseGrounder:
    from grounding_agent.grounders.hf import HFGrounder

    return HFGrounder(*args, **kwargs)


def _vllm(*args: Any, **kwargs: Any) -> BaseGrounder:
    from grounding_agent.grounders.vllm import VLLMGrounder

    return VLLMGrounder(*args, **kwargs)


GROUNDERS: dict[str, Callable[..., BaseGrounder]] = {"hf": _hf, "vllm": _vllm, **BASELINES}

__all__ = ["GROUNDERS", "BaseGrounder", "Grounder", "Grounding"]
