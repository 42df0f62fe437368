"""Edit instructions -> `Operation`s: the entry point (`parse_instruction`) and the names callers import.

An instruction is read into operations, each saying how it was read (`Operation.read_as`, e.g.
`rule: "remove silences"`), or refused in one line naming the part that could not be read and why. The
work is split by job:

- `parse_rules`: the rule grammar (`RuleEditParser`, `split_instruction`), the default;
- `parse_llm`: the LLM parser (`LLMEditParser`; falls back to the rules, and its notes say so), the schemas;
- `parse_numbers`: times and counts ("1 min 30 s", "three");
- `parse_base`: `ParsedInstruction`, the checks before and after reading, and `moment_problem` (a
  described moment must describe something seen: sounds and speech are read as audio / word edits).
"""

from __future__ import annotations

from typing import Any

from grounding_agent.edit.parse_base import (
    ParsedInstruction,
    check_instruction,
    check_operations,
    moment_problem,
)
from grounding_agent.edit.parse_llm import (
    LLMEditParser,
    edit_plan_schema,
    llm_output_schema,
    operations_from_json,
)
from grounding_agent.edit.parse_numbers import parse_time
from grounding_agent.edit.parse_rules import EXAMPLES, RuleEditParser, split_instruction
from grounding_agent.errors import EditError

__all__ = [
    "EXAMPLES",
    "LLMEditParser",
    "ParsedInstruction",
    "RuleEditParser",
    "check_instruction",
    "check_operations",
    "edit_plan_schema",
    "llm_output_schema",
    "moment_problem",
    "operations_from_json",
    "parse_instruction",
    "parse_time",
    "split_instruction",
]


def parse_instruction(
    instruction: str, *, parser: Any = None, duration_s: float | None = None
) -> ParsedInstruction:
    """Read `instruction` with `parser` (default: the rule grammar).

    Raises:
        EditError: empty; a part of it reads as nothing (the message names the part and why); or nothing
            in it reads as an edit.
    """
    parser = parser or RuleEditParser()
    parsed = (
        parser.parse(instruction, duration_s=duration_s)
        if isinstance(parser, LLMEditParser)
        else parser.parse(instruction)
    )
    refusal = getattr(parsed, "refusal", lambda: None)()
    if refusal:
        raise EditError(refusal)
    if not parsed.operations:
        raise EditError(f"could not read an edit from {instruction!r}; try e.g. {EXAMPLES}")
    return parsed
