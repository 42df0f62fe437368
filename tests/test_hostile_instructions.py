"""Instructions with many operations: every operation is applied (9, 20, the limit), read by the rules or by an
LLM; one more than `EDIT_LIMITS.max_operations` is refused with one line naming the limit (exit 2 from the
CLI), never cut short silently, and nothing is written or changed."""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path

import jsonschema
import pytest

from grounding_agent.defaults import EDIT_LIMITS
from grounding_agent.edit import LLMEditParser, RuleEditParser, plan_edit
from grounding_agent.edit.parse import edit_plan_schema, llm_output_schema
from grounding_agent.errors import EditError
from tests.agent_doubles import scripted_chat
from tests.test_hostile_options import assert_one_line_error, run_cli
from tests.videogen import make_edit_video

MOST = EDIT_LIMITS.max_operations


def sha(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def cuts(n: int) -> list[tuple[float, float]]:
    """n disjoint cuts of 5 frames at 25 fps, one every 15 frames (none half-way between two frames)."""
    return [(0.12 + k * 0.6, 0.32 + k * 0.6) for k in range(n)]


def clock(t: float) -> str:
    return f"{int(t // 60)}:{t % 60:05.2f}"


def instruction(n: int) -> str:
    return ", then ".join(f"cut {clock(a)} to {clock(b)}" for a, b in cuts(n))


@pytest.fixture(scope="module")
def clip(tmp_path_factory) -> Path:
    """25 fps, long enough for MOST + 1 cuts of the kind above."""
    duration = 0.6 * (MOST + 2)
    return make_edit_video(
        tmp_path_factory.mktemp("ops") / "clip.mp4", duration_s=duration, loud_spans=((0.0, duration),),
        colours=((0.0, "red"),), audio=False,
    )  # fmt: skip


@pytest.mark.parametrize("n", [9, 20, MOST])
def test_every_operation_of_a_long_instruction_is_applied(clip, n):
    before = sha(clip)
    plan = plan_edit(clip, instruction(n))
    assert len(plan.operations) == n
    cut = [s for s in plan.segments if s.action == "cut"]
    assert [s.operation for s in cut] == list(range(n))  # one cut per operation, in order, none dropped
    assert [(s.start_frame, s.end_frame) for s in cut] == [(round(a * 25), round(b * 25)) for a, b in cuts(n)]
    assert not any("matched nothing" in note for note in plan.notes)
    jsonschema.validate(plan.to_dict(), edit_plan_schema())
    assert sha(clip) == before


@pytest.mark.parametrize("n", [MOST + 1, 3 * MOST])
def test_too_many_operations_is_one_line_naming_the_limit(n):
    with pytest.raises(EditError) as info:
        RuleEditParser().parse(instruction(n))
    message = str(info.value)
    assert "\n" not in message and f"{n} operations" in message and f"at most {MOST}" in message
    assert "EDIT_LIMITS.max_operations" in message


@pytest.mark.parametrize("n", [MOST + 1, 100])
def test_cli_refuses_too_many_operations_and_writes_nothing(clip, tmp_path, capsys, n):
    before, listing = sha(clip), sorted(os.listdir(clip.parent))
    out = tmp_path / "out"
    out.mkdir()
    rc, _, err = run_cli(
        capsys, "edit", clip, instruction(n), "--export", out / "e.otio", "--export", out / "e.edl",
        "--render", out / "e.mp4",
    )  # fmt: skip
    assert_one_line_error(rc, err, f"at most {MOST}", "EDIT_LIMITS.max_operations")
    assert os.listdir(out) == []
    assert sha(clip) == before and sorted(os.listdir(clip.parent)) == listing


def llm_answer(n: int) -> str:
    ops = [{"action": "cut", "target": "range", "start_s": a, "end_s": b} for a, b in cuts(n)]
    return json.dumps({"operations": ops})


def test_llm_operations_are_all_applied(clip):
    parser = LLMEditParser(scripted_chat(llm_answer(20)))
    plan = plan_edit(clip, "cut twenty short bits", parser=parser)
    assert plan.parser == "llm" and parser.fallbacks == 0 and len(plan.operations) == 20
    assert [s.operation for s in plan.segments if s.action == "cut"] == list(range(20))


def test_llm_answer_past_the_limit_is_rejected_not_cut_short():
    parser = LLMEditParser(scripted_chat(llm_answer(MOST + 1)))
    parsed = parser.parse("cut 0:01 to 0:02")
    assert parsed.parser == "rule" and parser.fallbacks == 1  # the rules read it, with the reason noted
    assert [(o.start_s, o.end_s) for o in parsed.operations] == [(1.0, 2.0)]
    assert any("llm edit rejected" in note and "operations" in note for note in parsed.notes)


def test_the_schemas_say_the_same_limit():
    assert llm_output_schema()["properties"]["operations"]["maxItems"] == MOST
    assert edit_plan_schema()["properties"]["operations"]["maxItems"] == MOST
