"""Editing: instruction parsing (rules + LLM with fallback), timecodes, frame-exact plans on generated videos
with known events (loud spans, silences, colour changes), word-based cuts on a hand-built transcript."""

from __future__ import annotations

import json
from dataclasses import dataclass
from fractions import Fraction

import jsonschema
import pytest

from grounding_agent.edit import (
    EditSources,
    LLMEditParser,
    Operation,
    RuleEditParser,
    plan_edit,
    timecode,
)
from grounding_agent.edit.parse import edit_plan_schema, llm_output_schema, parse_time, split_instruction
from grounding_agent.edit.timeline import FrameGrid, nominal_rate
from grounding_agent.errors import EditError
from grounding_agent.grounders import GROUNDERS
from tests.agent_doubles import scripted_chat as scripted
from tests.videogen import make_edit_video

FPS = 25
FRAME_S = 1.0 / FPS


@pytest.fixture(scope="module")
def clip(tmp_path_factory):
    """12 s at 25 fps: tone on [0, 2), [4, 8), [10, 12), silence between; red / green / blue from 0 / 4 / 8 s."""
    return make_edit_video(tmp_path_factory.mktemp("edit") / "clip.mp4", gop=10)


@pytest.fixture(scope="module")
def one_loud(tmp_path_factory):
    """12 s, one grey picture, a tone only on [6, 8): the one highlight the audio shows."""
    return make_edit_video(
        tmp_path_factory.mktemp("edit") / "one_loud.mp4", loud_spans=((6.0, 8.0),), colours=((0.0, "gray"),)
    )


def frames_of(plan):
    return [(s.action, s.start_frame, s.end_frame) for s in plan.segments]


# --- parsing ---------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "seconds"),
    [("0:05", 5), ("1:02:03.5", 3723.5), ("90 seconds", 90), ("1 min 30 s", 90), ("1m30s", 90),
     ("three minutes", 180), ("15-second", 15), ("12", 12), ("2.5s", 2.5), ("an hour", 3600)],
)  # fmt: skip
def test_parse_time(text, seconds):
    assert parse_time(text) == pytest.approx(seconds)


def test_parse_time_rejects_words():
    with pytest.raises(EditError, match="cannot read"):
        parse_time("soon")


@pytest.mark.parametrize(
    ("instruction", "expected"),
    [
        ("cut 0:05 to 0:15", [("cut", "range", {"start_s": 5.0, "end_s": 15.0})]),
        ("Keep 1:00-2:30.", [("keep", "range", {"start_s": 60.0, "end_s": 150.0})]),
        ("cut between 10s and 20s", [("cut", "range", {"start_s": 10.0, "end_s": 20.0})]),
        ("trim the first 3 seconds", [("cut", "head", {"seconds": 3.0})]),
        ("keep only the last minute", [("keep", "tail", {"seconds": 60.0})]),
        ("shorten it to 30 seconds", [("keep", "head", {"seconds": 30.0})]),
        ("cut everything after 1:30", [("cut", "range", {"start_s": 90.0, "end_s": None})]),
        ("start at 0:10", [("cut", "range", {"start_s": 0.0, "end_s": 10.0})]),
        ("cut the part where the dog jumps", [("cut", "moment", {"query": "the dog jumps"})]),
        ("keep from when she opens the door until she sits down",
         [("keep", "moment", {"query": "she opens the door", "until": "she sits down"})]),
        ("keep the best 3 moments", [("keep", "highlights", {"count": 3, "total_s": None})]),
        ("make a 15-second teaser", [("keep", "highlights", {"total_s": 15.0, "count": None})]),
        ("top 5 highlights within 40 seconds", [("keep", "highlights", {"count": 5, "total_s": 40.0})]),
        ("remove the silences", [("cut", "silence", {"min_silence_s": None})]),
        ("remove pauses longer than 2 seconds", [("cut", "silence", {"min_silence_s": 2.0})]),
        ("please remove dead air", [("cut", "silence", {})]),
        ("remove every time he says 'um'", [("cut", "words", {"phrases": ("um",)})]),
        ('cut the words "basically", "literally"', [("cut", "words", {"phrases": ("basically", "literally")})]),
        ('keep only the parts where she says "the price"', [("keep", "words", {"phrases": ("the price",)})]),
        ("remove the silences, then keep only the first minute",
         [("cut", "silence", {}), ("keep", "head", {"seconds": 60.0})]),
        ("cut 0:01 to 0:02 and trim the last 5 seconds; keep the first 20 s",
         [("cut", "range", {}), ("cut", "tail", {"seconds": 5.0}), ("keep", "head", {"seconds": 20.0})]),
    ],
)  # fmt: skip
def test_rule_parser_reads_common_instructions(instruction, expected):
    parsed = RuleEditParser().parse(instruction)
    assert parsed.parser == "rule" and not parsed.notes
    assert [(op.action, op.target) for op in parsed.operations] == [(a, t) for a, t, _ in expected]
    for op, (_, _, fields) in zip(parsed.operations, expected, strict=True):
        for name, value in fields.items():
            assert getattr(op, name) == value, (name, op)


def test_then_inside_a_described_moment_is_not_a_split():
    # "then" joins two edits only when an edit verb follows it.
    assert split_instruction("cut the part where he drops the ball then runs") == [
        "cut the part where he drops the ball then runs"
    ]


def test_unreadable_instruction_is_reported_not_guessed():
    parsed = RuleEditParser().parse("make it pop")
    assert parsed.operations == [] and "could not read" in parsed.notes[0]


def test_bad_range_is_an_error():
    with pytest.raises(EditError, match="ends before it starts"):
        RuleEditParser().parse("cut 0:15 to 0:05")


# --- LLM parser (structured output, validated, rule fallback) --------------------------------------------


def test_llm_parser_valid_answer_is_used():
    answer = {
        "operations": [
            {"action": "cut", "target": "silence"},
            {"action": "keep", "target": "head", "seconds": 60},
        ]
    }
    model = scripted(json.dumps(answer))
    parser = LLMEditParser(model)
    parsed = parser.parse("get rid of the quiet bits and give me a minute", duration_s=300.0)
    assert parsed.parser == "llm" and parser.fallbacks == 0
    assert [(o.action, o.target, o.seconds) for o in parsed.operations] == [
        ("cut", "silence", None),
        ("keep", "head", 60.0),
    ]
    assert model.bound["response_format"]["json_schema"]["schema"] == llm_output_schema()


@pytest.mark.parametrize(
    "answer",
    ["not json at all", '{"operations": [{"action": "zoom", "target": "range"}]}',
     '{"operations": [{"action": "cut", "target": "range", "start_s": 9, "end_s": 3}]}', '{"operations": []}'],
)  # fmt: skip
def test_llm_parser_falls_back_to_rules_and_records_why(answer):
    parser = LLMEditParser(scripted(answer))
    parsed = parser.parse("cut 0:05 to 0:15")
    assert parsed.parser == "rule" and parser.fallbacks == 1
    assert [(o.start_s, o.end_s) for o in parsed.operations] == [(5.0, 15.0)]
    assert any("llm edit rejected" in n for n in parsed.notes)
    assert any(n.startswith("llm raw output:") and answer[:20] in n for n in parsed.notes)


# --- timecodes and the frame grid ------------------------------------------------------------------------


def test_smpte_timecodes_including_drop_frame():
    ntsc = Fraction(30000, 1001)
    assert timecode(1800, ntsc) == "00:01:00;02"  # drop-frame skips ;00 and ;01 each minute but every 10th
    assert timecode(17982, ntsc) == "00:10:00;00"
    assert timecode(1799, ntsc) == "00:00:59;29"
    assert timecode(1800, 30) == "00:01:00:00"
    assert timecode(37, 25) == "00:00:01:12"
    assert timecode(25, 10) == "00:00:02.500"  # not a SMPTE rate: clock time instead


def test_nominal_rate_recognises_ntsc():
    assert nominal_rate(29.97002997) == Fraction(30000, 1001)
    assert nominal_rate(25.0) == 25
    assert nominal_rate(10.0) == 10


def test_grid_snaps_to_decoder_frames(clip):
    from grounding_agent.media.video import open_video

    grid = FrameGrid.from_video(open_video(clip))
    assert grid.num_frames == 300 and grid.rate == 25
    assert grid.snap(5.019) == 125 and grid.snap(5.021) == 126 and grid.snap(99.0) == 300
    assert list(grid.keyframes[:3]) == [0, 10, 20]
    assert grid.keyframe_at_or_before(37) == 30 and grid.keyframe_at_or_after(37) == 40


def test_drop_frame_video_gets_drop_frame_timecodes(tmp_path):
    path = make_edit_video(
        tmp_path / "ntsc.mp4", duration_s=2.0, fps="30000/1001", loud_spans=(), colours=((0, "red"),)
    )
    plan = plan_edit(path, "cut 0:00.5 to 0:01")
    assert plan.grid.drop_frame and plan.grid.rate == Fraction(30000, 1001)
    cut = [s for s in plan.segments if s.action == "cut"][0]
    assert (cut.start_frame, cut.end_frame) == (15, 30)
    assert plan.to_dict()["segments"][1]["start_tc"] == "00:00:00;15"


# --- model-free edits land on the known events, within one frame -----------------------------------------


def test_explicit_times_cut_exact_frames(clip):
    plan = plan_edit(clip, "cut 0:05 to 0:07.33")
    assert frames_of(plan) == [
        ("keep", 0, 125),
        ("cut", 125, 183),
        ("keep", 183, 300),
    ]  # 7.33 s = frame 183.25
    assert plan.segments[1].reason == "cut 0:05.00 to 0:07.33"
    assert plan.kept_s == pytest.approx(12.0 - 58 * FRAME_S)


def test_silences_are_cut_at_the_known_times(clip):
    plan = plan_edit(clip, "remove the silences", pad_ms=0)  # unpadded: the cut is the quiet run itself
    cuts = [(s.start_s, s.end_s) for s in plan.segments if s.action == "cut"]
    assert len(cuts) == 2
    for (start, end), (want_start, want_end) in zip(cuts, [(2.0, 4.0), (8.0, 10.0)], strict=True):
        assert abs(start - want_start) <= FRAME_S and abs(end - want_end) <= FRAME_S
    evidence = [s.evidence[0] for s in plan.segments if s.action == "cut"]
    assert all(e.kind == "audio" for e in evidence)


def test_longer_minimum_keeps_the_shorter_silences(clip):
    plan = plan_edit(clip, "remove pauses longer than 3 seconds")
    assert plan.keeps_everything and "matched nothing" in plan.notes[0]


def test_composition_applies_in_order_on_the_edit_so_far(clip):
    plan = plan_edit(clip, "remove the silences, then keep only the first 5 seconds", pad_ms=0)
    # What is left after the silences: [0, 2) + [4, 8) + [10, 12); its first 5 s are [0, 2) + [4, 7).
    assert [(s.start_frame, s.end_frame) for s in plan.kept] == [(0, 50), (100, 175)]
    reasons = {s.reason for s in plan.segments if s.action == "cut"}
    assert reasons == {"cut silences (< -40 dBFS, >= 0.5 s)", "outside: keep the first 5 s of the edit"}


def test_trim_first_and_last(clip):
    plan = plan_edit(clip, "trim the first 3 seconds and trim the last 2 seconds")
    assert [(s.start_frame, s.end_frame) for s in plan.kept] == [(75, 250)]


def test_highlights_find_the_loud_span(one_loud):
    plan = plan_edit(one_loud, "keep the best moment")
    assert len(plan.kept) == 1
    seg = plan.kept[0]
    assert abs(seg.start_s - 6.0) <= FRAME_S and abs(seg.end_s - 8.0) <= FRAME_S
    assert seg.evidence[0].kind == "saliency" and "audio" in seg.evidence[0].source


def test_teaser_respects_its_total_length(clip):
    plan = plan_edit(clip, "a 5-second teaser")
    assert abs(plan.kept_s - 5.0) <= FRAME_S


def test_grounded_moment_with_a_model_free_backend(clip):
    grounder = GROUNDERS["uniform"]()
    best = grounder.ground(plan_edit(clip, "cut 0:00 to 0:01").video, "the dog jumps", top_k=1).moments[0]
    plan = plan_edit(clip, "cut the part where the dog jumps", grounder=grounder)
    cut = [s for s in plan.segments if s.action == "cut"]
    assert len(cut) == 1
    assert abs(cut[0].start_s - best.start_s) <= FRAME_S / 2 and abs(cut[0].end_s - best.end_s) <= FRAME_S / 2
    assert cut[0].evidence[0].kind == "grounder" and cut[0].evidence[0].source == "uniform"


def test_grounded_moment_without_a_grounder_says_how_to_fix(clip):
    with pytest.raises(EditError, match="needs a grounder"):
        plan_edit(clip, "cut the part where the dog jumps")


def test_grounder_is_built_only_when_a_moment_is_asked(clip):
    built = []
    plan_edit(clip, "cut 0:01 to 0:02", grounder_factory=lambda: built.append(1))
    assert built == []


def test_instruction_that_reads_as_nothing_raises(clip):
    with pytest.raises(EditError, match="could not read an edit"):
        plan_edit(clip, "make it pop")


def test_plan_json_validates_against_the_schema(clip):
    plan = plan_edit(clip, "remove the silences, then trim the first second")
    jsonschema.validate(plan.to_dict(), edit_plan_schema())
    assert sum(s["end_frame"] - s["start_frame"] for s in plan.to_dict()["segments"]) == 300


# --- words, against a hand-built transcript --------------------------------------------------------------


@dataclass
class WordForTests:
    start_s: float
    end_s: float
    text: str


@dataclass
class SegmentForTests:
    start_s: float
    end_s: float
    text: str
    words: list


@dataclass
class TranscriptForTests:
    segments: list

    @property
    def words(self):
        return [w for s in self.segments for w in s.words]


def transcript() -> TranscriptForTests:
    w = WordForTests
    first = [w(0.5, 0.9, "So,"), w(1.0, 1.3, "um,"), w(1.4, 2.0, "the"), w(2.0, 2.6, "price")]
    second = [w(5.0, 5.4, "Uh"), w(5.5, 6.0, "it's"), w(6.1, 6.6, "cheap."), w(7.0, 7.4, "Um.")]
    return TranscriptForTests([SegmentForTests(0.5, 2.6, "So, um, the price", first),
                               SegmentForTests(5.0, 7.4, "Uh it's cheap. Um.", second)])  # fmt: skip


def test_remove_every_um(clip):
    plan = plan_edit(clip, "remove every time he says 'um'", transcript=transcript())
    cuts = [(s.start_frame, s.end_frame) for s in plan.segments if s.action == "cut"]
    assert cuts == [(25, 32), (175, 185)]  # 1.0-1.3 s and 7.0-7.4 s, snapped (1.3 s = frame 32.5 -> 32)
    assert [s.evidence[0].text for s in plan.segments if s.action == "cut"] == ["um,", "Um."]


def test_filler_words_and_phrases(clip):
    plan = plan_edit(clip, "remove the filler words", transcript=transcript())
    assert len([s for s in plan.segments if s.action == "cut"]) == 3  # um, Uh, Um
    plan = plan_edit(clip, 'cut the words "the price"', transcript=transcript())
    assert [(s.start_s, s.end_s) for s in plan.segments if s.action == "cut"] == [(1.4, 2.6)]


def test_keep_what_is_said_keeps_the_sentence(clip):
    # The sentence ends at its full stop ("Uh it's cheap."), not at the segment's end (after "Um.").
    plan = plan_edit(clip, 'keep only the parts where she says "cheap"', transcript=transcript(), pad_ms=0)
    assert [(s.start_s, s.end_s) for s in plan.kept] == [(5.0, 6.6)]
    plan = plan_edit(clip, 'keep only the parts where she says "cheap"', transcript=transcript())
    assert [(s.start_s, s.end_s) for s in plan.kept] == [(4.96, 6.64)]  # 60 ms each side, on frames


def test_words_without_transcript_say_so(clip):
    with pytest.raises(EditError, match="needs a transcript"):
        plan_edit(clip, "remove every time he says 'um'")


def test_words_from_dicts_work_too(clip):
    words = {"words": [{"start_s": 3.0, "end_s": 3.5, "text": "basically"}]}
    sources = EditSources(transcript=words)
    spans = sources.resolve(
        plan_edit(clip, "cut 0:00 to 0:01").video, Operation("cut", "words", phrases=("Basically",))
    )
    assert [(s.start_s, s.end_s) for s in spans] == [(3.0, 3.5)]


def test_keep_only_the_speech_uses_voice_activity(clip):
    t = transcript()
    t.speech_regions = ((0.5, 2.6), (2.9, 3.2), (5.0, 7.4))  # the 0.3-s pause stays inside the speech
    plan = plan_edit(clip, "remove the parts without speech", transcript=t, pad_ms=0)
    assert [(s.start_frame, s.end_frame) for s in plan.kept] == [
        (12, 80),
        (125, 185),
    ]  # 0.5 s = frame 12.5 -> 12
    assert plan.kept[0].evidence[0].source == "transcript words and voice activity"


def test_the_speech_modules_transcript_plugs_in(clip):
    speech = pytest.importorskip("grounding_agent.media.transcript")
    words = (
        speech.Word("So", 0.5, 0.9, 0.9),
        speech.Word("um", 1.0, 1.3, 0.8),
        speech.Word("twenty", 1.4, 2.0, 0.9),
    )
    real = speech.Transcript(
        segments=(speech.Segment("So um twenty", 0.5, 2.0, 0.9, words),), duration_s=12.0
    )
    plan = plan_edit(clip, "remove every time he says 'um', then cut the words '20'", transcript=real)
    # "20" matches the spoken "twenty": numbers are compared as words, the way ASR writes them.
    assert [(s.start_s, s.end_s) for s in plan.segments if s.action == "cut"] == [(1.0, 1.28), (1.4, 2.0)]


def test_keep_from_one_moment_until_another(clip):
    from grounding_agent.types import Moment
    from tests.agent_doubles import ScriptedGrounderForTests

    grounder = ScriptedGrounderForTests({
        "she opens the door": [Moment(2.0, 3.0, 0.9)],
        "she sits down": [Moment(1.0, 1.5, 0.95), Moment(6.0, 7.2, 0.8)],  # the first ends before she opens it
    })  # fmt: skip
    plan = plan_edit(clip, "keep from when she opens the door until she sits down", grounder=grounder)
    assert [(s.start_frame, s.end_frame) for s in plan.kept] == [(50, 180)]  # 2.0 s .. 7.2 s
    kinds = [e.kind for e in plan.kept[0].evidence]
    assert kinds == ["composition", "grounder", "grounder"]
    assert [call[0] for call in grounder.calls] == ["she opens the door", "she sits down"]


def test_compositional_descriptions_go_to_the_agent_when_asked(clip):
    from grounding_agent.agent import Agent
    from grounding_agent.types import Moment
    from tests.agent_doubles import ScriptedGrounderForTests

    grounder = ScriptedGrounderForTests({
        "the person opens the door": [Moment(1.0, 2.0, 0.9)],
        "the person sits down": [Moment(3.0, 4.0, 0.9)],
    })  # fmt: skip
    plan = plan_edit(clip, "cut the part where the person opens the door, then sits down", grounder=grounder,
                     agent_factory=Agent, use_agent=lambda q: "then" in q)  # fmt: skip
    cut = [s for s in plan.segments if s.action == "cut"]
    assert [(s.start_s, s.end_s) for s in cut] == [(1.0, 4.0)]  # the span of both sub-events
    assert cut[0].evidence[0].source == "agent"
