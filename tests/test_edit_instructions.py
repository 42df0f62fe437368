"""Instructions that mix operations or cannot be read: each is planned into the right operations (kinds and
arguments asserted) or refused in one line naming the part that could not be read; none becomes a visual
search unless it describes something seen; speech-only instructions never build the visual grounder; every
operation says how it was read, in the plan, its JSON and the CLI's output; `--parser llm` falls back to
the rules and the notes say so."""

from __future__ import annotations

import json

import pytest

from grounding_agent.edit import LLMEditParser, parse_instruction, plan_edit
from grounding_agent.edit.parse import edit_plan_schema, llm_output_schema
from grounding_agent.edit.plan import FILLER_WORDS
from grounding_agent.errors import EditError
from grounding_agent.media.transcript import Segment, Transcript, Word
from tests.agent_doubles import UnreachableChatModelForTests, scripted_chat
from tests.test_hostile_options import assert_one_line_error, run_cli
from tests.videogen import make_edit_video

# (instruction, [(action, target, {field: value})]) for the readable ones.
MIXED = [
    ("remove silences and filler words",
     [("cut", "silence", {}), ("cut", "words", {"phrases": FILLER_WORDS})]),
    ("remove the pauses and the ums, then keep the first minute",
     [("cut", "silence", {}), ("cut", "words", {"phrases": FILLER_WORDS}), ("keep", "head", {"seconds": 60.0})]),
    ("keep only where she says the price is twenty dollars",
     [("keep", "words", {"phrases": ("the price is twenty dollars",)})]),
    ('keep only where she says "the price is twenty dollars"',
     [("keep", "words", {"phrases": ("the price is twenty dollars",)})]),
    ("remove every time he says 'um' and the silences",
     [("cut", "words", {"phrases": ("um",)}), ("cut", "silence", {})]),
    ("cut from 0:01 to 0:02, and 0:05 to 0:06",
     [("cut", "range", {"start_s": 1.0, "end_s": 2.0}), ("cut", "range", {"start_s": 5.0, "end_s": 6.0})]),
    ("cut the part where the dog jumps and the part where the cat sleeps",
     [("cut", "moment", {"query": "the dog jumps"}), ("cut", "moment", {"query": "the cat sleeps"})]),
]  # fmt: skip
# (instruction, what the one-line refusal must name)
UNREADABLE = [
    ("make it pop", "'make it pop'"),
    ("keep the boring parts", "names nothing that happens on screen"),
    ("remove the silences and the intro", "'silences' is heard, not seen"),
    ("keep only the speech and the first minute", "keeps several things at once"),
    ("cut 0:01 to 0:02, then make it pop", "'make it pop'"),
]


def test_ten_instructions_cover_mixed_and_unreadable():
    assert len(MIXED) + len(UNREADABLE) >= 10


@pytest.mark.parametrize(("instruction", "expected"), MIXED, ids=[i for i, _ in MIXED])
def test_mixed_instructions_plan_the_right_operations(instruction, expected):
    parsed = parse_instruction(instruction)
    assert [(op.action, op.target) for op in parsed.operations] == [(a, t) for a, t, _ in expected]
    for op, (_, _, fields) in zip(parsed.operations, expected, strict=True):
        for name, value in fields.items():
            assert getattr(op, name) == value, (name, op)
        assert op.read_as.startswith('rule: "') and op.read_as.endswith('"')
    assert not parsed.unread


@pytest.mark.parametrize(("instruction", "named"), UNREADABLE, ids=[i for i, _ in UNREADABLE])
def test_unreadable_instructions_are_refused_in_one_line(instruction, named):
    with pytest.raises(EditError) as info:
        parse_instruction(instruction)
    message = str(info.value)
    assert "\n" not in message and message.startswith("could not read an edit from") and named in message


def test_nothing_becomes_a_visual_search_unless_it_describes_something_seen():
    visual = {"cut the part where the dog jumps and the part where the cat sleeps"}
    for instruction, _ in MIXED:
        targets = {op.target for op in parse_instruction(instruction).operations}
        assert ("moment" in targets) == (instruction in visual), instruction


def test_a_partly_read_instruction_names_the_unread_part_and_what_the_rest_reads_as():
    with pytest.raises(EditError) as info:
        parse_instruction("cut 0:01 to 0:02, then make it pop")
    assert "the rest reads as: cut 0:01.00 to 0:02.00" in str(info.value)


# --- speech-only instructions never need the visual grounder ------------------------------------------


def talk_transcript() -> Transcript:
    said = [("So", 0.5, 0.8), ("um", 0.9, 1.2), ("the", 1.4, 1.6), ("price", 1.6, 2.0), ("is", 2.0, 2.2),
            ("$20.", 2.2, 3.0)]  # fmt: skip
    words = tuple(Word(t, a, b, 0.9) for t, a, b in said)
    later = (Word("It's", 6.0, 6.3, 0.9), Word("cheap.", 6.3, 6.8, 0.9))
    return Transcript((Segment("So um the price is $20.", 0.5, 3.0, 0.9, words),
                       Segment("It's cheap.", 6.0, 6.8, 0.9, later)), duration_s=12.0)  # fmt: skip


@pytest.fixture(scope="module")
def clip(tmp_path_factory):
    return make_edit_video(tmp_path_factory.mktemp("instructions") / "clip.mp4")


def refuse_to_build():
    raise AssertionError("a speech-only instruction built the visual grounder")


@pytest.mark.parametrize(
    "instruction",
    ["keep only where she says the price is twenty dollars", "keep only where she says 'the price is $20'",
     "remove silences and filler words"],
)  # fmt: skip
def test_speech_only_instructions_never_build_the_grounder(clip, instruction):
    plan = plan_edit(clip, instruction, transcript=talk_transcript(), grounder_factory=refuse_to_build,
                     agent_factory=lambda _: refuse_to_build())  # fmt: skip
    assert not plan.keeps_everything and not plan.keeps_nothing
    if "price" in instruction:  # the spoken "$20" is "twenty dollars" either way
        assert [(round(s.start_s, 1), round(s.end_s, 1)) for s in plan.kept][0][0] <= 1.4


def test_cli_reads_a_speech_only_instruction_with_the_default_backend(clip, tmp_path, capsys):
    path = tmp_path / "talk.json"
    path.write_text(json.dumps(talk_transcript().to_dict()), encoding="utf-8")
    rc, out, err = run_cli(capsys, "edit", clip, "keep only where she says the price is twenty dollars",
                           "--transcript", path, "--dry-run")  # fmt: skip
    assert rc == 0, err
    assert (
        "1. keep the words 'the price is twenty dollars' (rule: \"keep only where she says the price is twenty"
        in out
    )


def test_cli_plan_json_says_how_each_operation_was_read(clip, tmp_path, capsys):
    path = tmp_path / "talk.json"
    path.write_text(json.dumps(talk_transcript().to_dict()), encoding="utf-8")
    rc, out, err = run_cli(capsys, "edit", clip, "remove silences and filler words", "--transcript", path,
                           "--dry-run", "--json")  # fmt: skip
    assert rc == 0, err
    plan = json.loads(out)
    assert [op["read_as"] for op in plan["operations"]] == [
        'rule: "remove silences"',
        'rule: "remove filler words"',
    ]
    import jsonschema

    jsonschema.validate(
        {k: v for k, v in plan.items() if k not in ("outputs", "dry_run")}, edit_plan_schema()
    )


def test_cli_refuses_an_unreadable_instruction_in_one_line(clip, tmp_path, capsys):
    out = tmp_path / "out"
    out.mkdir()
    rc, _, err = run_cli(
        capsys, "edit", clip, "remove silences and something odd", "--export", out / "e.otio"
    )
    assert_one_line_error(rc, err, "could not read an edit from", "'silences' is heard, not seen")
    assert list(out.iterdir()) == []


# --- the LLM parser falls back to the rules and says so --------------------------------------------------


def test_llm_parser_that_cannot_be_reached_falls_back_to_the_rules():
    parser = LLMEditParser(UnreachableChatModelForTests(messages=iter([])))
    parsed = parse_instruction("remove silences and filler words", parser=parser)
    assert parsed.parser == "rule" and parser.fallbacks == 1
    assert [op.target for op in parsed.operations] == ["silence", "words"]
    assert any("llm parser unavailable" in n and "fell back to the rule parser" in n for n in parsed.notes)


def test_llm_moment_that_is_not_seen_is_rejected_for_the_rules_reading():
    answer = json.dumps(
        {"operations": [{"action": "cut", "target": "moment", "query": "silences and filler words"}]}
    )
    parser = LLMEditParser(scripted_chat(answer))
    parsed = parse_instruction("remove silences and filler words", parser=parser)
    assert parsed.parser == "rule" and [op.target for op in parsed.operations] == ["silence", "words"]
    assert any("llm edit rejected" in n and "not something seen" in n for n in parsed.notes)


def test_llm_operations_say_they_were_read_by_the_llm():
    answer = json.dumps(
        {"operations": [{"action": "cut", "target": "silence", "text": "drop the quiet bits"}]}
    )
    parsed = parse_instruction("drop the quiet bits", parser=LLMEditParser(scripted_chat(answer)))
    assert parsed.parser == "llm" and parsed.operations[0].read_as == 'llm: "drop the quiet bits"'
    assert "read_as" not in llm_output_schema()["properties"]["operations"]["items"]["properties"]
