"""Grounders: (video, query) -> ranked `Moment`s, and what callers may read of them (`base.Grounder`).

- `base`: the `Grounder` protocol (sampling, concurrency, `describe`, transcript), `BaseGrounder` and the
  shared answer -> moments steps. `registry`: `GROUNDERS` (name -> factory) and `make_grounder`.
- "hf" (`hf`): a Qwen-VL model in this process (transformers, optional PEFT adapter / bitsandbytes), with
  `vision_cache` reusing its frame-only work within a session.
- "vllm" (`vllm`): a Qwen-VL model behind vLLM's OpenAI-compatible server (production): `openai_http`,
  `serving` (starting / checking a server), `qwen_inputs` (prompts and frames for either backend).
- "prior", "uniform", "random": model-free baselines (`baselines`). `transcript`: speech / on-screen text
  sub-queries. `describe`: text answers. `parsing`: the answer format.

May import the core modules, `utils`, and lazily `media` and `benchmarks`; never `agent`, `conversation`, `http`, `ui`, `cli`.
Importing it never imports torch or the HTTP client.
"""

from __future__ import annotations

from grounding_agent.grounders.base import BaseGrounder, Grounder, Grounding
from grounding_agent.grounders.registry import GROUNDERS, make_grounder

__all__ = ["GROUNDERS", "BaseGrounder", "Grounder", "Grounding", "make_grounder"]
