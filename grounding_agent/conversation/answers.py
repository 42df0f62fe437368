"""What a conversation hands back: `Answer` (one reply), `Turn` (a message and its answer) and the JSON
helpers that make them plain JSON (`schemas/answer.schema.json`; `tests/test_types.py` holds the schema and
`Answer.to_dict` to the same fields).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from grounding_agent.types import Evidence, Moment, Plan

__all__ = ["Answer", "Turn", "jsonable", "moment_dict"]


@dataclass
class Answer:
    """One reply of a session.

    Attributes:
        text: what the VLM said (or a templated sentence for model-free backends; see `text_source`).
        moments: best first; empty for questions that are not about time.
        evidence: what supports it (grounder answers, the earlier turn a follow-up refers to, saliency).
        plan: the plan of the grounded query (a single step unless the agent split it); None if nothing
            was grounded.
        text_source: "vlm:<model>", "template" or "session" (a reply about the conversation itself).
        window_s: the part of the video searched / described, when it was cut.
        reference: for follow-ups: {"kind", "phrase", "turn", "previous": [start_s, end_s]}.
        absent: "said" / "shown" when the grounder looked for a quote / an on-screen text and it is not
            there (the text says so; no moment), else None.
    """

    text: str
    moments: list[Moment]
    evidence: list[Evidence] = field(default_factory=list)
    plan: Plan | None = None
    text_source: str = ""
    window_s: tuple[float, float] | None = None
    reference: dict[str, Any] | None = None
    absent: str | None = None

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready (schemas/answer.schema.json)."""
        return {
            "text": self.text,
            "moments": [moment_dict(m) for m in self.moments],
            "plan": self.plan.to_dict() if self.plan is not None else None,
            "evidence": [e.to_dict() for e in self.evidence],
            "text_source": self.text_source,
            "window_s": list(self.window_s) if self.window_s is not None else None,
            "reference": self.reference,
            "absent": self.absent,
        }


@dataclass
class Turn:
    """A message and its answer; `query` is the event text that was grounded ("" if none)."""

    message: str
    answer: Answer
    query: str = ""
    index: int = 0


def moment_dict(m: Moment) -> dict[str, Any]:
    return {
        "start_s": float(m.start_s),
        "end_s": float(m.end_s),
        "score": float(m.score),
        "explanation": jsonable(m.explanation),
    }


def jsonable(value: Any) -> Any:
    """Plain JSON values (numpy scalars/arrays and tuples from explanations become floats/lists)."""
    if isinstance(value, dict):
        return {str(k): jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [jsonable(v) for v in value]
    if isinstance(value, np.ndarray):
        return value.tolist()
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, float) and not math.isfinite(value):
        return None
    return value
