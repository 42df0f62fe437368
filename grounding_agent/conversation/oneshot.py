"""`ground(video, query)`: the one-call form of a `Session`."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from grounding_agent.conversation.session import Session
from grounding_agent.grounders.base import Grounder
from grounding_agent.types import Prediction, Video


def ground(
    video: Video | str | Path,
    query: str,
    *,
    grounder: Grounder | str = "vllm",
    top_k: int = 1,
    **options: Any,
) -> Prediction:
    """One call: the moments of `query` in `video` as a Prediction (schemas/prediction.schema.json).

    `grounder` is a `Grounder` or a registry name built with `**options` (e.g. `grounder="hf",
    model="Qwen/Qwen2.5-VL-7B-Instruct"`, or `grounder="vllm", server=URL`).
    """
    return Session(video, grounder, **options).ground(query, top_k=top_k)
