"""Times and counts in edit instructions: '0:05', '1:02:03.5', '90 seconds', '1 min 30 s', 'three minutes',
'15-second', 'the best 3' — the regular expressions the rule grammar builds on, and their readers.

    parse_time("1 min 30 s")   # 90.0
"""

from __future__ import annotations

import re

from grounding_agent.defaults import LIMITS
from grounding_agent.errors import EditError

__all__ = [
    "CLOCK",
    "NUM",
    "NUMBER_WORDS",
    "TIME",
    "TIME_OR_NUMBER",
    "UNIT",
    "parse_count",
    "parse_time",
    "short",
]

NUMBER_WORDS = {
    "a": 1, "an": 1, "one": 1, "two": 2, "three": 3, "four": 4, "five": 5, "six": 6, "seven": 7, "eight": 8,
    "nine": 9, "ten": 10, "eleven": 11, "twelve": 12, "thirteen": 13, "fourteen": 14, "fifteen": 15,
    "sixteen": 16, "seventeen": 17, "eighteen": 18, "nineteen": 19, "twenty": 20, "thirty": 30,
    "forty": 40, "forty-five": 45, "fifty": 50, "sixty": 60, "ninety": 90,
}  # fmt: skip
NUM = (
    r"(?:\d+(?:\.\d+)?|"
    + "|".join(sorted((re.escape(w) for w in NUMBER_WORDS), key=len, reverse=True))
    + r")"
)
UNIT = r"(?:hours?|hrs?|h|minutes?|mins?|m|seconds?|secs?|s)"
CLOCK = r"\d{1,2}:\d{2}(?::\d{2})?(?:\.\d+)?"
# "90 seconds", "1 min 30 s", "1m30s", "15-second", "0:05", "1:02:03.5"
DURATION = rf"(?:{NUM}\s*-?\s*{UNIT}(?![a-z])(?:\s*(?:and\s+)?{NUM}\s*-?\s*{UNIT}(?![a-z]))?)"
TIME = rf"(?:{CLOCK}|{DURATION})"
TIME_OR_NUMBER = rf"(?:{TIME}|\d+(?:\.\d+)?)"
_UNIT_SECONDS = {"h": 3600.0, "m": 60.0, "s": 1.0}


def parse_time(text: str) -> float:
    """'0:05' / '1:02:03.5' / '90 seconds' / '1 min 30 s' / 'three minutes' / '15-second' / '12' -> seconds.

    Raises:
        EditError: unreadable, or past `LIMITS.max_seconds` (300 digits are a typo, not a time).
    """
    seconds = _read_time(text)
    if not seconds <= LIMITS.max_seconds:  # also NaN / inf
        raise EditError(
            f"{short(text.strip(), 40)!r} is more than {LIMITS.max_seconds / 86400:g} days; "
            "give a time inside the video, e.g. 0:05 or 90 seconds"
        )
    return seconds


def _read_time(text: str) -> float:
    text = text.strip().lower()
    if re.fullmatch(CLOCK, text):
        seconds = 0.0
        for part in text.split(":"):
            seconds = seconds * 60 + float(part)
        return seconds
    if re.fullmatch(r"\d+(?:\.\d+)?", text):
        return float(text)
    total, found = 0.0, False
    for num, unit in re.findall(rf"({NUM})\s*-?\s*({UNIT})(?![a-z])", text):
        value = float(num) if num[0].isdigit() else float(NUMBER_WORDS[num])
        total += value * _UNIT_SECONDS[unit[0]]
        found = True
    if not found:
        raise EditError(f"cannot read {text!r} as a time; write e.g. 0:05, 1:02:03 or 90 seconds")
    return total


def parse_count(text: str | None) -> int | None:
    """'3' / 'three' -> 3; None for nothing.

    Raises:
        EditError: past `LIMITS.max_top_k`.
    """
    if not text:
        return None
    text = text.strip().lower()
    if not text[0].isdigit():
        return NUMBER_WORDS.get(text)
    value = float(text)  # 300 digits are inf here: refused below, never int(inf)
    if not value <= LIMITS.max_top_k:
        raise EditError(
            f"{short(text, 40)!r} is too many; ask for at most {LIMITS.max_top_k}, e.g. 'keep the best 3 moments'"
        )
    return int(value)


def short(text: str, limit: int = 160) -> str:
    """`text` on one line, cut to `limit` characters (an ellipsis says so)."""
    text = " ".join(str(text).split())
    return text if len(text) <= limit else text[: limit - 1] + "…"
