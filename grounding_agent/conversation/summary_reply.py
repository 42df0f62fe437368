"""Summaries in a conversation: `Session.summarize`, and chat messages that ask for one.

"make a 30-second summary", "a 2 minute recap", "summarize this in 10 %" are read as a summary of that
length (`read_budget`); "summarize what happens" (no length) stays a question about the content. The reply
lists the kept shots as moments, with the evidence (the shots' importance and the signals behind them).
"""

from __future__ import annotations

import functools
import re
from typing import TYPE_CHECKING, Any

from grounding_agent.conversation.answers import Answer, moment_dict
from grounding_agent.types import Moment

if TYPE_CHECKING:
    from grounding_agent.edit.plan import EditPlan

# Session is the caller (session.py imports this module).
Session = Any

_PCT = r"\d+(?:\.\d+)?\s*(?:%|per\s*cent)"
_NOUN = r"(?:summary|recap|digest|condensed\s+version|short\s+version)"


@functools.cache
def _asks() -> tuple[re.Pattern[str], ...]:
    """The ways of asking for a summary of a length (built on first use: the edit grammar's times)."""
    from grounding_agent.edit.parse_numbers import TIME

    length = rf"(?P<len>{TIME}|{_PCT})"
    return tuple(
        re.compile(p, re.IGNORECASE)
        for p in (
            rf"{length}\s*(?:long\s+)?(?:video\s+)?{_NOUN}\b",
            rf"\b{_NOUN}\s+(?:of|in|under|within|lasting)\s+(?:about\s+)?{length}",
            rf"\bsummari[sz]e\b.*?\b(?:in|into|to|within|under)\s+(?:about\s+)?{length}",
        )
    )


def read_budget(message: str) -> tuple[float | None, float | None] | None:
    """(seconds, ratio) a message asks a summary of (one of them None), or None if it asks for none."""
    if not re.search(rf"{_NOUN}|summari[sz]e", message, re.IGNORECASE):
        return None  # most messages: the edit grammar (and the edit package) is never loaded for them
    from grounding_agent.edit.parse_numbers import parse_time

    for pattern in _asks():
        m = pattern.search(message)
        if m:
            length = m.group("len").strip()
            if re.fullmatch(_PCT, length, re.IGNORECASE):
                return None, float(re.match(r"\d+(?:\.\d+)?", length).group(0)) / 100.0
            return parse_time(length), None
    return None


def summarize(
    session: Session, *, seconds: float | None = None, ratio: float | None = None, **options: Any
) -> EditPlan:
    """A keyshot summary of the session's video with its saliency model and transcript (`summaries.summarize`)."""
    from grounding_agent.summaries import summarize as keyshot_summary

    options.setdefault("saliency", session.saliency)
    options.setdefault("transcript", session.transcript)
    return keyshot_summary(session.video, seconds=seconds, ratio=ratio, **options)


def summary_answer(session: Session, message: str) -> Answer:
    """The reply to a message `read_budget` reads: the summary's shots as moments, their evidence."""
    seconds, ratio = read_budget(message) or (None, None)
    plan = session.summarize(seconds=seconds, ratio=ratio)
    moments = [
        Moment(seg.start_s, seg.end_s, max((e.score or 0.0 for e in seg.evidence), default=0.0),
               {"summary": plan.instruction, "why": [e.text for e in seg.evidence[:3]]})
        for seg in plan.kept
    ]  # fmt: skip
    shown = ", ".join(f"{m.start_s:.1f}-{m.end_s:.1f} s" for m in moments)
    text = (
        f"A {plan.instruction.removeprefix('summary: ')} summary keeps {len(moments)} part(s), "
        f"{plan.kept_s:.1f} s of {plan.video.duration_s:.1f} s: {shown}."
    )
    evidence = [e for seg in plan.kept for e in seg.evidence]
    session._emit("moments", [moment_dict(m) for m in moments])
    session._emit("text", {"text": text, "text_source": "session"})
    return Answer(text, moments, evidence, None, "session", None)
