"""Terminal safety: model, transcript and OCR text printed by `chat` (REPL), `ground` and `transcribe` goes
through one sanitizer (`cli.terminal.clean`): no escape sequence, control character or bidi override reaches
the terminal, and newlines that structure the output stay."""

from __future__ import annotations

import io
import re

import pytest

from grounding_agent import Session
from grounding_agent.cli import main
from grounding_agent.cli.chat import repl
from grounding_agent.cli.terminal import clean
from grounding_agent.grounders.base import Grounding, check_request
from grounding_agent.grounders.describe import Description
from grounding_agent.media.transcript import Segment, Transcript, Word
from grounding_agent.types import Moment
from tests.agent_doubles import ScriptedGrounderForTests
from tests.videogen import make_video

EVIL = "\x1b[31mred\x1b]0;title\x07 \u202e"
# What must never reach the terminal: C0 controls but tab/newline, DEL, C1, bidi controls.
UNSAFE = re.compile("[\x00-\x08\x0b-\x1f\x7f-\x9f\u061c\u200e\u200f\u202a-\u202e\u2066-\u2069]")


class HostileTextGrounderForTests(ScriptedGrounderForTests):
    """A grounder double (no model) whose answers, explanations and text carry terminal escapes."""

    text_model = "double-vlm"

    def __init__(self):
        super().__init__({})

    def ground(self, video, query, *, top_k=1, frames=None) -> Grounding:
        video = check_request(video, top_k)
        self.calls.append((query, None))
        moment = Moment(1.0, 3.0, 0.8, {"said": EVIL})
        return Grounding([moment], raw_text=[EVIL], duration_s=video.duration_s)

    def describe(self, frames, request, moments, *, max_tokens=None, max_frames=8) -> Description:
        return Description(f"{EVIL}\nsecond line", "vlm:double-vlm")


class HostileTranscriberForTests:
    """Replaces the Whisper model only: a transcript whose words carry terminal escapes."""

    def __init__(self, *args, **kwargs):
        pass

    def transcribe(self, video):
        words = (Word("red\x1b[2J", 0.5, 0.9, 0.9), Word("\u202eoops", 1.0, 1.4, 0.9))
        segment = Segment(f"{EVIL} oops", 0.5, 1.4, 0.9, words)
        return Transcript((segment,), 4.0, "en", ((0.5, 1.4),), True, "double")


@pytest.fixture
def clip(tmp_path):
    return make_video(tmp_path / "v.mp4", duration_s=4.0, fps=5)


def assert_safe(text: str) -> None:
    assert not UNSAFE.search(text), repr(UNSAFE.findall(text))
    assert "red" in text  # the words themselves are kept


def test_clean_drops_escapes_controls_and_bidi_but_keeps_newlines():
    assert clean(EVIL) == "red "
    assert clean("a\nb\tc") == "a\nb\tc" and clean("a\nb", newlines=False) == "a b"
    assert clean("x\x9b31my\x00z\x7f\u2066w\r\n") == "xyzw\n"
    assert clean("\x1bPdevice\x1b\\ok\x1b7") == "ok"


def test_chat_repl_prints_model_text_through_the_sanitizer(clip):
    session = Session(clip, HostileTextGrounderForTests())
    out = io.StringIO()
    assert repl(session, io.StringIO("when does it happen?\n/history\n/plan\n"), out) == 0
    printed = out.getvalue()
    assert_safe(printed)
    assert "\nsecond line\n" in printed  # the answer's own line structure survives


def test_ground_prints_model_text_through_the_sanitizer(clip, monkeypatch, capsys):
    import grounding_agent.cli.ground as ground_cli

    monkeypatch.setattr(ground_cli, "build_grounder", lambda args: HostileTextGrounderForTests())
    assert main(["ground", str(clip), "when does it happen\u202e?", "--backend", "uniform"]) == 0
    printed = capsys.readouterr().out
    assert_safe(printed)
    assert 'said: "red "' in printed


def test_transcribe_prints_words_through_the_sanitizer(clip, monkeypatch, capsys, tmp_path):
    import grounding_agent.media.asr as asr

    monkeypatch.setattr(asr, "Transcriber", HostileTranscriberForTests)
    assert main(["transcribe", str(clip), "--asr-model", str(tmp_path), "--search", "red"]) == 0
    printed = capsys.readouterr().out
    assert_safe(printed)
    assert "oops" in printed
