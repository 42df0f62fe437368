"""What flows through the agent's graph: the state each node reads and the keys it returns."""

from __future__ import annotations

import operator
from typing import Annotated, TypedDict

from grounding_agent.agent.compose import Composition
from grounding_agent.agent.results import Answer, StepResult
from grounding_agent.types import Frames, Plan, Video


def merge_sum(old: dict, new: dict) -> dict:
    """LangGraph reducer: add numbers key by key (timings and call counts from several nodes)."""
    out = dict(old or {})
    for key, value in (new or {}).items():
        out[key] = out.get(key, 0) + value
    return out


class AgentState(TypedDict, total=False):
    """Each node returns the keys it sets; timings, calls and notes merge across nodes."""

    video: Video
    query: str
    frames: Frames | None
    top_n: int
    plan: Plan
    steps: dict[str, StepResult]
    compositions: list[Composition]
    answers: list[Answer]
    timings_s: Annotated[dict[str, float], merge_sum]
    model_calls: Annotated[dict[str, int], merge_sum]
    notes: Annotated[list[str], operator.add]
