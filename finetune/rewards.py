"""GRPO rewards: temporal IoU of the parsed answer, and a format reward.

Both read answers with the library's own parser (`grounding_agent.grounders.parsing.parse_answer`), the one the
grounders and the eval use, so a completion scores exactly what the eval would score it.
The functions follow TRL's reward signature: `f(completions, **columns) -> list[float]`, one value per
completion; `columns` are the dataset's columns repeated per completion (see finetune/grpo.py).
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from typing import Any

from grounding_agent.grounders.parsing import parse_answer
from grounding_agent.utils.temporal import tiou

# The reasoning prompt's layout (prompts/grounding_reasoning.yaml): thinking first, then the answer.
_REASONING_LAYOUT = re.compile(r"^\s*<think>.+?</think>\s*<answer>.+?</answer>\s*$", re.DOTALL)


def completion_text(completion: Any) -> str:
    """TRL passes a string (plain prompts) or a list of chat messages (conversational prompts)."""
    if isinstance(completion, str):
        return completion
    if isinstance(completion, list) and completion and isinstance(completion[-1], dict):
        content = completion[-1].get("content", "")
        if isinstance(content, list):  # structured content blocks
            return "".join(part.get("text", "") for part in content if isinstance(part, dict))
        return str(content or "")
    return ""


def answer_iou(
    text: str, windows_s: Sequence[Sequence[float]], model_duration_s: float, offset_s: float
) -> float:
    """tIoU of the first parsed moment (model time + offset = video time) with the best GT window; 0 when
    nothing parses."""
    moments = parse_answer(text, model_duration_s).moments
    if not moments or not windows_s:
        return 0.0
    m = moments[0]
    pred = (m.start_s + offset_s, m.end_s + offset_s)
    return max(tiou(pred, (float(s), float(e))) for s, e in windows_s)


def format_score(text: str, model_duration_s: float, reasoning: bool = False) -> float:
    """1.0: a clean span (no clamping or swapping needed) in the prompt's layout; 0.5: a span that
    parsed only after repair, or outside the reasoning layout; 0.0: nothing usable."""
    parsed = parse_answer(text, model_duration_s)
    if not parsed.moments:
        return 0.0
    if parsed.notes or (reasoning and not _REASONING_LAYOUT.match(text)):
        return 0.5
    return 1.0


def iou_reward(
    completions: list[Any], windows_s: list, model_duration_s: list, time_offset_s: list, **_: Any
) -> list[float]:
    """TRL reward function: tIoU per completion."""
    return [
        answer_iou(completion_text(c), w, float(d), float(o))
        for c, w, d, o in zip(completions, windows_s, model_duration_s, time_offset_s, strict=True)
    ]


def format_reward(completions: list[Any], model_duration_s: list, reasoning: list, **_: Any) -> list[float]:
    """TRL reward function: format score per completion."""
    return [
        format_score(completion_text(c), float(d), bool(r))
        for c, d, r in zip(completions, model_duration_s, reasoning, strict=True)
    ]
