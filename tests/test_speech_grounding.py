"""Speech as grounding: the routing grounder (speech -> transcript, else the visual grounder) alone and
inside the agent, composing a speech sub-event with a visual one under the planner's relations.

The slow tests run the real Whisper base on a generated talking clip; the fast ones hand the grounder a
transcript built here (`FixedTranscriberForTests` replaces only the transcriber, above the model).
"""

from __future__ import annotations

import pytest

from grounding_agent.agent import Agent, RulePlanner
from grounding_agent.errors import ConfigError
from grounding_agent.grounders.transcript import TranscriptGrounder, route
from grounding_agent.media.asr import Transcriber
from grounding_agent.media.transcript import Segment, Transcript, Word
from grounding_agent.types import Moment
from grounding_agent.utils.temporal import tiou
from tests.agent_doubles import ScriptedGrounderForTests
from tests.speechgen import Utterance, make_talking_video
from tests.videogen import make_video


class FixedTranscriberForTests:
    """Returns one given transcript for any video; counts calls."""

    def __init__(self, transcript: Transcript):
        self.transcript_ = transcript
        self.calls = 0

    def transcribe(self, video):
        self.calls += 1
        return self.transcript_


def _said(text: str, start_s: float, word_s: float = 0.4) -> Segment:
    words = tuple(
        Word(w, start_s + i * word_s, start_s + (i + 1) * word_s - 0.05, 0.9)
        for i, w in enumerate(text.split())
    )
    return Segment(text, words[0].start_s, words[-1].end_s, 0.9, words)


@pytest.fixture
def plain_clip(tmp_path):
    return make_video(tmp_path / "v.mp4", duration_s=10.0, fps=5, audio=True)


FIXED = Transcript(
    (_said("hello there", 1.0), _said("let's go now", 5.0)),
    10.0,
    "en",
    ((1.0, 1.8), (5.0, 6.2)),
    True,
    "fixed",
)
RUNS = "the man runs"
VISUAL = {RUNS: [Moment(0.5, 2.5, 0.9), Moment(7.0, 9.0, 0.6)]}  # the stronger one is before the speech


@pytest.mark.parametrize(
    ("query", "kind"),
    [("he says 'let's go'", "speech"), ("when does she mention the price", "speech"), (RUNS, "visual")],
)
def test_route(query, kind):
    assert route(query)[0] == kind


def test_speech_query_is_answered_from_the_transcript_without_the_visual_grounder(plain_clip):
    visual = ScriptedGrounderForTests(VISUAL)
    asr = FixedTranscriberForTests(FIXED)
    grounder = TranscriptGrounder(visual, asr)
    got = grounder.ground(plain_clip, "when does he say 'let's go'")
    assert visual.calls == [] and got.info["channel"] == "speech"
    best = got.best
    assert (best.start_s, best.end_s) == (5.0, FIXED.segments[1].words[1].end_s)
    assert best.explanation["said"] == "let's go" and best.explanation["evidence"][0]["kind"] == "speech"
    grounder.ground(plain_clip, "when does he say 'hello'")
    assert asr.calls == 1  # one transcript per video, kept
    assert grounder.ground(plain_clip, RUNS).best == VISUAL[RUNS][0] and visual.calls


def test_unsaid_quote_gives_no_moment_and_a_note(plain_clip):
    got = TranscriptGrounder(None, FixedTranscriberForTests(FIXED)).ground(plain_clip, "he says 'good night'")
    assert got.moments == [] and "not said" in got.info["note"]


def test_visual_query_without_a_visual_grounder_is_a_config_error(plain_clip):
    with pytest.raises(ConfigError, match="visual grounder"):
        TranscriptGrounder(None, FixedTranscriberForTests(FIXED)).ground(plain_clip, RUNS)


def test_agent_composes_speech_then_visual_under_the_relation(plain_clip):
    grounder = TranscriptGrounder(ScriptedGrounderForTests(VISUAL), FixedTranscriberForTests(FIXED))
    query = "after he says 'let's go', the man runs"
    plan = RulePlanner().plan(query)
    assert len(plan.steps) == 2 and [r.kind for r in plan.relations] == ["before"]
    result = Agent(grounder).run(plain_clip, query)
    best = result.moments[0]
    assert (best.start_s, best.end_s) == (7.0, 9.0)  # the run after the words, not the stronger one before


class FixedScreenReaderForTests:
    """Returns one given screen-text reading for any video."""

    def __init__(self, screen):
        self.screen = screen

    def read(self, video):
        return self.screen


def test_on_screen_text_query_is_answered_from_the_screen_text(plain_clip):
    from grounding_agent.media.ocr import ScreenText

    screen = ScreenText.from_dict({"fps": 1.0, "duration_s": 10.0, "model": "rapidocr-test", "frames": [
        {"time_s": float(t), "lines": [["Quarterly Results", 0.99, [0, 0, 9, 9]]] if 4 <= t < 7 else []}
        for t in range(10)
    ]})  # fmt: skip
    visual = ScriptedGrounderForTests(VISUAL)
    grounder = TranscriptGrounder(visual, None, screen_reader=FixedScreenReaderForTests(screen))
    got = grounder.ground(plain_clip, "when does the slide titled quarterly results appear", top_k=1)
    assert (got.best.start_s, got.best.end_s) == (4.0, 7.0) and got.info["channel"] == "ocr"
    assert got.best.explanation["evidence"][0]["kind"] == "ocr" and visual.calls == []


def test_session_answers_what_is_said_after_an_event_by_quoting_the_transcript(plain_clip):
    from grounding_agent.conversation.session import Session

    visual = ScriptedGrounderForTests({RUNS: [Moment(2.0, 3.0, 0.9)]})
    session = Session(plain_clip, visual, transcript=FIXED)
    answer = session.ask("what does she say after the man runs?")
    assert answer.text == 'Said at 5.00-6.15 s: "let\'s go now"' and answer.text_source == "transcript:fixed"
    assert [(m.start_s, m.end_s) for m in answer.moments] == [(5.0, 6.15)]
    assert any(e.kind == "speech" and e.text == '"let\'s go now"' for e in answer.evidence)
    before = session.ask("what is said before the man runs")
    assert '"hello there"' in before.text
    heard = session.ask("when does he say 'hello there'")
    assert heard.moments[0].start_s == 1.0 and visual.calls == [(RUNS, None), (RUNS, None)]


# --- the real Whisper on a generated clip ---------------------------------------------------------------


@pytest.fixture(scope="module")
def talk(tmp_path_factory):
    folder = tmp_path_factory.mktemp("talk_grounding")
    return make_talking_video(
        folder / "talk.mp4",
        [
            Utterance("okay everybody listen", 0.5),
            Utterance("let's go", 4.0, "en-gb", 150),
            Utterance("that was fast", 8.0, "en-us+f3", 150),
        ],
        duration_s=11.0,
    )


@pytest.fixture(scope="module")
def hearing(talk, whisper_base, tmp_path_factory):
    asr = Transcriber(whisper_base, language="en", cache_dir=tmp_path_factory.mktemp("grounding_cache"))
    visual = ScriptedGrounderForTests({RUNS: [Moment(0.5, 3.0, 0.9), Moment(5.5, 7.5, 0.6)]})
    return TranscriptGrounder(visual, asr)


@pytest.mark.slow
def test_real_asr_quoted_query_lands_on_the_sentence(talk, hearing):
    spoken = talk.utterances[2]
    best = hearing.ground(talk.path, 'when is "that was fast" said').best
    assert tiou((best.start_s, best.end_s), (spoken.start_s, spoken.end_s)) >= 0.7


@pytest.mark.slow
def test_real_asr_mixed_speech_and_visual_query_composes(talk, hearing):
    result = Agent(hearing).run(talk.path, "after he says 'let's go', the man runs")
    best = result.moments[0]
    assert (best.start_s, best.end_s) == (5.5, 7.5)
    said = result.steps["s1"].candidates[0]
    assert tiou((said.start_s, said.end_s), (talk.utterances[1].start_s, talk.utterances[1].end_s)) >= 0.6


def test_planner_keeps_quotes_whole_and_notes_speech_steps():
    plan = RulePlanner().plan("after she says 'wait, then go', he leaves the room")
    assert [s.text for s in plan.steps] == ["she says 'wait, then go'", "he leaves the room"]
    assert [(r.kind, r.a, r.b) for r in plan.relations] == [("before", "s1", "s2")] and plan.target == "s2"
    assert plan.notes == ("s1: speech, searched in the transcript for 'wait, then go'",)
    single = RulePlanner().plan('when is "let\'s go" said')
    assert len(single.steps) == 1 and single.notes == (
        's1: speech, searched in the transcript for "let\'s go"',
    )
    assert RulePlanner().plan("the man runs, then he sits down").notes == ()


def test_explanation_quotes_what_is_said(plain_clip):
    grounder = TranscriptGrounder(ScriptedGrounderForTests(VISUAL), FixedTranscriberForTests(FIXED))
    result = Agent(grounder).run(plain_clip, "after he says 'let's go', the man runs")
    facts = result.moments[0].explanation
    assert facts["sub_events"][0]["said"] == "let's go"
    assert '(said: "let\'s go")' in facts["sentence"]
    alone = Agent(grounder).run(plain_clip, "when does he say 'hello there'")
    assert 'said: "hello there"' in alone.moments[0].explanation["sentence"]


def test_reranker_lifts_the_window_where_the_query_is_said(plain_clip):
    from grounding_agent.agent import Reranker

    talk = Transcript((_said("goodbye everyone", 6.0),), 10.0, "en", ((6.0, 6.8),), True, "fixed")
    waves = "the man waves goodbye"
    visual = ScriptedGrounderForTests({waves: [Moment(1.0, 3.0, 0.65), Moment(5.5, 7.5, 0.6)]})
    plain = Agent(visual).run(plain_clip, waves).moments[0]
    assert (plain.start_s, plain.end_s) == (1.0, 3.0)
    reranker = Reranker(speech=FixedTranscriberForTests(talk))
    heard = Agent(visual, reranker=reranker).run(plain_clip, waves)
    assert (heard.moments[0].start_s, heard.moments[0].end_s) == (5.5, 7.5)
    assert any(e.kind == "speech" and "goodbye" in e.text for e in heard.evidence())
