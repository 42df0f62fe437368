"""The rule grammar: edit instructions -> `Operation`s, deterministic, and every part either read or refused
with the reason (never guessed). It reads the common English forms:

    cut 0:05 to 0:15 / keep 1:00-2:30 / trim the first 3 seconds / keep only the last minute
    cut everything after 2:00 / start at 0:10 / shorten it to 30 seconds
    cut the part where the dog jumps / keep from when she opens the door until she sits down
    keep the best 3 moments / a 15-second teaser / top 5 highlights within 40 seconds
    remove the silences / remove pauses longer than 2 seconds / remove dead air
    remove every time he says 'um' / cut the words "basically", "literally" / remove the filler words
    keep only the parts where she says "price" / keep only where she says the price is twenty dollars
    remove the parts without speech / keep only the talking

Compositions are joined by "then", "and", commas or semicolons before the next verb ("remove the
silences, then keep only the first minute"); one verb shared by several targets is several operations
("remove silences and filler words", "remove the pauses and the ums"). A described moment is read only
when it describes something seen (`parse_base.moment_problem`); "keep X and Y" of different kinds is
refused (each keep keeps only what the one before left, so it would keep their overlap).
"""

from __future__ import annotations

import re
from dataclasses import replace

from grounding_agent.edit.parse_base import (
    ParsedInstruction,
    check_instruction,
    check_operations,
    moment_problem,
)
from grounding_agent.edit.parse_numbers import NUM, TIME, TIME_OR_NUMBER, parse_count, parse_time, short
from grounding_agent.edit.plan import FILLER_WORDS, Operation
from grounding_agent.errors import EditError

__all__ = ["EXAMPLES", "RuleEditParser", "split_instruction"]

EXAMPLES = "'cut 0:05 to 0:15', 'trim the first 3 seconds', 'remove the silences', 'keep the best 3 moments'"

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


# Between the targets one verb shares ("silences and filler words", "the pauses, the ums").
_ITEM_SEP = re.compile(
    r"\s*,\s*(?:and\s+|or\s+)?|\s+(?:and|or|plus|as\s+well\s+as)\s+|\s*&\s*", re.IGNORECASE
)
_SHARED_VERB = re.compile(rf"^({_VERB})\s+((?:only\s+)?(?:all\s+)?)(.+)$", re.IGNORECASE)


def _split_outside_quotes(text: str, separator: re.Pattern[str]) -> list[str]:
    """`text` split at `separator`, except inside a quoted phrase ('rock and roll')."""
    quoted = [m.span() for m in re.finditer(_QUOTED, text)]
    pieces, start = [], 0
    for m in separator.finditer(text):
        if any(a <= m.start() < b for a, b in quoted):
            continue
        pieces.append(text[start : m.start()])
        start = m.end()
    pieces.append(text[start:])
    return [p.strip() for p in pieces if p.strip()]


class RuleEditParser:
    """Deterministic reading of the common edit instructions; an unreadable part is reported with the
    reason (`ParsedInstruction.unread`), never guessed."""

    name = "rule"

    def parse(self, instruction: str) -> ParsedInstruction:
        check_instruction(instruction)
        operations, notes, unread = [], [], []
        for part in split_instruction(instruction):
            ops, reason = self.read(part)
            if reason is not None:
                notes.append(f"could not read {part!r} as an edit: {reason}")
                unread.append((part, reason))
            operations.extend(replace(op, read_as=f'rule: "{short(op.text or part, 120)}"') for op in ops)
        return ParsedInstruction(instruction, check_operations(operations), "rule", notes, unread)

    def parse_one(self, text: str) -> Operation | None:
        """The first operation read from one clause, or None."""
        ops, _ = self.read(text)
        return ops[0] if ops else None

    def read(self, text: str) -> tuple[list[Operation], str | None]:
        """The operations of one clause, or ([], why it cannot be read).

        A verb shared by several targets is tried first ("remove silences and filler words"), so an
        unquoted phrase never swallows the next target; then the rules for one target; a described moment
        last, and only when it describes something seen.
        """
        shared = self._shared_verb(text)
        if shared is not None:
            return shared
        op = self._one(text)
        if op is not None:
            return [op], None
        for rule in (self._moment_until, self._moment, self._anything):
            op = rule(text)
            if op is None:
                continue
            problem = None if rule == self._moment_until else moment_problem(op.query or "")
            return ([], problem) if problem else ([op], None)
        return [], f"no rule reads it; say e.g. {EXAMPLES}"

    def _one(self, text: str) -> Operation | None:
        """One operation whose target the rules name (times, silences, speech, words, highlights)."""
        for rule in (self._silence, self._speech, self._words, self._highlights, self._head_tail,
                     self._open_range, self._range):  # fmt: skip
            op = rule(text)
            if op is not None:
                return op
        return None

    def _shared_verb(self, text: str) -> tuple[list[Operation], str | None] | None:
        """'remove silences and filler words' -> cut silences, cut filler words; None unless every target
        reads on its own (a described moment counts only with "the part where ..." / "when ...")."""
        m = _SHARED_VERB.match(text)
        items = _split_outside_quotes(m.group(3), _ITEM_SEP) if m else []
        if len(items) < 2:
            return None
        ops = []
        for item in items:
            part = f"{m.group(1)} {m.group(2)}{item}"
            op = self._one(part) or self._moment_until(part) or self._moment(part)
            if op is None or (op.target == "moment" and moment_problem(op.query or "")):
                return None
            ops.append(op)
        if ops[0].action == "cut":
            return ops, None
        if all(op.target == "words" for op in ops):  # keep where any of the phrases is said
            phrases = tuple(dict.fromkeys(p for op in ops for p in op.phrases))
            return [Operation("keep", "words", phrases=phrases, text=text)], None
        kinds = ", ".join(dict.fromkeys(op.describe() for op in ops))
        return [], (
            f"it keeps several things at once ({kinds}); each keep keeps only what the one before left, so "
            "this would keep their overlap: keep one and cut the others, or make separate edits"
        )

    @staticmethod
    def _action(verb: str) -> str:
        return "cut" if re.match(_CUT, verb, re.IGNORECASE) else "keep"

    def _silence(self, text: str) -> Operation | None:
        m = re.match(
            rf"^({_CUT})\s+(?:all\s+|any\s+|every\s+|each\s+)?(?:of\s+)?(?:the\s+)?(?:long\s+)?{_SILENCE}"
            rf"(?:\s+(?:longer|more|over)\s+than\s+({TIME_OR_NUMBER}))?$",
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
        said = re.match(
            rf"^({_VERB})\s+(?:only\s+)?(?:(?:every|each)\s+time|whenever|(?:all\s+)?(?:the\s+)?{_SPAN_NOUN}\s+(?:where|when)|where|when|what)\s+{says}\s+(.+)$",
            text,
            re.IGNORECASE,
        )
        m = said or re.match(
            rf"^({_VERB})\s+(?:only\s+)?(?:all\s+|every\s+|each\s+)?(?:of\s+)?(?:the\s+)?(?:words?|phrases?)\s+(.+)$",
            text,
            re.IGNORECASE,
        )
        if not m:
            return None
        rest = m.group(2).strip(" .!?")
        phrases = _phrases(rest)
        if phrases:  # quoted: nothing else may follow ("... 'um' and the silences" is two operations)
            left = re.sub(r"(?:[,;&]|\b(?:and|or|the|words?|phrases?)\b|\s)+", "", re.sub(_QUOTED, "", rest))
            return (
                Operation(self._action(m.group(1)), "words", phrases=phrases, text=text) if not left else None
            )
        if re.search(rf"{_Q}\s*{_Q}", rest):  # said words, just none: not a moment to look for
            raise EditError(
                f"{short(text, 60)!r}: the quote holds no words; put what is said between the quotes, "
                'e.g. remove every time he says "um"'
            )
        # Unquoted: after "says" the rest is what is said; after "the words", a list of words.
        phrases = (rest,) if said else tuple(_split_outside_quotes(rest, _ITEM_SEP))
        if not all(re.fullmatch(r"[\w'’$£€%.,:-]+(?:\s+[\w'’$£€%.,:-]+)*", p) for p in phrases):
            return None
        return Operation(self._action(m.group(1)), "words", phrases=phrases, text=text)

    def _highlights(self, text: str) -> Operation | None:
        within = rf"(?:\s+(?:within|in|under|of\s+at\s+most|of|totall?ing|up\s+to|for)\s+({TIME})(?:\s+(?:total|in\s+total|overall))?)?"
        m = re.match(
            rf"^(?:{_KEEP}\s+)?(?:only\s+)?(?:the\s+|an?\s+)?(?:best|top|most\s+(?:exciting|interesting|important))\s+(?:({NUM})\s+)?({_SPAN_NOUN}|highlights?){within}$",
            text,
            re.IGNORECASE,
        )
        if m:
            count, total = parse_count(m.group(1)), parse_time(m.group(3)) if m.group(3) else None
            if count is None and total is None:  # "the best moment" is one, "the best moments" a few
                count = 3 if m.group(2).lower().endswith("s") else 1
            return Operation("keep", "highlights", count=count, total_s=total, text=text)
        m = re.match(
            rf"^(?:{_KEEP}\s+)?(?:only\s+)?(?:me\s+)?(?:an?\s+|the\s+)?({TIME})(?:\s+long)?\s+{_REEL}$",
            text,
            re.IGNORECASE,
        )
        if not m:
            m = re.match(
                rf"^(?:{_KEEP}\s+)?(?:me\s+)?(?:an?\s+|the\s+)?{_REEL}\s+(?:of|under|within|in)\s+({TIME})$",
                text,
                re.IGNORECASE,
            )
        if m:
            return Operation("keep", "highlights", total_s=parse_time(m.group(1)), text=text)
        return None

    def _head_tail(self, text: str) -> Operation | None:
        m = re.match(
            rf"^({_VERB})\s+(?:off\s+)?(?:only\s+)?(?:the\s+)?(first|last|final|opening|closing|ending)\s+({TIME}|second|minute|hour)$",
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
            rf"^(?:shorten|trim|cut)\s+(?:it\s+)?(?:down\s+)?to\s+(?:the\s+first\s+)?({TIME})$",
            text,
            re.IGNORECASE,
        )
        if m:
            return Operation("keep", "head", seconds=parse_time(m.group(1)), text=text)
        return None

    def _open_range(self, text: str) -> Operation | None:
        m = re.match(
            rf"^({_VERB})\s+(?:only\s+)?(?:everything|anything|all|the\s+rest|what\s+comes)?\s*(after|from|since|before|until|till|up\s+to)\s+({TIME_OR_NUMBER})(?:\s+on(?:wards?)?)?$",
            text,
            re.IGNORECASE,
        )
        if m:
            t = parse_time(m.group(3))
            after = m.group(2).lower() in ("after", "from", "since")
            start, end = (t, None) if after else (0.0, t)
            return Operation(self._action(m.group(1)), "range", start_s=start, end_s=end, text=text)
        m = re.match(
            rf"^(start|begin|end|stop|finish)\s+(?:it\s+|the\s+\w+\s+)?(?:at|from)\s+({TIME_OR_NUMBER})$",
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
            rf"({TIME_OR_NUMBER})\s*(?:to|until|till|through|thru|-|–|—|and)\s*({TIME_OR_NUMBER})$",
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
