"""The one place where model text becomes time.

`parse_answer(text, duration_s)` reads what video-LLMs actually write ("12.3 - 20.1 seconds",
"from 12.3 to 20.1", "00:12 - 00:20", `<answer>12.54 to 17.83</answer>`, "[12.3, 20.1, 0.8]",
`{"start": 12.3, "end": 20.1}`, SRT "00:00:12,300 --> 00:00:20,100", several ranges with
confidences, ...) and returns `Moment`s plus, when nothing usable was found, a `ParseFailure`.
It never raises on any text: a model's malformed answer is expected.

Policy (documented because it changes scores):
- Where to look: the last non-empty `<answer>…</answer>` block wins (an unclosed `<answer>` at the end
  of a truncated generation counts). If it holds no span, the text outside `<think>…</think>` is
  read, and as a last resort the reasoning itself, keeping only its *last* span (its conclusion).
- What a span is: an explicit range (`A - B`, `A – B`, `A to B`, `from A to B`, `between A and B`,
  `A ~ B`, `A --> B`), a bracketed pair `[A, B]` / `(A, B)` (an optional third value is a confidence),
  or keyed `start…A … end…B` (start / begin, end / finish / stop, with hedges between the word and the
  time: "the start time is around 2.0s and the end time is about 3.0s").
- Restatements: a parenthesis right after a time that says a time again ("0:00:05 (5 seconds into the
  video)") is read as the same time, not a second one. Times are seconds (`12.3`, `12.3s`, `12.3 seconds`), `MM:SS(.f)` or
  `H:MM:SS(.f)` (SRT's `,mmm` too). If there is no explicit range, the first two times carrying a unit
  or a clock form are taken, else the only two numbers of the text.
- Confidence: `(0.8)`, `(80%)`, `score 0.8`, `confidence: 80%`, or the third bracketed value; must be
  in [0, 1] (or a percentage); absent -> 1.0.
- Reversed ranges (`20.1 - 12.3`) are swapped (the model wrote the right times in the wrong order).
- Clamping: to [0, duration_s]. A span starting at or after the end of the video is dropped (clamping
  it would invent a point at the end). A zero-length span inside the video (`12 - 12`) is kept as a
  point in time: it scores IoU 0 against any ground truth, but it is what the model said.
- Several spans: all are returned, in the order written, exact duplicates removed. When the answer names
  a start and an end in words, only those spans count: ranges elsewhere in it are context.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass, field

from grounding_agent.errors import ConfigError
from grounding_agent.types import Moment

# A time: H:MM:SS(.f) or MM:SS(.f) (SRT writes ",mmm"), or plain seconds.
_CLOCK = r"(?:\d+:)?\d{1,2}:\d{1,2}(?:\.\d+|,\d{3})?"
_NUM = r"\d+(?:\.\d+)?(?:[eE][+-]?\d+)?"  # "2.5e1" is 25 s, not 2.5
_TIME = rf"(?<![\w.:])(?:{_CLOCK}|{_NUM})(?![\d:])"
_UNIT = r"(?:\s*(?:seconds?|secs?|s)\b\.?)?"
_SEP = r"\s*(?:-->|->|-{1,2}|–|—|−|~|\bto\b|\btill\b|\buntil\b|\band\b)\s*"
_CONF_WORD = r"(?:score|confidence|conf|probability|prob|likelihood|p)"

_RANGE = re.compile(
    rf"(?:\b(?:from|between)\s+)?(?P<a>{_TIME}){_UNIT}{_SEP}(?P<b>{_TIME}){_UNIT}", re.IGNORECASE
)
_BRACKET = re.compile(
    rf"[\[(<]\s*(?P<a>{_TIME}){_UNIT}\s*,\s*(?P<b>{_TIME}){_UNIT}(?:\s*,\s*(?P<c>{_NUM}%?))?\s*[\])>]",
    re.IGNORECASE,
)
# "start" / "begin" ... "end" / "finish" / "stop" (not "startled", "endless"), then up to a few words
# without digits ("time is around", "at approximately", '": "') before the time.
_START_WORD = r"\b(?:start|begin)(?:s|ing|ed|ns)?(?![a-z])(?:[ _]?(?:time|point))?"
_END_WORD = r"\b(?:end|finish|stop)(?:s|es|ing|ed|ped|ping)?(?![a-z])(?:[ _]?(?:time|point))?"
_LEAD = r"[^\d\n]{0,30}?"
_KEYED = re.compile(
    rf"{_START_WORD}{_LEAD}(?P<a>{_TIME}){_UNIT}.{{0,80}}?{_END_WORD}{_LEAD}(?P<b>{_TIME}){_UNIT}",
    re.IGNORECASE | re.DOTALL,
)
# A parenthesis after a time, holding a time again: "0:00:05 (5 seconds into the video)".
_AFTER_TIME_PAREN = re.compile(rf"(?:{_TIME}){_UNIT}\s*(?P<paren>\([^()\n]{{0,80}}\))", re.IGNORECASE)
_CONF_AFTER = (
    re.compile(rf"\s*[\[(]\s*(?:{_CONF_WORD}\s*[:=]?\s*)?(?P<c>{_NUM}%?)\s*[\])]", re.IGNORECASE),
    re.compile(
        rf"[\s,;:]*(?:with\s+)?(?:an?\s+)?{_CONF_WORD}\s*(?:of|is|[:=])?\s*(?P<c>{_NUM}%?)", re.IGNORECASE
    ),
)
_TIME_WITH_UNIT = re.compile(
    rf"(?P<t>(?<![\w.:]){_CLOCK}(?![\d:]))|(?P<n>{_TIME})\s*(?:seconds?|secs?|s)\b", re.IGNORECASE
)
_ANY_NUMBER = re.compile(_TIME)
_OPEN, _CLOSE = "<answer>", "</answer>"
_THINK = re.compile(r"<think>.*?(?:</think>|$)", re.IGNORECASE | re.DOTALL)


@dataclass(frozen=True)
class ParseFailure:
    """A model answer that held no usable time span: what it said and why it was rejected."""

    text: str
    reason: str

    def to_dict(self) -> dict[str, str]:
        return {"text": self.text, "reason": self.reason}


@dataclass
class ParsedAnswer:
    """Result of `parse_answer`: moments (maybe empty), the failure if empty, and policy notes."""

    moments: list[Moment]
    failure: ParseFailure | None = None
    notes: list[str] = field(default_factory=list)


@dataclass(frozen=True)
class _Span:
    pos: int
    end: int
    start_s: float
    end_s: float
    score: float | None


def to_seconds(token: str) -> float:
    """'1:02:03.5' -> 3723.5, '00:12' -> 12.0, '00:00:12,300' -> 12.3, '12.3' -> 12.3 (may be inf)."""
    parts = str(token).replace(",", ".").split(":")
    seconds = 0.0
    try:
        for part in parts:
            seconds = seconds * 60.0 + float(part)
    except ValueError:
        raise ConfigError(f"not a time: {token!r} (seconds, MM:SS or H:MM:SS)") from None
    return seconds


def _confidence(token: str | None) -> float | None:
    if not token:
        return None
    value = float(token.rstrip("%"))
    if token.endswith("%"):
        value /= 100.0
    return value if 0.0 <= value <= 1.0 else None


def _confidence_after(text: str, pos: int) -> float | None:
    window = text[pos : pos + 40]
    for pattern in _CONF_AFTER:
        m = pattern.match(window)
        if m and (c := _confidence(m.group("c"))) is not None:
            return c
    return None


def _explicit_spans(text: str) -> list[_Span]:
    found: list[_Span] = []
    # An answer that names its start and end is the answer: other ranges beside it are context ("the
    # frames at 1.0s and 2.0s", "the man walks from 0.0 to 2.0; the start time is 2.0s and ...").
    matches = list(_KEYED.finditer(text)) or [m for p in (_BRACKET, _RANGE) for m in p.finditer(text)]
    for m in matches:
        score = _confidence(m.groupdict().get("c")) if m.re is _BRACKET else None
        if score is None:
            score = _confidence_after(text, m.end())
        found.append(_Span(m.start(), m.end(), to_seconds(m["a"]), to_seconds(m["b"]), score))
    # Keep non-overlapping matches, earliest first, the longest at one position (keyed/bracket beat range).
    found.sort(key=lambda s: (s.pos, -(s.end - s.pos)))
    kept: list[_Span] = []
    for span in found:
        if not kept or span.pos >= kept[-1].end:
            kept.append(span)
    return kept


def _implicit_span(text: str) -> list[_Span]:
    """No explicit range: the first two times with a unit or clock form ("starts at 5 s ... ends at 9 s"),
    else the only two numbers of the text."""
    timed = [m for m in _TIME_WITH_UNIT.finditer(text)]
    if len(timed) >= 2:
        a, b = timed[0], timed[1]
        ta, tb = (m["t"] or m["n"] for m in (a, b))
        return [_Span(a.start(), b.end(), to_seconds(ta), to_seconds(tb), None)]
    numbers = list(_ANY_NUMBER.finditer(text))
    if len(numbers) == 2:
        a, b = numbers
        return [_Span(a.start(), b.end(), to_seconds(a[0]), to_seconds(b[0]), None)]
    return []


def _spans(text: str) -> list[_Span]:
    text = _blank_restatements(text)
    return _explicit_spans(text) or _implicit_span(text)


def _blank_restatements(text: str) -> str:
    """Blank out (same length: positions stay) each parenthesis after a time that restates a time with a
    unit or a clock form; a confidence such as "(0.8)" or "(80%)" has neither and stays."""
    parens = [m.span("paren") for m in _AFTER_TIME_PAREN.finditer(text)]
    parens = [(a, b) for a, b in parens if _TIME_WITH_UNIT.search(text, a, b)]
    for a, b in parens:
        text = text[:a] + " " * (b - a) + text[b:]
    return text


def _answer_blocks(text: str) -> tuple[list[str], str]:
    """The closed `<answer>…</answer>` blocks (leftmost, non-overlapping) and the text outside them.

    One left-to-right pass with `str.find`: a lazy regex would rescan to the end of the text at every
    unclosed `<answer>`, quadratic in the text's length (a degenerate generation repeating the tag).
    """
    lower = text.lower()
    blocks: list[str] = []
    outside: list[str] = []
    pos = 0
    while (opened := lower.find(_OPEN, pos)) >= 0:
        closed = lower.find(_CLOSE, opened + len(_OPEN))
        if closed < 0:
            break
        blocks.append(text[opened + len(_OPEN) : closed])
        outside.append(text[pos:opened])
        pos = closed + len(_CLOSE)
    outside.append(text[pos:])
    return blocks, " ".join(outside)


def _regions(text: str) -> list[tuple[str, bool]]:
    """Where to look, in order: (region text, keep only its last span)."""
    regions: list[tuple[str, bool]] = []
    blocks, outside = _answer_blocks(text)
    answers = [a for a in blocks if a.strip()]
    if answers:
        regions.append((answers[-1], False))
    else:
        opened = text.lower().rfind(_OPEN)
        if opened >= 0 and text[opened + len(_OPEN) :].strip():
            regions.append((text[opened + len(_OPEN) :], False))
    outside = _THINK.sub(" ", outside)
    regions.append((outside, False))
    if outside != text:
        regions.append((text, True))
    return regions


def parse_answer(text: str, duration_s: float) -> ParsedAnswer:
    """Read the time spans in a model's answer (see the module docstring for the policy).

    Args:
        text: what the model wrote.
        duration_s: the video's duration; spans are clamped to [0, duration_s].

    Returns:
        ParsedAnswer with moments in the order written, or no moments and a `failure`.

    Raises:
        ConfigError: `duration_s` is not a positive finite number (a caller bug, not a model error).
    """
    if not isinstance(duration_s, (int, float)) or not math.isfinite(duration_s) or duration_s <= 0:
        raise ConfigError(f"duration_s must be a positive number of seconds, got {duration_s!r}")
    if not isinstance(text, str) or not text.strip():
        return ParsedAnswer([], ParseFailure(str(text or ""), "empty answer"))

    spans: list[_Span] = []
    for region, last_only in _regions(text):
        spans = _spans(region)
        if spans:
            spans = spans[-1:] if last_only else spans
            break
    if not spans:
        n = len(_ANY_NUMBER.findall(text))
        reason = "no numbers in the answer" if n == 0 else f"no time span among {n} number(s)"
        return ParsedAnswer([], ParseFailure(text, reason))

    out = ParsedAnswer([])
    seen: set[tuple[float, float]] = set()
    for span in spans:
        moment = _to_moment(span, duration_s, out.notes)
        if moment is not None and (moment.start_s, moment.end_s) not in seen:
            seen.add((moment.start_s, moment.end_s))
            out.moments.append(moment)
    if not out.moments:
        finite = [s for s in spans if math.isfinite(s.start_s) and math.isfinite(s.end_s)]
        outside = f"every span lies outside the video (0 - {duration_s:.2f} s)"
        reason = outside if finite else "no finite time span"
        out.failure = ParseFailure(text, reason)
    return out


def _to_moment(span: _Span, duration_s: float, notes: list[str]) -> Moment | None:
    start_s, end_s = span.start_s, span.end_s
    if not (math.isfinite(start_s) and math.isfinite(end_s)):
        # "1e309" overflows to inf: a number that size is no time in any video, not "the end of it".
        notes.append(f"dropped {start_s:g} - {end_s:g}: not a finite time")
        return None
    if start_s > end_s:
        notes.append(f"swapped reversed range {start_s:g} - {end_s:g}")
        start_s, end_s = end_s, start_s
    if start_s >= duration_s:
        notes.append(f"dropped {start_s:g} - {end_s:g}: starts at or after the end ({duration_s:.2f} s)")
        return None
    if end_s > duration_s:
        notes.append(f"clamped end {end_s:g} to {duration_s:.2f}")
        end_s = duration_s
    return Moment(start_s, end_s, 1.0 if span.score is None else span.score)


def parse_moments(text: str, duration_s: float) -> list[Moment]:
    """Moments in a model's answer, clamped to [0, duration_s]; [] when none (see `parse_answer`)."""
    return parse_answer(text, duration_s).moments


def format_moment(moment: Moment, *, with_score: bool = False) -> str:
    """The canonical answer text: '12.30 - 20.10 seconds' (two decimals), optionally ' (0.80)'.

    Prompts show it and fine-tuning targets use it; `parse_moments` reads it back exactly.
    """
    if not isinstance(moment, Moment):
        raise ConfigError(f"format_moment takes a Moment, got {type(moment).__name__}")
    text = f"{moment.start_s:.2f} - {moment.end_s:.2f} seconds"
    return f"{text} ({moment.score:.2f})" if with_score else text


def format_moments(moments: list[Moment], *, with_score: bool = False) -> str:
    """Several moments, one per line (the multi-moment answer format)."""
    return "\n".join(format_moment(m, with_score=with_score) for m in moments)
