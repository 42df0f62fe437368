"""`grounding-agent transcribe`: text, JSON, SRT/VTT, --search, no audio track, and one-line errors."""

from __future__ import annotations

import json

import pytest

from grounding_agent.cli import main
from grounding_agent.media.text_match import normalize
from tests.speechgen import Utterance, make_talking_video
from tests.videogen import make_video


@pytest.fixture(scope="module")
def talk(tmp_path_factory):
    folder = tmp_path_factory.mktemp("cli_talk")
    return make_talking_video(
        folder / "talk.mp4",
        [Utterance("good evening my friends", 0.5), Utterance("the show starts at eight", 3.8, "en-gb", 160)],
        duration_s=6.5,
    )


@pytest.fixture(autouse=True)
def _cache(tmp_path_factory, monkeypatch):
    # One transcript cache for this module: the clip is transcribed once, later commands read the cache.
    monkeypatch.setenv("GROUNDING_AGENT_CACHE", str(tmp_path_factory.getbasetemp() / "cli_cache"))


@pytest.mark.slow
def test_text_srt_vtt_and_search(talk, whisper_base, tmp_path, capsys):
    srt, vtt = tmp_path / "t.srt", tmp_path / "t.vtt"
    argv = [
        "transcribe",
        str(talk.path),
        "--asr-model",
        str(whisper_base),
        "--srt",
        str(srt),
        "--vtt",
        str(vtt),
    ]
    assert main([*argv, "--search", "the show starts at 8"]) == 0
    out = capsys.readouterr().out
    heard = " ".join(normalize(out))
    assert "good evening my friends" in heard and "the show starts at eight" in heard
    second = talk.utterances[1]
    said = next(line for line in out.splitlines() if "said at" in line)
    start, end = map(float, said.split("said at ")[1].split(" s ")[0].split("-"))
    assert abs(start - second.start_s) < 0.4 and abs(end - second.end_s) < 0.4
    assert srt.read_text().startswith("1\n00:00:00,") and "-->" in srt.read_text()
    assert vtt.read_text().startswith("WEBVTT")


@pytest.mark.slow
def test_json_has_segments_words_and_comes_from_the_cache_the_second_time(talk, whisper_base, capsys):
    argv = ["transcribe", str(talk.path), "--asr-model", str(whisper_base), "--json"]
    assert main(argv) == 0
    assert main(argv) == 0
    first, second = (json.loads(chunk) for chunk in _json_docs(capsys.readouterr().out))
    assert second["from_cache"] and first["segments"] == second["segments"]
    words = [w for s in second["segments"] for w in s["words"]]
    assert len(words) >= 8 and all(len(w) == 4 and w[1] <= w[2] for w in words)  # [text, start_s, end_s, p]
    assert second["language"] == "en" and second["has_audio"]


def test_no_audio_track_prints_a_note_and_succeeds(tmp_path, capsys):
    silent = make_video(tmp_path / "silent.mp4", duration_s=1.0)
    assert main(["transcribe", str(silent), "--asr-model", "base"]) == 0  # no audio: the model is not needed
    assert "no audio track" in capsys.readouterr().out


@pytest.mark.parametrize(
    ("extra", "message"),
    [
        (["--asr-model", "/no/such/folder"], "--asr-model DIR"),
        (["--asr-model", "base", "--srt", "."], "--srt"),
    ],
)
def test_errors_are_one_line_and_exit_2(tmp_path, capsys, extra, message):
    clip = make_video(tmp_path / "v.mp4", duration_s=1.0, audio=True)
    assert main(["transcribe", str(clip), *extra]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: ") and message in err and len(err.strip().splitlines()) == 1


def _json_docs(text: str):
    """Split concatenated pretty-printed JSON documents."""
    decoder, i = json.JSONDecoder(), 0
    while i < len(text):
        if text[i].isspace():
            i += 1
            continue
        doc, i = decoder.raw_decode(text, i)
        yield json.dumps(doc)
