"""Hostile transcripts (`edit --transcript FILE.json`, `Transcript.from_dict`, a hand-made transcript passed
to `plan_edit`): a time that is not finite, negative or reversed is a one-line error naming the word; a
transcript of another (longer) video is refused; one a little past the end is clamped with a note; one of a
shorter video gets a note. Nothing is dropped or used silently, and no file changes."""

from __future__ import annotations

import hashlib
import json
import math
from pathlib import Path

import pytest

from grounding_agent.edit import plan_edit
from grounding_agent.errors import ConfigError
from grounding_agent.media.transcript import Transcript, check_times, fit_to_video
from tests.test_hostile_options import assert_one_line_error, run_cli
from tests.videogen import make_video

DURATION_S = 4.0
INSTRUCTION = "cut the words 'hello'"
FRAME_S = 2 / 25  # word cuts land on frame boundaries (25 fps)


def _words(*words: tuple[str, float, float]) -> dict:
    """A transcript as `transcribe --json` writes it: one segment holding `words`."""
    return {
        "version": 1,
        "duration_s": DURATION_S,
        "language": "en",
        "segments": [
            {
                "text": " ".join(w[0] for w in words),
                "start_s": min(w[1] for w in words),
                "end_s": max(w[2] for w in words),
                "probability": 0.9,
                "words": [[t, a, b, 0.9] for t, a, b in words],
            }
        ],
    }


GOOD = _words(("well", 0.2, 0.5), ("hello", 1.0, 1.5), ("there", 1.6, 2.0))


def _with_word(start_s: float, end_s: float) -> dict:
    data = json.loads(json.dumps(GOOD))
    data["segments"][0]["words"][1][1:3] = [start_s, end_s]
    return data


@pytest.fixture(scope="module")
def clip(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return make_video(tmp_path_factory.mktemp("transcripts") / "clip.mp4", duration_s=DURATION_S, fps=25)


def _digest(*folders: Path) -> dict[str, str]:
    return {
        str(p): hashlib.sha256(p.read_bytes()).hexdigest()
        for folder in folders
        for p in sorted(folder.iterdir())
        if p.is_file()
    }


def _edit(capsys, clip: Path, tmp_path: Path, data: dict, *extra: str) -> tuple[int, str, str]:
    """`edit CLIP INSTRUCTION --transcript t.json --export out.otio --json`; asserts nothing else changed."""
    transcript = tmp_path / "t.json"
    # json.dumps writes Infinity / NaN as Python's json reads them (what a hostile file holds).
    transcript.write_text(json.dumps(data), encoding="utf-8")
    before = _digest(clip.parent, tmp_path)
    out = tmp_path / "out.otio"
    result = run_cli(
        capsys, "edit", clip, INSTRUCTION, "--transcript", transcript, "--export", out, "--json", *extra
    )
    written = {str(out)} if result[0] == 0 else set()
    after = _digest(clip.parent, tmp_path)
    assert {k: v for k, v in after.items() if k not in written} == before
    return result


BAD_TIMES = [
    pytest.param(1.0, math.inf, "not a finite number", id="ends-at-infinity"),
    pytest.param(math.nan, 1.5, "not a finite number", id="starts-at-nan"),
    pytest.param(1.0, math.nan, "not a finite number", id="ends-at-nan"),
    pytest.param(-math.inf, 1.5, "not a finite number", id="starts-at-minus-infinity"),
    pytest.param(1.5, 1.0, "ends before it starts", id="reversed"),
    pytest.param(-0.5, 1.0, "negative time", id="negative"),
]


@pytest.mark.parametrize(("start", "end", "problem"), BAD_TIMES)
def test_cli_refuses_a_word_with_bad_times(clip, tmp_path, capsys, start, end, problem):
    rc, out, err = _edit(capsys, clip, tmp_path, _with_word(start, end))
    assert_one_line_error(rc, err, "--transcript", "word 2", "'hello'", problem, "grounding-agent transcribe")
    assert out == ""


@pytest.mark.parametrize(("start", "end", "problem"), BAD_TIMES)
def test_from_dict_refuses_a_word_with_bad_times(start, end, problem):
    with pytest.raises(ConfigError, match=f"word 2 .*{problem}") as info:
        Transcript.from_dict(_with_word(start, end))
    assert "\n" not in str(info.value)


def test_from_dict_refuses_bad_segments_regions_and_duration():
    data = json.loads(json.dumps(GOOD))
    data["segments"][0]["end_s"] = math.inf
    with pytest.raises(ConfigError, match="segment 1 .*not a finite number"):
        Transcript.from_dict(data)
    data = {**GOOD, "speech_regions": [[0.0, 1.0], [3.0, 2.0]]}
    with pytest.raises(ConfigError, match="speech region 2 .*ends before it starts"):
        Transcript.from_dict(data)
    with pytest.raises(ConfigError, match="duration_s"):
        Transcript.from_dict({**GOOD, "duration_s": math.nan})


def test_a_word_text_with_a_newline_stays_on_one_line():
    data = _with_word(1.0, math.inf)
    data["segments"][0]["words"][1][0] = "hel\nlo"
    with pytest.raises(ConfigError) as info:
        Transcript.from_dict(data)
    assert "\n" not in str(info.value)


def test_python_hand_made_transcript_is_checked(clip):
    hand_made = {"words": [{"text": "hello", "start_s": 1.0, "end_s": math.nan}]}
    with pytest.raises(ConfigError, match="word 1 .*'hello'.*not a finite number"):
        plan_edit(clip, INSTRUCTION, transcript=hand_made)
    made = Transcript.from_dict(GOOD)
    bad = type(made)(segments=(made.segments[0].__class__("x", 2.0, 1.0, 1.0),))
    with pytest.raises(ConfigError, match="segment 1 .*ends before it starts"):
        check_times(bad)


@pytest.mark.parametrize(
    ("data", "reach"),
    [
        pytest.param(_words(("hello", 1.0, 1.5), ("bye", 20.0, 30.0)), "30.00", id="words-past-the-end"),
        pytest.param({**GOOD, "duration_s": 60.0}, "60.00", id="recorded-duration-longer"),
    ],
)
def test_cli_refuses_the_transcript_of_a_longer_video(clip, tmp_path, capsys, data, reach):
    rc, out, err = _edit(capsys, clip, tmp_path, data)
    assert_one_line_error(
        rc, err, "another video", reach, f"{DURATION_S:.2f} s long", "grounding-agent transcribe"
    )


def test_a_word_just_past_the_end_is_clamped_with_a_note(clip, tmp_path, capsys):
    data = _words(("well", 0.2, 0.5), ("hello", 3.5, DURATION_S + 0.4))
    rc, out, err = _edit(capsys, clip, tmp_path, data)
    assert rc == 0, err
    plan = json.loads(out)
    assert [n for n in plan["notes"] if "past the video's end" in n and "1 word(s) clamped" in n], plan[
        "notes"
    ]
    cuts = [s for s in plan["segments"] if s["action"] == "cut"]
    assert (
        len(cuts) == 1
        and cuts[0]["start_s"] == pytest.approx(3.5, abs=FRAME_S)
        and cuts[0]["end_s"] <= DURATION_S + 1e-6
    )


def test_a_shorter_transcript_gets_a_note(clip, tmp_path, capsys):
    rc, out, err = _edit(capsys, clip, tmp_path, {**GOOD, "duration_s": 2.0})
    assert rc == 0, err
    notes = json.loads(out)["notes"]
    assert [n for n in notes if "covers 2.00 s of this 4.00 s video" in n], notes


def test_a_good_transcript_cuts_the_word_without_notes(clip, tmp_path, capsys):
    rc, out, err = _edit(capsys, clip, tmp_path, GOOD)
    assert rc == 0, err
    plan = json.loads(out)
    assert not [n for n in plan["notes"] if "transcript" in n], plan["notes"]
    cuts = [(s["start_s"], s["end_s"]) for s in plan["segments"] if s["action"] == "cut"]
    assert cuts == [(pytest.approx(1.0, abs=FRAME_S), pytest.approx(1.5, abs=FRAME_S))]  # on frames


def test_fit_to_video_directly():
    transcript = Transcript.from_dict(GOOD)
    assert fit_to_video(transcript, DURATION_S) == (transcript, [])
    with pytest.raises(ConfigError, match="another video"):
        fit_to_video(transcript, 0.5)
    unknown_length = Transcript.from_dict({**GOOD, "duration_s": 0.0})
    fitted, notes = fit_to_video(unknown_length, 1.8)
    assert max(w.end_s for w in fitted.words) == 1.8 and fitted.segments[0].end_s == 1.8
    assert len(notes) == 1 and "1 word(s) clamped" in notes[0]
    assert fit_to_video(transcript, 10.0)[1][0].startswith("the transcript covers 4.00 s of this 10.00 s")
