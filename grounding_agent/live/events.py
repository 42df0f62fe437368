"""`LiveEvent`: what a watch reports, an alert, a highlight or a status line, in stream and wall-clock time."""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Any, Literal

from grounding_agent.types import Evidence

__all__ = ["EventKind", "LiveEvent"]

EventKind = Literal["alert", "highlight", "clip", "status"]


@dataclass(frozen=True)
class LiveEvent:
    """One event of a watch.

    Attributes:
        kind: "alert" (a standing query matched), "highlight", "clip" (a clip was written), "status"
            (connected, reconnected, degraded, lag, dropped webhook events, ended).
        seq: its number within the watch (1, 2, ...).
        start_s, end_s: where in the stream (monotonic stream time, seconds since the watch began).
        wall_s: when it was emitted (Unix time).
        delay_s: wall-clock time from the stream reaching `end_s` to the event (None for status).
        query: the standing query (alerts), or "" otherwise.
        channel: "speech", "ocr", "visual", "highlight" or the status' topic.
        evidence: what supports it; text: a one-line description; data: anything else (paths, counts).
    """

    kind: EventKind
    seq: int
    start_s: float
    end_s: float
    channel: str
    text: str = ""
    query: str = ""
    delay_s: float | None = None
    wall_s: float = field(default_factory=time.time)
    evidence: tuple[Evidence, ...] = ()
    data: dict[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {
            "kind": self.kind,
            "seq": self.seq,
            "channel": self.channel,
            "start_s": round(float(self.start_s), 3),
            "end_s": round(float(self.end_s), 3),
            "wall_s": round(self.wall_s, 3),
        }
        if self.query:
            out["query"] = self.query
        if self.text:
            out["text"] = self.text
        if self.delay_s is not None:
            out["delay_s"] = round(float(self.delay_s), 3)
        if self.evidence:
            out["evidence"] = [e.to_dict() for e in self.evidence]
        if self.data:
            out["data"] = self.data
        return out
