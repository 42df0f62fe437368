"""--asr-model on the grounding subcommands: a quoted-speech query answered from the transcript (ground),
a mixed speech + visual query through the agent, speech activity in generic highlights, one-line errors."""

from __future__ import annotations

import json

import pytest

from grounding_agent.cli import main
from grounding_agent.utils.temporal import tiou
from tests.speechgen import Utterance, make_talking_video


@pytest.fixture(scope="module")
def talk(tmp_path_factory):
    return make_talking_video(
        tmp_path_factory.mktemp("speech_cli") / "talk.mp4",
        [Utterance("hello and welcome", 0.5), Utterance("let's go", 4.0, "en-gb", 150)],
        duration_s=8.0,
    )


@pytest.fixture(autouse=True)
def _cache(tmp_path_factory, monkeypatch):
    monkeypatch.setenv("GROUNDING_AGENT_CACHE", str(tmp_path_factory.getbasetemp() / "speech_cli_cache"))


@pytest.mark.slow
def test_ground_answers_a_quoted_speech_query_from_the_transcript(talk, whisper_base, capsys):
    argv = [
        "ground",
        str(talk.path),
        "when does he say 'let's go'",
        "--backend",
        "uniform",
        "--asr-model",
        str(whisper_base),
    ]
    assert main([*argv, "--json"]) == 0
    pred = json.loads(capsys.readouterr().out)
    start, end, score = pred["pred_relevant_windows"][0]
    spoken = talk.utterances[1]
    assert tiou((start, end), (spoken.start_s, spoken.end_s)) >= 0.7 and score > 0.9
    assert pred["grounder"]["channel"] == "speech"
    assert main(argv) == 0
    assert 'said: "Let' in capsys.readouterr().out


@pytest.mark.slow
def test_ground_composes_speech_and_visual_steps_through_the_agent(talk, whisper_base, capsys):
    query = "after he says 'let's go', the person walks away"
    argv = [
        "ground",
        str(talk.path),
        query,
        "--backend",
        "uniform",
        "--top-k",
        "1",
        "--asr-model",
        str(whisper_base),
        "--json",
    ]
    assert main(argv) == 0
    pred = json.loads(capsys.readouterr().out)
    assert [s["text"] for s in pred["plan"]["steps"]] == [
        "the person says 'let's go'",
        "the person walks away",
    ]
    said = pred["steps"][0]["candidates"][0]
    assert said[0] == pytest.approx(talk.utterances[1].start_s, abs=0.3)
    start, _, _ = pred["pred_relevant_windows"][0]
    assert start >= said[1] - 1.0  # the visual step comes after the words (within the before-tolerance)


@pytest.mark.slow
def test_generic_highlights_use_speech_activity(talk, whisper_base, capsys):
    argv = [
        "highlights",
        str(talk.path),
        "--weights",
        "motion=0,scene=0,audio=0,arousal=0,applause=0,speech=1",
        "--json",
    ]
    assert main([*argv, "--asr-model", str(whisper_base)]) == 0
    pred = json.loads(capsys.readouterr().out)
    assert pred["signals_used"] == {"speech": 1.0}
    assert main(argv) == 0
    assert "--asr-model" in json.loads(capsys.readouterr().out)["signals_absent"]["speech"]


def test_bad_asr_model_is_one_line_exit_2(talk, capsys):
    assert (
        main(
            ["ground", str(talk.path), "he says 'hi'", "--backend", "uniform", "--asr-model", "/no/such/dir"]
        )
        == 2
    )
    err = capsys.readouterr().err
    assert err.startswith("error: ") and "--asr-model DIR" in err and len(err.strip().splitlines()) == 1
