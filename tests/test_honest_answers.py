"""Honest answers: a quote that is not said / a text that is not shown is said so — no moment, no
whole-video chip — by the grounder, `Session`, the CLI, the HTTP API and the UI; and "what happens next?"
grounds the next event instead of handing back a slice with the previous answer's score.

Fast tests hand the grounder a transcript / screen text built here (`FixedTranscriberForTests`,
`FixedScreenReaderForTests` replace only the ASR / OCR model); the slow ones run the real Whisper base on a
generated talking clip and the real RapidOCR on a generated slide.
"""

from __future__ import annotations

import json
from pathlib import Path

import jsonschema
import pytest

from grounding_agent import Session
from grounding_agent.conversation.followups import NEXT_EVENT_QUERY
from grounding_agent.grounders.baselines import UniformGrounder
from grounding_agent.grounders.transcript import TranscriptGrounder
from grounding_agent.media.ocr import ScreenText
from grounding_agent.media.transcript import Segment, Transcript, Word
from grounding_agent.types import Moment
from tests.agent_doubles import ScriptedGrounderForTests
from tests.videogen import _ffmpeg, make_video

REPO = Path(__file__).resolve().parents[1]
ANSWER_SCHEMA = json.loads((REPO / "schemas" / "answer.schema.json").read_text())


class FixedTranscriberForTests:
    """Returns one given transcript for any video (replaces the ASR model only)."""

    def __init__(self, transcript: Transcript):
        self.transcript_ = transcript

    def transcribe(self, video):
        return self.transcript_


class FixedScreenReaderForTests:
    """Returns one given screen text for any video (replaces the OCR model only)."""

    def __init__(self, screen: ScreenText):
        self.screen = screen

    def read(self, video):
        return self.screen


class CountingUniformGrounderForTests(UniformGrounder):
    """The `uniform` baseline, recording every query it is asked to ground."""

    def __init__(self):
        super().__init__()
        self.queries: list[str] = []

    def ground(self, video, query, *, top_k=1, frames=None):
        self.queries.append(query)
        return super().ground(video, query, top_k=top_k, frames=frames)


def _said(text: str, start_s: float, word_s: float = 0.4) -> Segment:
    words = tuple(
        Word(w, start_s + i * word_s, start_s + (i + 1) * word_s - 0.05, 0.9)
        for i, w in enumerate(text.split())
    )
    return Segment(text, words[0].start_s, words[-1].end_s, 0.9, words)


TRANSCRIPT = Transcript((_said("hello there", 1.0), _said("the price is fair", 5.0)), 10.0, "en",
                        ((1.0, 1.8), (5.0, 6.6)), True, "fixed")  # fmt: skip
SCREEN = ScreenText.from_dict({"fps": 1.0, "duration_s": 10.0, "model": "fixed", "frames": [
    {"time_s": float(t), "lines": [["Pricing", 0.99, [0, 0, 10, 5]]] if 3 <= t < 6 else []} for t in range(10)
]})  # fmt: skip
UNSAID = "when does she say 'purple elephants dance'?"
UNSHOWN = "when is 'Quarterly Results' shown on screen?"


@pytest.fixture
def clip(tmp_path):
    return make_video(tmp_path / "v.mp4", duration_s=10.0, fps=5, audio=True)


def _grounder(visual=None) -> TranscriptGrounder:
    return TranscriptGrounder(
        visual or UniformGrounder(),
        FixedTranscriberForTests(TRANSCRIPT),
        screen_reader=FixedScreenReaderForTests(SCREEN),
    )


def test_the_grounder_returns_no_moment_and_a_typed_reason(clip):
    grounder = _grounder()
    unsaid = grounder.ground(clip, UNSAID)
    assert unsaid.moments == [] and unsaid.info["absent"] == "said"
    unshown = grounder.ground(clip, UNSHOWN)
    assert unshown.moments == [] and unshown.info["absent"] == "shown"
    # What is there is still found, without a reason.
    assert grounder.ground(clip, "when does she say 'the price is fair'").moments
    shown = grounder.ground(clip, "when is 'Pricing' shown on screen")
    assert (shown.best.start_s, shown.best.end_s) == (3.0, 6.0) and "absent" not in shown.info


@pytest.mark.parametrize(("message", "reason"), [(UNSAID, "said"), (UNSHOWN, "shown")])
def test_session_says_not_said_or_not_shown_without_a_moment(clip, message, reason):
    session = Session(clip, _grounder())
    events: list[str] = []
    answer = session.ask(message, on_event=lambda kind, data: events.append(kind))
    assert answer.moments == [] and answer.absent == reason
    assert answer.text.startswith(f"Not {reason}:") and "whole" not in answer.text
    assert events[-2:] == ["moments", "text"]
    jsonschema.validate(answer.to_dict(), ANSWER_SCHEMA)
    prediction = session.ground(message).to_dict()
    assert prediction["pred_relevant_windows"] == [] and prediction["absent"] == reason
    # A follow-up for an unsaid quote inside a window is as honest.
    session.ask("when does she say 'the price is fair'")
    follow = session.ask(f"after that, {message}")
    assert follow.moments == [] and follow.absent == reason


def test_http_answers_not_said_the_same(tmp_path, clip):
    from fastapi.testclient import TestClient

    from grounding_agent.http import create_app

    (tmp_path / "media").mkdir()
    (tmp_path / "media" / "v.mp4").write_bytes(Path(clip).read_bytes())
    app = create_app(
        lambda path: Session(path, _grounder()), media_root=tmp_path / "media", allowed_hosts=["testserver"]
    )
    client = TestClient(app)
    sid = client.post("/v1/sessions", json={"video": "v.mp4"}).json()["id"]
    answer = client.post(f"/v1/sessions/{sid}/messages", json={"message": UNSAID}).json()
    assert answer["moments"] == [] and answer["absent"] == "said" and answer["text"].startswith("Not said")
    pred = client.post("/v1/ground", json={"video": "v.mp4", "query": UNSHOWN}).json()
    assert pred["pred_relevant_windows"] == [] and pred["absent"] == "shown"


def test_ui_shows_the_sentence_and_no_chip(tmp_path, clip):
    pytest.importorskip("gradio")
    from grounding_agent.ui.app import App, UIConfig

    (tmp_path / "media").mkdir()
    (tmp_path / "media" / "v.mp4").write_bytes(Path(clip).read_bytes())
    app = App(UIConfig(tmp_path / "media", tmp_path / "out"), lambda path: Session(path, _grounder()))
    _, key, *_ = app.open_video("v.mp4")
    history, chips, *_ = app.ask(UNSAID, [], key)
    assert 'class="chip"' not in chips and "not said" in chips
    assert history[-1]["content"].startswith("Not said:") and " s (score" not in history[-1]["content"]


# --- "what happens next?" grounds the next event ----------------------------------------------------


@pytest.mark.parametrize("message", ["what happens after that?", "what happens next?"])
def test_next_event_is_grounded_by_the_uniform_baseline(clip, message):
    grounder = CountingUniformGrounderForTests()
    session = Session(clip, grounder, follow_s=5.0)
    first = session.ask("when does the person open the door?").moments[0]
    answer = session.ask(message)
    best = answer.moments[0]
    assert grounder.queries == ["the person open the door", NEXT_EVENT_QUERY]  # a real grounder call
    assert best.start_s >= first.end_s and answer.window_s[0] == pytest.approx(first.end_s)
    assert best.score != first.score and "fallback" not in (best.explanation or {})
    assert any(NEXT_EVENT_QUERY in e.text for e in answer.evidence if e.kind == "reference")
    assert [e.kind for e in answer.evidence][:2] == ["reference", "grounder"]


def test_next_event_carries_the_grounders_moment_and_score(clip):
    script = {"a door opens": [Moment(1.0, 3.0, 0.9)], NEXT_EVENT_QUERY: [Moment(6.0, 7.5, 0.42)]}
    grounder = ScriptedGrounderForTests(script)  # model-free grounder double: known answers per query
    session = Session(clip, grounder)
    session.ask("a door opens")
    answer = session.ask("what happens after that?")
    assert [(m.start_s, m.end_s, m.score) for m in answer.moments] == [(6.0, 7.5, 0.42)]
    assert grounder.calls[-1][0] == NEXT_EVENT_QUERY and answer.window_s == pytest.approx((3.0, 10.0))
    jsonschema.validate(answer.to_dict(), ANSWER_SCHEMA)


# --- the CLI prints one line, on the real models ------------------------------------------------------


@pytest.fixture(autouse=True)
def _cache(tmp_path, monkeypatch):
    monkeypatch.setenv("GROUNDING_AGENT_CACHE", str(tmp_path / "cache"))


@pytest.mark.slow
def test_cli_ground_says_not_shown_on_real_ocr(tmp_path, capsys):
    from grounding_agent.cli import main

    path = tmp_path / "slide.mp4"
    draw = "drawtext=text='Pricing':fontsize=36:fontcolor=black:x=30:y=70:enable='between(t,1,3)'"
    _ffmpeg("-f", "lavfi", "-i", "color=c=white:s=320x160:r=5:d=4", "-vf", draw,
            "-c:v", "libx264", "-preset", "ultrafast", "-pix_fmt", "yuv420p", str(path))  # fmt: skip
    argv = ["ground", str(path), "when is 'Zebra crossing' shown on screen", "--backend", "uniform", "--ocr"]
    assert main(argv) == 0
    out = capsys.readouterr().out
    assert 'not shown: "Zebra crossing"' in out and " -> " not in out
    assert main([*argv, "--json"]) == 0
    pred = json.loads(capsys.readouterr().out)
    assert pred["pred_relevant_windows"] == [] and pred["absent"] == "shown"


@pytest.mark.slow
def test_cli_ground_says_not_said_on_real_whisper(tmp_path, whisper_base, capsys):
    from grounding_agent.cli import main
    from tests.speechgen import Utterance, make_talking_video

    talk = make_talking_video(tmp_path / "talk.mp4", [Utterance("hello and welcome", 0.5)], duration_s=4.0)
    argv = ["ground", str(talk.path), "when does he say 'purple elephants dance'", "--backend", "uniform",
            "--asr-model", str(whisper_base)]  # fmt: skip
    assert main(argv) == 0
    out = capsys.readouterr().out
    assert 'not said: "purple elephants dance"' in out and " -> " not in out
