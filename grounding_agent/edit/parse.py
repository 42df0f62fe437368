"""Edit instructions -> `Operation`s: a rule grammar, or an LLM answering JSON against a schema.

`RuleEditParser` reads the common English forms:

    cut 0:05 to 0:15 / keep 1:00-2:30 / trim the first 3 seconds / keep only the last minute
    cut everything after 2:00 / start at 0:10 / shorten it to 30 seconds
    cut the part where the dog jumps / keep from when she opens the door until she sits down
    keep the best 3 moments / a 15-second teaser / top 5 highlights within 40 seconds
    remove the silences / remove pauses longer than 2 seconds / remove dead air
    remove every time he says 'um' / cut the words "basically", "literally" / remove the filler words
    keep only the parts where she says "price" / remove the parts without speech / keep only the talking

and compositions joined by "then", "and", commas or semicolons before the next verb ("remove the
silences, then keep only the first minute"). `LLMEditParser` asks a LangChain chat model for JSON
constrained by `schemas/edit_plan.schema.json` (`operations`); an answer that fails validation falls back
to the rule parser, and the notes record why and what the model wrote (the planner's discipline).
"""

from __future__ import annotations

import copy
import json
import logging
import re
from dataclasses import dataclass, field
from typing import Any

import jsonschema

from grounding_agent.defaults import EDIT_LIMITS, LIMITS
from grounding_agent.edit.plan import FILLER_WORDS, Operation
from grounding_agent.errors import ConfigError, EditError
from grounding_agent.utils.prompts import load_prompt, load_schema

log = logging.getLogger(__name__)


def check_operations(operations: list[Operation]) -> list[Operation]:
    """All of `operations`, or a one-line EditError when there are more than the limit (none is dropped)."""
    most = EDIT_LIMITS.max_operations
    if len(operations) > most:
        raise EditError(
            f"the instruction has {len(operations)} operations and at most {most} are applied at once "
            f"(EDIT_LIMITS.max_operations): split it into several edits"
        )
    return operations


@dataclass
class ParsedInstruction:
    """What a parser read: operations in order, which parser produced them, and notes."""

    instruction: str
    operations: list[Operation]
    parser: str = "rule"
    notes: list[str] = field(default_factory=list)


# --- schema -------------------------------------------------------------------------------------------


def edit_plan_schema() -> dict[str, Any]:
    """`schemas/edit_plan.schema.json` (packaged, or in the source checkout)."""
    return load_schema("edit_plan")


def llm_output_schema() -> dict[str, Any]:
    """What the LLM writes: {"operations": [operation, ...]} (the plan schema's operation definition)."""
    schema = edit_plan_schema()
    operations = copy.deepcopy(schema["properties"]["operations"])
    operations["items"] = copy.deepcopy(schema["$defs"]["operation"])  # inlined: no $ref for the decoder
    operations["maxItems"] = EDIT_LIMITS.max_operations
    return {"type": "object", "required": ["operations"], "additionalProperties": False,
            "properties": {"operations": operations}}  # fmt: skip


def operations_from_json(data: Any) -> list[Operation]:
    """Validate {"operations": [...]} against the schema and each operation's own rules.

    Raises:
        EditError: not valid (the message says where).
    """
    try:
        jsonschema.validate(data, llm_output_schema())
    except jsonschema.ValidationError as exc:
        where = "/".join(str(p) for p in exc.absolute_path) or "(root)"
        raise EditError(f"operations fail schema at {where}: {exc.message}") from None
    return [Operation.from_dict(op) for op in data["operations"]]


# --- rule grammar -------------------------------------------------------------------------------------

_NUMBER_WORDS = {
    "a": 1, "an": 1, "one": 1, "two": 2, "three": 3, "four": 4, "five": 5, "six": 6, "seven": 7, "eight": 8,
    "nine": 9, "ten": 10, "eleven": 11, "twelve": 12, "thirteen": 13, "fourteen": 14, "fifteen": 15,
    "sixteen": 16, "seventeen": 17, "eighteen": 18, "nineteen": 19, "twenty": 20, "thirty": 30,
    "forty": 40, "forty-five": 45, "fifty": 50, "sixty": 60, "ninety": 90,
}  # fmt: skip
_NUM = (
    r"(?:\d+(?:\.\d+)?|"
    + "|".join(sorted((re.escape(w) for w in _NUMBER_WORDS), key=len, reverse=True))
    + r")"
)
_UNIT = r"(?:hours?|hrs?|h|minutes?|mins?|m|seconds?|secs?|s)"
_CLOCK = r"\d{1,2}:\d{2}(?::\d{2})?(?:\.\d+)?"
# "90 seconds", "1 min 30 s", "1m30s", "15-second", "0:05", "1:02:03.5"
_DURATION = rf"(?:{_NUM}\s*-?\s*{_UNIT}(?![a-z])(?:\s*(?:and\s+)?{_NUM}\s*-?\s*{_UNIT}(?![a-z]))?)"
_TIME = rf"(?:{_CLOCK}|{_DURATION})"
_TIME_OR_NUMBER = rf"(?:{_TIME}|\d+(?:\.\d+)?)"
_UNIT_SECONDS = {"h": 3600.0, "m": 60.0, "s": 1.0}

_CUT = r"(?:cut(?:\s+out|\s+off)?|remove|delete|drop|skip|trim(?:\s+off|\s+out)?|chop(?:\s+off)?|lose|get\s+rid\s+of|take\s+out)"
_KEEP = r"(?:keep|use|retain|only\s+keep|leave\s+only|extract|give\s+me|make(?:\s+me)?|create|show(?:\s+me)?)"
_VERB = rf"(?:{_CUT}|{_KEEP})"
_Q = r"[\"'“”‘’]"
_QUOTED = rf"{_Q}([^\"“”‘’]+?){_Q}(?=\W|$)"
_SPAN_NOUN = r"(?:parts?|bits?|scenes?|moments?|sections?|segments?|shots?|clips?|portions?|times?)"
_REEL = r"(?:teaser|trailer|highlight\s+reel|highlights?\s+reel|highlights?|summary|recap|supercut|preview|reel|promo)"
_SILENCE = (
    r"(?:silences?|silent\s+(?:parts?|bits?|sections?|stretches|gaps?)|dead\s+air|pauses?|quiet\s+(?:parts?|bits?)"
    r"|long\s+pauses?|gaps?)"
)

# Where one operation ends and the next begins: a connector followed by an edit verb.
_NEXT_VERB = rf"(?=(?:{_VERB}|shorten|start|end|stop)\b)"
_SPLIT = re.compile(
    rf"(?:\s*[,;]|\.)\s*(?:and\s+)?(?:then\s*,?\s+|after\s+that\s*,?\s+|afterwards\s*,?\s+|finally\s*,?\s+)?(?:also\s+)?{_NEXT_VERB}"
    rf"|\s+(?:and\s+)?(?:then|after\s+that|afterwards)\s*,?\s+{_NEXT_VERB}"
    rf"|\s+and\s+(?:also\s+)?{_NEXT_VERB}",
    re.IGNORECASE,
)
_POLITE = re.compile(
    r"^(?:(?:please|pls|now|just|and|also|first|firstly|then|ok|okay)\s*,?\s+|(?:can|could|would)\s+you\s+|"
    r"i\s+(?:want|would\s+like|'d\s+like|need)\s+(?:you\s+)?to\s+|let'?s\s+)+",
    re.IGNORECASE,
)
_TRAILING = re.compile(
    r"(?:\s*,?\s*(?:please|for\s+me|thanks|thank\s+you))+\s*$|\s+(?:of|from|in)\s+(?:the|this)\s+(?:video|clip)\b"
    r"|\s+(?:the|this)\s+(?:video|clip)\b(?=\s|$)",
    re.IGNORECASE,
)


def parse_time(text: str) -> float:
    """'0:05' / '1:02:03.5' / '90 seconds' / '1 min 30 s' / 'three minutes' / '15-second' / '12' -> seconds.

    Raises:
        EditError: unreadable, or past `LIMITS.max_seconds` (300 digits are a typo, not a time).
    """
    seconds = _read_time(text)
    if not seconds <= LIMITS.max_seconds:  # also NaN / inf
        raise EditError(
            f"{_short(text.strip(), 40)!r} is more than {LIMITS.max_seconds / 86400:g} days; "
            "give a time inside the video, e.g. 0:05 or 90 seconds"
        )
    return seconds


def _read_time(text: str) -> float:
    text = text.strip().lower()
    if re.fullmatch(_CLOCK, text):
        seconds = 0.0
        for part in text.split(":"):
            seconds = seconds * 60 + float(part)
        return seconds
    if re.fullmatch(r"\d+(?:\.\d+)?", text):
        return float(text)
    total, found = 0.0, False
    for num, unit in re.findall(rf"({_NUM})\s*-?\s*({_UNIT})(?![a-z])", text):
        value = float(num) if num[0].isdigit() else float(_NUMBER_WORDS[num])
        total += value * _UNIT_SECONDS[unit[0]]
        found = True
    if not found:
        raise EditError(f"cannot read {text!r} as a time; write e.g. 0:05, 1:02:03 or 90 seconds")
    return total


def _number(text: str | None) -> int | None:
    if not text:
        return None
    text = text.strip().lower()
    if not text[0].isdigit():
        return _NUMBER_WORDS.get(text)
    value = float(text)  # 300 digits are inf here: refused below, never int(inf)
    if not value <= LIMITS.max_top_k:
        raise EditError(
            f"{_short(text, 40)!r} is too many; ask for at most {LIMITS.max_top_k}, e.g. 'keep the best 3 moments'"
        )
    return int(value)


def _normalise(text: str) -> str:
    text = re.sub(r"\s+", " ", text).strip()
    text = re.sub(r"\bhalf\s+a\s+minute\b", "30 seconds", text, flags=re.IGNORECASE)
    text = re.sub(r"\bhalf\s+an\s+hour\b", "30 minutes", text, flags=re.IGNORECASE)
    text = re.sub(r"\ba\s+minute\s+and\s+a\s+half\b", "90 seconds", text, flags=re.IGNORECASE)
    return text


def split_instruction(instruction: str) -> list[str]:
    """'remove the silences, then keep only the first minute' -> the two operations' texts."""
    text = _normalise(instruction)
    parts = [p for p in _SPLIT.split(text) if p and p.strip()]
    return [_clean(p) for p in parts if _clean(p)]


def _clean(part: str) -> str:
    part = part.strip().strip(" ,;.!?")
    previous = None
    while previous != part:
        previous = part
        part = _POLITE.sub("", part).strip()
        part = _TRAILING.sub("", part).strip(" ,;.!?")
    return part


def _phrases(text: str) -> tuple[str, ...]:
    return tuple(p.strip() for p in re.findall(_QUOTED, text) if p.strip())


class RuleEditParser:
    """Deterministic reading of the common edit instructions; an unreadable part is reported, not guessed."""

    name = "rule"

    def parse(self, instruction: str) -> ParsedInstruction:
        check_instruction(instruction)
        operations, notes = [], []
        for part in split_instruction(instruction):
            op = self.parse_one(part)
            if op is None:
                notes.append(f"could not read {part!r} as an edit")
            else:
                operations.append(op)
        return ParsedInstruction(instruction, check_operations(operations), "rule", notes)

    def parse_one(self, text: str) -> Operation | None:
        """One operation from one clause, or None."""
        for rule in (self._silence, self._speech, self._words, self._highlights, self._head_tail, self._open_range,
                     self._range, self._moment_until, self._moment, self._anything):  # fmt: skip
            op = rule(text)
            if op is not None:
                return op
        return None

    @staticmethod
    def _action(verb: str) -> str:
        return "cut" if re.match(_CUT, verb, re.IGNORECASE) else "keep"

    def _silence(self, text: str) -> Operation | None:
        m = re.match(
            rf"^({_CUT})\s+(?:all\s+|any\s+|every\s+|each\s+)?(?:of\s+)?(?:the\s+)?(?:long\s+)?{_SILENCE}"
            rf"(?:\s+(?:longer|more|over)\s+than\s+({_TIME_OR_NUMBER}))?$",
            text,
            re.IGNORECASE,
        )
        if not m:
            return None
        minimum = parse_time(m.group(2)) if m.group(2) else None
        return Operation("cut", "silence", min_silence_s=minimum, text=text)

    def _speech(self, text: str) -> Operation | None:
        """'remove the parts without speech' / 'keep only the talking' -> keep speech; 'cut the talking' -> cut."""
        nobody = r"(?:nobody|no\s+one|no-one)\s+(?:talks|speaks|says\s+anything|is\s+(?:talking|speaking))"
        without = rf"(?:{_SPAN_NOUN}|stretches|everything)\s+(?:without|with\s+no)\s+(?:speech|talking|dialogue|voices?)"
        if re.match(
            rf"^{_CUT}\s+(?:all\s+)?(?:of\s+)?(?:the\s+)?(?:{without}|non-?speech(?:\s+{_SPAN_NOUN})?|(?:{_SPAN_NOUN}\s+)?(?:where|when)\s+{nobody})$",
            text,
            re.IGNORECASE,
        ):
            return Operation("keep", "speech", text=text)
        m = re.match(
            rf"^({_VERB})\s+(?:only\s+)?(?:all\s+)?(?:the\s+)?(?:speech|talking|dialogue|spoken\s+parts?|(?:{_SPAN_NOUN}\s+)?(?:with\s+speech|where\s+(?:someone|somebody|people|anyone)\s+(?:talks|speaks|is\s+talking|is\s+speaking)))$",
            text,
            re.IGNORECASE,
        )
        if m:
            return Operation(self._action(m.group(1)), "speech", text=text)
        return None

    def _words(self, text: str) -> Operation | None:
        fillers = re.match(
            rf"^({_CUT})\s+(?:all\s+|every\s+|each\s+)?(?:of\s+)?(?:the\s+)?(?:filler\s+words?|fillers?|ums?(?:\s+and\s+uhs?)?|uhs?(?:\s+and\s+ums?)?|hesitations?)$",
            text,
            re.IGNORECASE,
        )
        if fillers:
            return Operation("cut", "words", phrases=FILLER_WORDS, text=text)
        says = r"(?:\w+\s+)?(?:says?|said|saying|mentions?|mentioned|talks?\s+about|utters?)"
        m = re.match(
            rf"^({_VERB})\s+(?:only\s+)?(?:(?:every|each)\s+time|whenever|(?:all\s+)?(?:the\s+)?{_SPAN_NOUN}\s+(?:where|when)|where|when|what)\s+{says}\s+(.+)$",
            text,
            re.IGNORECASE,
        ) or re.match(
            rf"^({_VERB})\s+(?:only\s+)?(?:all\s+|every\s+|each\s+)?(?:of\s+)?(?:the\s+)?(?:words?|phrases?)\s+(.+)$",
            text,
            re.IGNORECASE,
        )
        if not m:
            return None
        phrases = _phrases(m.group(2))
        if not phrases and re.fullmatch(r"[\w'-]*\w[\w'-]*", m.group(2).strip()):
            phrases = (m.group(2).strip(),)
        if not phrases and re.search(_Q, m.group(2)):  # said words, just none: not a moment to look for
            raise EditError(
                f"{_short(text, 60)!r}: the quote holds no words; put what is said between the quotes, "
                'e.g. remove every time he says "um"'
            )
        if not phrases:
            return None
        return Operation(self._action(m.group(1)), "words", phrases=phrases, text=text)

    def _highlights(self, text: str) -> Operation | None:
        within = rf"(?:\s+(?:within|in|under|of\s+at\s+most|of|totall?ing|up\s+to|for)\s+({_TIME})(?:\s+(?:total|in\s+total|overall))?)?"
        m = re.match(
            rf"^(?:{_KEEP}\s+)?(?:only\s+)?(?:the\s+|an?\s+)?(?:best|top|most\s+(?:exciting|interesting|important))\s+(?:({_NUM})\s+)?({_SPAN_NOUN}|highlights?){within}$",
            text,
            re.IGNORECASE,
        )
        if m:
            count, total = _number(m.group(1)), parse_time(m.group(3)) if m.group(3) else None
            if count is None and total is None:  # "the best moment" is one, "the best moments" a few
                count = 3 if m.group(2).lower().endswith("s") else 1
            return Operation("keep", "highlights", count=count, total_s=total, text=text)
        m = re.match(
            rf"^(?:{_KEEP}\s+)?(?:only\s+)?(?:me\s+)?(?:an?\s+|the\s+)?({_TIME})(?:\s+long)?\s+{_REEL}$",
            text,
            re.IGNORECASE,
        )
        if not m:
            m = re.match(
                rf"^(?:{_KEEP}\s+)?(?:me\s+)?(?:an?\s+|the\s+)?{_REEL}\s+(?:of|under|within|in)\s+({_TIME})$",
                text,
                re.IGNORECASE,
            )
        if m:
            return Operation("keep", "highlights", total_s=parse_time(m.group(1)), text=text)
        return None

    def _head_tail(self, text: str) -> Operation | None:
        m = re.match(
            rf"^({_VERB})\s+(?:off\s+)?(?:only\s+)?(?:the\s+)?(first|last|final|opening|closing|ending)\s+({_TIME}|second|minute|hour)$",
            text,
            re.IGNORECASE,
        )
        if m:
            where = "head" if m.group(2).lower() in ("first", "opening") else "tail"
            length = (
                m.group(3)
                if re.search(r"\d|\s", m.group(3)) or m.group(3) not in ("second", "minute", "hour")
                else f"1 {m.group(3)}"
            )
            return Operation(self._action(m.group(1)), where, seconds=parse_time(length), text=text)
        m = re.match(
            rf"^(?:shorten|trim|cut)\s+(?:it\s+)?(?:down\s+)?to\s+(?:the\s+first\s+)?({_TIME})$",
            text,
            re.IGNORECASE,
        )
        if m:
            return Operation("keep", "head", seconds=parse_time(m.group(1)), text=text)
        return None

    def _open_range(self, text: str) -> Operation | None:
        m = re.match(
            rf"^({_VERB})\s+(?:only\s+)?(?:everything|anything|all|the\s+rest|what\s+comes)?\s*(after|from|since|before|until|till|up\s+to)\s+({_TIME_OR_NUMBER})(?:\s+on(?:wards?)?)?$",
            text,
            re.IGNORECASE,
        )
        if m:
            t = parse_time(m.group(3))
            after = m.group(2).lower() in ("after", "from", "since")
            start, end = (t, None) if after else (0.0, t)
            return Operation(self._action(m.group(1)), "range", start_s=start, end_s=end, text=text)
        m = re.match(
            rf"^(start|begin|end|stop|finish)\s+(?:it\s+|the\s+\w+\s+)?(?:at|from)\s+({_TIME_OR_NUMBER})$",
            text,
            re.IGNORECASE,
        )
        if m:
            t = parse_time(m.group(2))
            start, end = (0.0, t) if m.group(1).lower() in ("start", "begin") else (t, None)
            return Operation("cut", "range", start_s=start, end_s=end, text=text)
        return None

    def _range(self, text: str) -> Operation | None:
        m = re.match(
            rf"^({_VERB})\s+(?:out\s+)?(?:only\s+)?(?:the\s+{_SPAN_NOUN}\s+|everything\s+)?(?:from\s+|between\s+|at\s+)?"
            rf"({_TIME_OR_NUMBER})\s*(?:to|until|till|through|thru|-|–|—|and)\s*({_TIME_OR_NUMBER})$",
            text,
            re.IGNORECASE,
        )
        if not m:
            return None
        start, end = parse_time(m.group(2)), parse_time(m.group(3))
        if end <= start:
            raise EditError(f"{text!r}: the range ends before it starts; write the earlier time first")
        return Operation(self._action(m.group(1)), "range", start_s=start, end_s=end, text=text)

    def _moment_until(self, text: str) -> Operation | None:
        m = re.match(
            rf"^({_VERB})\s+(?:only\s+)?(?:everything\s+|the\s+{_SPAN_NOUN}\s+)?from\s+(?:when|where|the\s+moment)\s+(.+?)\s+(?:until|till|to|up\s+to|through)\s+(?:when\s+|the\s+moment\s+)?(.+)$",
            text,
            re.IGNORECASE,
        )
        if not m:
            return None
        return Operation(self._action(m.group(1)), "moment", query=m.group(2), until=m.group(3), text=text)

    def _moment(self, text: str) -> Operation | None:
        m = re.match(
            rf"^({_VERB})\s+(?:out\s+)?(?:only\s+)?(?:the\s+|all\s+(?:the\s+)?|every\s+|any\s+)?{_SPAN_NOUN}\s+"
            rf"(?:where|when|in\s+which|with|that\s+shows?|showing|of)\s+(.+)$",
            text,
            re.IGNORECASE,
        ) or re.match(
            rf"^({_VERB})\s+(?:only\s+)?(?:everything\s+)?(?:where|when)\s+(.+)$", text, re.IGNORECASE
        )
        if not m:
            return None
        return Operation(self._action(m.group(1)), "moment", query=m.group(2), text=text)

    def _anything(self, text: str) -> Operation | None:
        """'remove the dog jumping' / 'keep the goal': the rest is a moment to ground (at least two words)."""
        m = re.match(rf"^({_CUT}|keep|retain)\s+(?:out\s+)?(?:only\s+)?(.+)$", text, re.IGNORECASE)
        if (
            not m
            or len(re.findall(r"[a-z]{2,}", m.group(2), re.IGNORECASE)) < 2
            or re.search(r"\d", m.group(2))
        ):
            return None
        return Operation(self._action(m.group(1)), "moment", query=m.group(2), text=text)


# --- LLM parser ---------------------------------------------------------------------------------------


class LLMEditParser:
    """Read an instruction with a LangChain chat model answering JSON (structured output); fall back to
    `fallback` (the rule parser) when the answer does not validate. `fallbacks` counts those."""

    name = "llm"

    def __init__(self, chat_model: Any, *, fallback: RuleEditParser | None = None, structured: bool = True):
        self.chat_model = chat_model
        self.fallback = fallback or RuleEditParser()
        self.structured = structured
        self.prompt = load_prompt("edit")
        self.fallbacks = 0

    def parse(self, instruction: str, *, duration_s: float | None = None) -> ParsedInstruction:
        check_instruction(instruction)
        raw, notes = self._ask(instruction, duration_s)
        try:
            data = json.loads(raw)
            operations = operations_from_json(data)
            if not operations:
                raise EditError("the model found no operation")
            return ParsedInstruction(instruction, operations, "llm", notes)
        except (json.JSONDecodeError, EditError, TypeError, ValueError) as exc:
            self.fallbacks += 1
            reason = _short(f"{type(exc).__name__}: {exc}")
            log.info("LLM edit rejected (%s); using the rule parser", reason)
            parsed = self.fallback.parse(instruction)
            parsed.notes = [
                *notes,
                f"llm edit rejected ({reason}); fell back to the rule parser",
                f"llm raw output: {_short(raw, 300)}",
                *parsed.notes,
            ]
            return parsed

    def _messages(self, instruction: str, duration_s: float | None) -> list[tuple[str, str]]:
        duration = "unknown" if duration_s is None else f"{duration_s:.2f}"
        user = self.prompt.render("user", instruction=instruction, duration_s=duration)
        return [("system", self.prompt.render("system")), ("human", user)]

    def _ask(self, instruction: str, duration_s: float | None) -> tuple[str, list[str]]:
        """The model's raw answer; a server refusing the schema (HTTP 400) is asked again without it."""
        from grounding_agent.agent.llm import ask_json

        schema = llm_output_schema() if self.structured else None
        return ask_json(
            self.chat_model, self._messages(instruction, duration_s), schema, name="edit", what="edit parser"
        )


def check_instruction(instruction: str) -> None:
    """Refuse, before any parsing, an empty instruction or one past `LIMITS.max_query_chars`."""
    if not isinstance(instruction, str) or not instruction.strip():
        raise EditError('empty instruction: say what to edit, e.g. "cut 0:05 to 0:15"')
    try:
        LIMITS.check_text(instruction, "the instruction")
    except ConfigError as exc:
        raise EditError(str(exc)) from None


def _short(text: str, limit: int = 160) -> str:
    text = " ".join(str(text).split())
    return text if len(text) <= limit else text[: limit - 1] + "…"
