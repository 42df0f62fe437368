"""How a chat message is read: does it refer to an earlier answer, what event (if any) to ground, what to tell.

Rules, not a model, so the window a follow-up may search is predictable and testable from outside:

- a reference ("after that", "right after", "what happens next", "before that", "the second time",
  "again") points at the previous answer's best moment and cuts the search window (without an event of
  its own, `NEXT_EVENT_QUERY` is grounded there):
  after -> [prev.end_s, end of video] ("right after"/"next": at most `follow_s` seconds of it),
  before -> [0, prev.start_s] ("right before": at most `follow_s` seconds of it),
  again -> [prev.end_s, end of video], grounding the previous query unless the message names a new event;
- "what does he do after X?" grounds X, then tells what happens in the window after it;
- "when ...", "find ...", a bare description: ground it and tell what happens there;
- any other question ("what is he holding?") is about the content, not time: answered over all frames;
- "make a 30-second summary", "summarize this in 10 %": a keyshot summary (`summary_reply`).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Literal

from grounding_agent.conversation.summary_reply import read_budget

ReferenceKind = Literal["after", "before", "again"]
Intent = Literal["ground", "around", "describe", "follow", "summary"]

# (pattern, kind, immediate). Checked in order: the first match wins.
_REFERENCES: tuple[tuple[str, ReferenceKind, bool], ...] = (
    (
        r"\b(?:right|just|immediately|directly|shortly)\s+after(?:wards?)?(?:\s+(?:that|this|it))?\b",
        "after",
        True,
    ),
    (r"\b(?:right|just|immediately|directly|shortly)\s+before(?:\s+(?:that|this|it))?\b", "before", True),
    (r"\bwhat\s+(?:happens|comes|happened|did\s+\w+\s+do|does\s+\w+\s+do)\s+next\b", "after", True),
    (r"\b(?:and\s+)?then\s+what\b|\bnext\s*\?*\s*$", "after", True),
    (r"\bafter\s+(?:that|this|it|then)\b|\bafterwards?\b|\blater\s+on\b", "after", False),
    (r"\bbefore\s+(?:that|this|it|then)\b|\bbeforehand\b|\bearlier\s+on\b", "before", False),
    (r"\b(?:the\s+)?(?:second|2nd|third|3rd|next|other)\s+time\b", "again", False),
    (r"\bagain\b|\bonce\s+more\b", "again", False),
)

_AROUND = re.compile(
    r"^\s*(?:what|how|who)\b.*?\b(?P<kind>after|before|while|during)\s+(?P<event>.+?)\s*[?.!]*\s*$",
    re.IGNORECASE,
)
# Question openers that ask for a time (ground) vs. about the content (describe).
_WHEN = re.compile(
    r"^\s*(?:when|at\s+what\s+(?:time|point)|find|show(?:\s+me)?|locate|where\s+in\s+the\s+video)\b",
    re.IGNORECASE,
)
_CONTENT_QUESTION = re.compile(
    r"^\s*(?:what|who|whom|whose|which|why|how|is|are|was|were|does|do|did|can|could|will|would|has|have|"
    r"describe|summari[sz]e|tell\s+me|explain|where)\b",
    re.IGNORECASE,
)
# Question scaffolding removed to leave the event, e.g. "when does he sit down?" -> "he sit down".
_SCAFFOLD = re.compile(
    r"^\s*(?:and|so|then|ok(?:ay)?|well|now)?\s*,?\s*"
    r"(?:(?:when|at\s+what\s+(?:time|point))\s+(?:does|do|did|is|are|was|were|will)?|"
    r"(?:find|show(?:\s+me)?|locate)(?:\s+(?:the\s+)?(?:moment|part|time)\s+(?:when|where))?|"
    r"where\s+in\s+the\s+video\s+(?:does|do|did|is|are)?|"
    r"what\s+(?:happens|happened|comes|is\s+happening)|what\s+(?:does|do|did)\s+(?:he|she|they|it|the\s+\w+)\s+do)"
    r"\s*",
    re.IGNORECASE,
)
# What a follow-up without an event ("what happens next?", "and right before that?") grounds in the window
# its reference allows.
NEXT_EVENT_QUERY = "the next thing that happens"
PREVIOUS_EVENT_QUERY = "the last thing that happens"
_FILLER = re.compile(r"^(?:and|so|then|,|\s)+|[\s?.!,]+$", re.IGNORECASE)
_MIN_EVENT_WORDS = 2
# Words that name no event on their own ("does he do it again?" -> the previous event).
_EMPTY_WORDS = frozenset(
    [
        "a",
        "an",
        "the",
        "he",
        "she",
        "they",
        "it",
        "him",
        "her",
        "them",
        "this",
        "that",
        "there",
        "someone",
        "somebody",
        "person",
        "man",
        "woman",
        "people",
        "guy",
        "do",
        "does",
        "did",
        "doing",
        "done",
        "happen",
        "happens",
        "happened",
        "is",
        "are",
        "was",
        "were",
        "be",
        "will",
        "can",
        "could",
        "would",
        "when",
        "what",
        "how",
        "it's",
        "thing",
        "something",
    ]
)


@dataclass(frozen=True)
class Reference:
    """A follow-up's pointer to the previous answer.

    Attributes:
        kind: "after", "before" or "again" (= after, grounding the same event unless a new one is named).
        immediate: "right after", "what happens next", "right before": only the next/previous `follow_s`.
        phrase: the words that made the reference, as written.
    """

    kind: ReferenceKind
    immediate: bool
    phrase: str


@dataclass(frozen=True)
class Reading:
    """What a message asks.

    Attributes:
        intent: "ground" (find the event, tell what happens there), "around" (find `event`, tell what
            happens `relation` it), "describe" (a content question over the whole video), "follow"
            (a reference to the previous answer), "summary" (a summary of a length: `summary_reply`).
        event: the text to ground ("" when there is none: "what happens next?").
        relation: for "around": "after", "before", "while" or "during".
        reference: for "follow".
    """

    intent: Intent
    event: str = ""
    relation: str = ""
    reference: Reference | None = None


def find_reference(message: str) -> tuple[Reference | None, str]:
    """The first reference phrase in `message` and the message without it."""
    for pattern, kind, immediate in _REFERENCES:
        match = re.search(pattern, message, re.IGNORECASE)
        if match:
            rest = (message[: match.start()] + " " + message[match.end() :]).strip()
            return Reference(kind, immediate, match.group(0).strip()), rest
    return None, message


def event_text(text: str) -> str:
    """The event a message names, without question scaffolding ("" if fewer than two words remain)."""
    event = _FILLER.sub("", _SCAFFOLD.sub("", text, count=1)).strip()
    event = re.sub(r"\s+", " ", event)
    words = event.lower().split()
    if len(words) < _MIN_EVENT_WORDS or all(w.strip(",'") in _EMPTY_WORDS for w in words):
        return ""
    return event


def read_message(message: str) -> Reading:
    """Classify one chat message (see the module docstring)."""
    if read_budget(message) is not None:  # "make a 30-second summary": an edit, `summary_reply`
        return Reading("summary")
    reference, rest = find_reference(message)
    if reference is not None:
        return Reading("follow", event=event_text(rest), reference=reference)
    around = _AROUND.match(message)
    if around and len(around.group("event").split()) >= 1:
        return Reading(
            "around", event=_FILLER.sub("", around.group("event")), relation=around.group("kind").lower()
        )
    if _WHEN.match(message) or not _CONTENT_QUESTION.match(message):
        return Reading("ground", event=event_text(message) or _FILLER.sub("", message.strip()))
    return Reading("describe")


def reference_window(
    reference: Reference, prev_start_s: float, prev_end_s: float, duration_s: float, follow_s: float
) -> tuple[float, float]:
    """The part of [0, duration_s] the reference allows, given the previous moment."""
    if reference.kind == "before":
        lo = max(0.0, prev_start_s - follow_s) if reference.immediate else 0.0
        return lo, prev_start_s
    hi = min(duration_s, prev_end_s + follow_s) if reference.immediate else duration_s
    return prev_end_s, hi
