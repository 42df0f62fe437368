"""Planners: a query -> a `Plan` (sub-events, their temporal relations, what to return).

Two implementations behind one interface (`plan(query) -> Plan`):

- `RulePlanner`: deterministic, for the common English patterns ("X then Y", "after X, Y", "Y after X",
  "X before Y", "while X, Y", "Y while X", "X, followed by Y"); anything else is one step.
- `LLMPlanner`: a LangChain chat model (e.g. `ChatOpenAI` pointed at the vLLM OpenAI endpoint) asked for
  JSON constrained by `schemas/plan.schema.json`. Whatever it answers is validated; an answer that fails
  falls back to the rule planner and the plan's `notes` say why.

Step ids are `s1, s2, ...` in the order the sub-events appear in the query text.
"""

from __future__ import annotations

import copy
import json
import logging
import re
from dataclasses import replace
from typing import Any, Protocol, runtime_checkable

from grounding_agent.agent.llm import ask_json, chat_model, short
from grounding_agent.defaults import LIMITS, SERVER
from grounding_agent.errors import ConfigError
from grounding_agent.types import Plan, Relation, Step

log = logging.getLogger(__name__)

MAX_STEPS = 4


@runtime_checkable
class Planner(Protocol):
    """query -> `Plan`. `calls`, when given, gains the model calls made (key "planner_llm")."""

    name: str

    def plan(self, query: str, *, calls: dict[str, int] | None = None) -> Plan: ...


# --- JSON schema ----------------------------------------------------------------------------------------


def plan_schema() -> dict[str, Any]:
    """The JSON schema of a plan (`schemas/plan.schema.json`)."""
    from grounding_agent.utils.prompts import (
        load_schema,  # jinja2 + yaml (~45 ms): the rule planner needs neither
    )

    return load_schema("plan")


def llm_output_schema() -> dict[str, Any]:
    """The plan schema without the fields we fill in ourselves (query, planner, notes): what the LLM writes."""
    schema = copy.deepcopy(plan_schema())
    for key in ("query", "planner", "notes"):
        schema["properties"].pop(key)
    schema["required"] = [k for k in schema["required"] if k in schema["properties"]]
    return schema


def validate_plan_dict(data: Any) -> Plan:
    """Check a plan dict against the schema and the plan's own invariants.

    Raises:
        ConfigError: the dict is not a valid plan (the message says where).
    """
    import jsonschema  # ~0.1 s: only LLM plans and plan files are validated

    try:
        jsonschema.validate(data, plan_schema())
    except jsonschema.ValidationError as exc:
        where = "/".join(str(p) for p in exc.absolute_path) or "(root)"
        raise ConfigError(f"plan fails schema at {where}: {exc.message}") from None
    return Plan.from_dict(data)


# --- rule planner ---------------------------------------------------------------------------------------

_PEOPLE = r"(?:person|man|woman|boy|girl|guy|lady|kid|child|people|persons|someone|somebody)"
_PRONOUN = r"(?:he|she|they)"
# A subject at the start of a clause: "a person", "the man", "person", "he", "someone".
_SUBJECT = re.compile(
    rf"^(?:(?:(?:a|an|the|another|one|this|that)\s+)?{_PEOPLE}|{_PRONOUN})\b", re.IGNORECASE
)
# Words that can open a clause after "after"/"before"/"as" for it to be a second event, not a location
# ("looks after the baby", "stands before the mirror", "uses it as a towel" stay one step).
_CLAUSE_START = rf"(?=\w+ing\b|(?:(?:a|an|the|another)\s+)?{_PEOPLE}\b|{_PRONOUN}\b)"

# Connectors of a sequence "X then Y then Z" (all before, return the span).
_SEQUENCE = re.compile(
    r"\s*[,;.]?\s*\b(?:and\s+then|then|and\s+afterwards|afterwards|and\s+after\s+that|after\s+that"
    r"|and\s+finally|followed\s+by|and\s+subsequently|subsequently)\b\s*,?\s*",
    re.IGNORECASE,
)
# A leading subordinate clause: "after X, Y", "before X, Y", "while X, Y", "once X, Y", "as X, Y".
_LEADING = re.compile(r"^(after|before|while|whilst|once|as)\s+(.+)$", re.IGNORECASE)
# An infix subordinate clause: "Y after X", "X before Y", "Y while X", "Y as he X".
_INFIX = re.compile(
    rf"\s*,?\s+(?:(after|before|once)\s+{_CLAUSE_START}|(while|whilst)\s+|(as)\s+(?=(?:(?:a|an|the)\s+)?{_PEOPLE}\b|{_PRONOUN}\b))",
    re.IGNORECASE,
)
_FILLER = re.compile(r"^(?:and|first|firstly|first\s+of\s+all|then)\b\s*,?\s*", re.IGNORECASE)
# A clause that names its own (non-person) subject: "the dog jumps", "a car drives by", "his phone rings".
_OWN_SUBJECT = re.compile(
    r"^(?:a|an|the|this|that|these|those|another|his|her|their|its|my|our|your|some)\s+\w+", re.IGNORECASE
)
# An editing command around the moment: "cut the part where X", "remove the bit when X", "keep only the
# scene in which X", "mute where X". What is grounded is X (the edit itself is parsed by `edit`).
_EDIT_VERB = (
    r"(?:cut(?:\s+out)?|remove|delete|drop|trim(?:\s+out)?|keep(?:\s+only)?|extract|clip|mute|blur|censor"
    r"|skip(?:\s+to)?|jump\s+to|go\s+to|speed\s+up|slow\s+down|loop|replay|highlight|export|save|show(?:\s+me)?"
    r"|find|give\s+me|play)"
)
_EDIT_PART = r"(?:part|bit|section|segment|scene|moment|clip|portion|piece|shot|time|point|frames?|seconds?)"
_EDIT_LINK = r"(?:where|when(?:ever)?|in\s+which|during\s+which|that\s+shows?|showing|of|with)"
_EDIT = re.compile(
    rf"^(?:please\s+|can\s+you\s+|could\s+you\s+)?{_EDIT_VERB}\s+"
    rf"(?:(?:only\s+)?(?:the|a|an|every|all(?:\s+the)?|each|that)?\s*{_EDIT_PART}s?\s+(?:{_EDIT_LINK}\s+)?"
    rf"|{_EDIT_LINK}\s+)(?P<rest>.+)$",
    re.IGNORECASE,
)


# Quoted words ("he says 'wait, then go'") are masked while the query is split, so a comma or a connector
# inside a quote never splits it; a speech sub-event keeps its quote word for word.
_QUOTED = re.compile(r"[\"“][^\"“”]*[\"”]|(?<!\w)['‘](?:[^'‘’]|(?<=\w)['’](?=\w))+['’](?!\w)")


def _mask_quotes(text: str) -> tuple[str, list[str]]:
    quotes: list[str] = []

    def hide(m: re.Match) -> str:
        quotes.append(m.group(0))
        return f"\ue000{len(quotes) - 1}\ue001"

    return _QUOTED.sub(hide, text), quotes


def _unmask(text: str, quotes: list[str]) -> str:
    return re.sub("\ue000(\\d+)\ue001", lambda m: quotes[int(m.group(1))], text)


def speech_notes(plan: Plan) -> tuple[str, ...]:
    """A note per step about what is said: such a step is searched in the transcript (with --asr-model)."""
    from grounding_agent.media.speech_query import speech_query

    said = ((s.id, speech_query(s.text)) for s in plan.steps)
    return tuple(f"{sid}: speech, searched in the transcript for {q!r}" for sid, q in said if q)


def _clean(text: str) -> str:
    text = re.sub(r"\s+", " ", text).strip()
    text = _FILLER.sub("", text)
    return text.strip(" ,;:.!?")


def _subject(text: str) -> str | None:
    m = _SUBJECT.match(text)
    return m.group(0) if m else None


def strip_edit_command(query: str) -> str:
    """The moment an editing command is about: "cut the part where X" -> "X"; other queries as they are."""
    m = _EDIT.match(query.strip())
    return m.group("rest") if m and _clean(m.group("rest")) else query


def check_query(query: Any) -> str:
    """The query as text, or a typed error saying what is wrong with it.

    Raises:
        ConfigError: not a str, not valid UTF-8 (e.g. undecodable bytes escaped into the str), or empty.
    """
    if not isinstance(query, str):
        raise ConfigError(f"the query must be text (a str), got {type(query).__name__}")
    LIMITS.check_text(query)  # before any regex or model sees it
    try:
        query.encode("utf-8")
    except UnicodeEncodeError:
        raise ConfigError(
            "the query is not valid UTF-8 text; re-type it or fix the file's encoding"
        ) from None
    if not _clean(query):
        raise ConfigError("empty query: give a sentence describing the moment to find")
    return query


def _share_subject(texts: list[str]) -> list[str]:
    """Give subject-less steps ("walks in", "sitting down") the query's subject; resolve he/she/they."""
    nouns = [s for s in map(_subject, texts) if s and not re.fullmatch(_PRONOUN, s, re.IGNORECASE)]
    if not nouns:
        return texts
    noun = nouns[0]
    out = []
    for text in texts:
        subj = _subject(text)
        if subj is None and not _OWN_SUBJECT.match(text):  # "the dog jumps" keeps its dog
            text = f"{noun} {text}"
        elif subj is not None and re.fullmatch(_PRONOUN, subj, re.IGNORECASE):
            rest = text[len(subj) :]
            rest = re.sub(r"^(?:'re|'s)\b", " is", rest)  # "they're leaving" -> "the person is leaving"
            text = noun + rest
        out.append(text)
    return out


def _split_leading(body: str) -> tuple[str, str] | None:
    """'X, Y' (or 'X the man Y' with no comma) -> (X, Y)."""
    if "," in body:
        x, y = body.split(",", 1)
        return (x, y) if _clean(x) and _clean(y) else None
    # No comma: the main clause starts at the first subject with a clause (not a bare "the") before it.
    for m in re.finditer(rf"\s(?=(?:(?:a|an|the)\s+)?{_PEOPLE}\b|{_PRONOUN}\b)", body, re.IGNORECASE):
        head = body[: m.start()]
        if _is_clause(head) and not re.search(r"\b(?:a|an|the|another|this|that)$", head, re.IGNORECASE):
            return head, body[m.end() :]
    return None


def _is_clause(text: str) -> bool:
    """Not empty and more than a bare subject: "person" (as in "person after awakening") is no event."""
    text = _clean(text)
    m = _SUBJECT.match(text)
    return bool(text) and not (m and m.end() == len(text))


class RulePlanner:
    """Deterministic planner for common English patterns; anything else passes through as one step."""

    name = "rule"

    def plan(self, query: str, *, calls: dict[str, int] | None = None) -> Plan:
        """Raises: ConfigError: the query is not text, empty, or has more than `MAX_STEPS` sub-events."""
        text = _clean(strip_edit_command(check_query(query)))
        notes = (f"editing command: grounding {text!r}",) if text != _clean(query) else ()
        masked, quotes = _mask_quotes(text)
        plan = Plan(query=query, steps=(Step("s1", text),), target="s1", planner="rule")
        for parse in (self._leading, self._sequence, self._infix):
            parsed = parse(masked)
            if parsed is not None and all(map(_is_clause, parsed[0])):
                built = self._build(query, *parsed)
                plan = replace(built, steps=tuple(Step(s.id, _unmask(s.text, quotes)) for s in built.steps))
                break
        return replace(plan, notes=(*notes, *speech_notes(plan)))

    @staticmethod
    def _build(
        query: str, texts: list[str], relations: list[tuple[str, int, int]], target: int | str
    ) -> Plan:
        texts = _share_subject([_clean(t) for t in texts])
        steps = tuple(Step(f"s{i + 1}", t) for i, t in enumerate(texts))
        rels = tuple(Relation(kind, f"s{a + 1}", f"s{b + 1}") for kind, a, b in relations)  # type: ignore[arg-type]
        tgt = target if isinstance(target, str) else f"s{target + 1}"
        return Plan(query=query, steps=steps, relations=rels, target=tgt, planner="rule")

    @staticmethod
    def _leading(text: str):
        m = _LEADING.match(text)
        if not m:
            return None
        word, body = m.group(1).lower(), m.group(2)
        if word == "as":  # "as soon as X, Y" is "after X, Y"; "as X, Y" is "while X, Y"
            soon = re.match(r"soon\s+as\s+", body, re.IGNORECASE)
            word, body = ("once", body[soon.end() :]) if soon else ("while", body)
        split = _split_leading(body)
        if split is None:
            return None
        x, y = split  # s1 = X (subordinate), s2 = Y (main clause, returned)
        if word in ("after", "once"):
            return [x, y], [("before", 0, 1)], 1
        if word == "before":
            return [x, y], [("before", 1, 0)], 1
        return [x, y], [("during", 1, 0)], 1  # while / whilst / as

    @staticmethod
    def _sequence(text: str):
        parts = [_clean(p) for p in _SEQUENCE.split(text)]
        if len(parts) < 2 or not all(parts):
            return None
        if len(parts) > MAX_STEPS and all(map(_is_clause, parts)):
            raise ConfigError(
                f"the query has {len(parts)} sub-events in a row; the planner handles at most {MAX_STEPS}: "
                "ask for the first few, then for the rest"
            )
        return parts, [("before", i, i + 1) for i in range(len(parts) - 1)], "span"

    @staticmethod
    def _infix(text: str):
        m = _INFIX.search(text)
        if not m or m.start() == 0:
            return None
        left, right = text[: m.start()], text[m.end() :]
        if not _clean(left) or not _clean(right):
            return None
        word = (m.group(1) or m.group(2) or m.group(3)).lower()
        if word in ("after", "once"):  # "Y after X": X before Y, return Y
            return [left, right], [("before", 1, 0)], 0
        if word == "before":  # "X before Y": return X
            return [left, right], [("before", 0, 1)], 0
        return [left, right], [("during", 0, 1)], 0  # "Y while X": Y during X, return Y


# --- LLM planner ----------------------------------------------------------------------------------------


class LLMPlanner:
    """Plan with a LangChain chat model; fall back to `fallback` (the rule planner) on an invalid answer.

    Args:
        chat_model: any LangChain chat model: `ChatOpenAI` on the vLLM endpoint (base model or a planner
            LoRA by its served name; see `chat_model`), or e.g. `ChatHuggingFace` for an in-process HF model.
        fallback: used when the model's plan fails validation; defaults to `RulePlanner()`.
        structured: ask the server to constrain decoding to the plan schema (vLLM honours
            `response_format={"type": "json_schema", ...}`); the answer is validated either way.
    """

    name = "llm"

    def __init__(self, chat_model: Any, *, fallback: Planner | None = None, structured: bool = True):
        self.chat_model = chat_model
        self.fallback = fallback or RulePlanner()
        self.structured = structured
        from grounding_agent.utils.prompts import load_prompt

        self.prompt = load_prompt("planner")

    def _messages(self, query: str) -> list[tuple[str, str]]:
        return [("system", self.prompt.render("system")), ("human", self.prompt.render("user", query=query))]

    def plan(self, query: str, *, calls: dict[str, int] | None = None) -> Plan:
        check_query(query)
        raw, notes = self._ask(strip_edit_command(query), {} if calls is None else calls)
        try:
            data = json.loads(raw)
            if not isinstance(data, dict):
                raise ConfigError(f"expected a JSON object, got {type(data).__name__}")
            plan = validate_plan_dict({"query": query, **data, "planner": "llm"})
            return replace(plan, notes=(*plan.notes, *notes))
        except (json.JSONDecodeError, ConfigError) as exc:
            reason = f"{type(exc).__name__}: {exc}"
            log.info("LLM plan rejected (%s); using the %s planner", reason, self.fallback.name)
            fallback = self.fallback.plan(query)
            notes += [
                f"llm plan rejected ({short(reason)}); fell back to the {fallback.planner} planner",
                f"llm raw output: {short(raw, 300)}",
            ]
            return replace(fallback, notes=(*fallback.notes, *notes))

    def _ask(self, query: str, calls: dict[str, int]) -> tuple[str, list[str]]:
        """The model's raw answer (schema-constrained when `structured`) and notes on how it was asked."""
        schema = llm_output_schema() if self.structured else None
        return ask_json(
            self.chat_model, self._messages(query), schema, name="plan", what="planner", calls=calls
        )


PLANNERS: dict[str, type] = {"rule": RulePlanner, "llm": LLMPlanner}


def make_planner(
    name: str | None = None,
    *,
    server: str | None = None,
    model: str | None = None,
    timeout_s: float = SERVER.request_timeout_s,
) -> Planner:
    """The planner by registry name; default: "llm" when a server is given, else "rule" (`timeout_s`: the
    llm planner's deadline per request).

    Raises:
        ConfigError: unknown name, or "llm" without --server/--model.
    """
    name = name or ("llm" if server else "rule")
    if name not in PLANNERS:
        raise ConfigError(f"unknown planner {name!r}; choose one of {sorted(PLANNERS)}")
    if name == "rule":
        return RulePlanner()
    if not server or not model:
        raise ConfigError(
            "the llm planner needs --server URL and --model NAME (the served model or LoRA name)"
        )
    return LLMPlanner(chat_model(server, model, timeout_s=timeout_s))
