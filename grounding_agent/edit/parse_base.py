"""What every instruction parser shares: `ParsedInstruction` (the operations read, what could not be read
and why), the checks before reading (`check_instruction`) and after (`check_operations`), and the test a
described moment must pass (`moment_problem`: it describes something seen, or it is refused with the
reason, never searched for).
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

from grounding_agent.defaults import EDIT_LIMITS, LIMITS
from grounding_agent.edit.parse_numbers import short
from grounding_agent.edit.plan import Operation
from grounding_agent.errors import ConfigError, EditError

__all__ = ["ParsedInstruction", "check_instruction", "check_operations", "moment_problem"]


@dataclass
class ParsedInstruction:
    """What a parser read: operations in order (each says how it was read: `Operation.read_as`), which
    parser produced them, notes, and the parts it could not read as (part, reason)."""

    instruction: str
    operations: list[Operation]
    parser: str = "rule"
    notes: list[str] = field(default_factory=list)
    unread: list[tuple[str, str]] = field(default_factory=list)

    def refusal(self) -> str | None:
        """The one-line reason this instruction cannot be planned, or None."""
        if not self.unread:
            return None
        part, reason = self.unread[0]
        more = f" (and {len(self.unread) - 1} more part(s))" if len(self.unread) > 1 else ""
        read = "; ".join(op.describe() for op in self.operations)
        rest = f"; the rest reads as: {read}" if read else ""
        return f"could not read an edit from {short(part, 80)!r}{more}: {reason}{rest}"


def check_instruction(instruction: str) -> None:
    """Refuse, before any parsing, an empty instruction or one past `LIMITS.max_query_chars`."""
    if not isinstance(instruction, str) or not instruction.strip():
        raise EditError('empty instruction: say what to edit, e.g. "cut 0:05 to 0:15"')
    try:
        LIMITS.check_text(instruction, "the instruction")
    except ConfigError as exc:
        raise EditError(str(exc)) from None


def check_operations(operations: list[Operation]) -> list[Operation]:
    """All of `operations`, or a one-line EditError when there are more than the limit (none is dropped)."""
    most = EDIT_LIMITS.max_operations
    if len(operations) > most:
        raise EditError(
            f"the instruction has {len(operations)} operations and at most {most} are applied at once "
            f"(EDIT_LIMITS.max_operations): split it into several edits"
        )
    return operations


# --- is a described moment something seen? -----------------------------------------------------------

# What the audio and transcript operations read: a "moment" made of these is a misread sound or speech edit.
_HEARD = re.compile(
    r"\b(?:silen(?:ce|ces|t)|pauses?|dead\s+air|filler(?:\s+words?)?|fillers|ums?|uhs?|erms?|hesitations?|"
    r"audio|says?|said|saying|mentions?|mentioned|utters?|uttered)\b",
    re.IGNORECASE,
)
# Words that name no event: "the boring parts", "the rest", "it".
_VAGUE = frozenset(
    (
        "a an the and or of to in on at for with is are was were be it its this that these those all any "
        "every some other rest everything anything something stuff thing things part parts bit bits moment "
        "moments section sections segment segments scene scenes portion portions clip clips video footage "
        "boring bad good best worst nice cool interesting important exciting dull slow fast great pop "
        "unnecessary useless irrelevant extra redundant stuff one ones whole entire rest"
    ).split()
)


def moment_problem(query: str) -> str | None:
    """Why `query` is not a description of something seen (a grounder would be searching for nothing), or
    None when it is one."""
    heard = _HEARD.search(query)
    if heard:
        return (
            f"{heard.group(0)!r} is heard, not seen: say it as a sound or speech edit, e.g. 'remove the "
            "silences', 'remove the filler words' or keep only where she says \"the price\""
        )
    if not [w for w in re.findall(r"[a-z]+", query.lower()) if w not in _VAGUE and len(w) > 1]:
        return (
            f"{short(query, 60)!r} names nothing that happens on screen; describe it, e.g. "
            "'cut the part where the dog jumps'"
        )
    return None
