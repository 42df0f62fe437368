"""The LLM instruction parser: a LangChain chat model answers JSON constrained by
`schemas/edit_plan.schema.json` (`operations`); an answer that fails validation, describes a "moment" that
is not something seen, or a model that cannot be reached, falls back to the rule parser, and the notes say
so and why (the planner's discipline).
"""

from __future__ import annotations

import copy
import json
import logging
from dataclasses import replace
from typing import Any

import jsonschema

from grounding_agent.defaults import EDIT_LIMITS
from grounding_agent.edit.parse_base import ParsedInstruction, check_instruction, moment_problem
from grounding_agent.edit.parse_numbers import short
from grounding_agent.edit.parse_rules import RuleEditParser
from grounding_agent.edit.plan import Operation
from grounding_agent.errors import EditError, ServerError
from grounding_agent.utils.prompts import load_prompt, load_schema

__all__ = ["LLMEditParser", "edit_plan_schema", "llm_output_schema", "operations_from_json"]

log = logging.getLogger(__name__)


def edit_plan_schema() -> dict[str, Any]:
    """`schemas/edit_plan.schema.json` (packaged, or in the source checkout)."""
    return load_schema("edit_plan")


def llm_output_schema() -> dict[str, Any]:
    """What the LLM writes: {"operations": [operation, ...]} (the plan schema's operation definition, less
    `read_as`, which the parser writes)."""
    schema = edit_plan_schema()
    operations = copy.deepcopy(schema["properties"]["operations"])
    operations["items"] = copy.deepcopy(schema["$defs"]["operation"])  # inlined: no $ref for the decoder
    operations["items"]["properties"].pop("read_as", None)
    operations["maxItems"] = EDIT_LIMITS.max_operations
    return {"type": "object", "required": ["operations"], "additionalProperties": False,
            "properties": {"operations": operations}}  # fmt: skip


def operations_from_json(data: Any) -> list[Operation]:
    """Validate {"operations": [...]} against the schema and each operation's own rules.

    Raises:
        EditError: not valid (the message says where), or a moment that describes nothing seen.
    """
    try:
        jsonschema.validate(data, llm_output_schema())
    except jsonschema.ValidationError as exc:
        where = "/".join(str(p) for p in exc.absolute_path) or "(root)"
        raise EditError(f"operations fail schema at {where}: {exc.message}") from None
    operations = [Operation.from_dict(op) for op in data["operations"]]
    for k, op in enumerate(operations):
        problem = moment_problem(op.query or "") if op.target == "moment" else None
        if problem:
            raise EditError(f"operation {k + 1} is a moment that is not something seen: {problem}")
    return operations


class LLMEditParser:
    """Read an instruction with a LangChain chat model answering JSON (structured output); fall back to
    `fallback` (the rule parser) when the answer does not validate or the model cannot be reached.
    `fallbacks` counts those."""

    name = "llm"

    def __init__(self, chat_model: Any, *, fallback: RuleEditParser | None = None, structured: bool = True):
        self.chat_model = chat_model
        self.fallback = fallback or RuleEditParser()
        self.structured = structured
        self.prompt = load_prompt("edit")
        self.fallbacks = 0

    def parse(self, instruction: str, *, duration_s: float | None = None) -> ParsedInstruction:
        check_instruction(instruction)
        try:
            raw, notes = self._ask(instruction, duration_s)
        except ServerError as exc:
            return self._fall_back(instruction, [], f"llm parser unavailable ({short(str(exc))})", None)
        try:
            operations = operations_from_json(json.loads(raw))
            if not operations:
                raise EditError("the model found no operation")
        except (json.JSONDecodeError, EditError, TypeError, ValueError) as exc:
            return self._fall_back(
                instruction, notes, f"llm edit rejected ({short(f'{type(exc).__name__}: {exc}')})", raw
            )
        ops = [
            replace(op, read_as=f'llm: "{short(op.text, 120)}"' if op.text else "llm") for op in operations
        ]
        return ParsedInstruction(instruction, ops, "llm", notes)

    def _fall_back(
        self, instruction: str, notes: list[str], reason: str, raw: str | None
    ) -> ParsedInstruction:
        """The rule parser's reading, with notes saying why the model's was not used."""
        self.fallbacks += 1
        log.info("%s; using the rule parser", reason)
        parsed = self.fallback.parse(instruction)
        raw_note = [] if raw is None else [f"llm raw output: {short(raw, 300)}"]
        parsed.notes = [*notes, f"{reason}; fell back to the rule parser", *raw_note, *parsed.notes]
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
