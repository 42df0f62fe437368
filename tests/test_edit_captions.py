"""`edit --captions`: the transcript burnt into the render, word-timed, and a sidecar on the *edited* timeline.

The main test renders a generated talking clip (espeak-ng, tests/speechgen.py) transcribed by the real Whisper
base, cut in the middle, reads every frame of the render back with the real RapidOCR and checks each frame
shows the caption line the sidecar says is on screen then (±1 frame interval at a line change), and that the
words the edit cut never show. The cheaper tests use a transcript given as a file (`--transcript`), as a user
would pass one.
"""

from __future__ import annotations

import json
import re

import numpy as np
import pysubs2
import pytest

from grounding_agent.edit import plan_edit
from grounding_agent.edit.captions import caption_lines, edited_words, filter_path, subtitles
from tests.speechgen import Utterance, make_talking_video
from tests.test_hostile_options import assert_one_line_error, run_cli

FPS = 10.0
SAID = ["the weather is sunny today", "please remove this sentence", "we like green apples"]


@pytest.fixture(scope="module")
def talk(tmp_path_factory):
    folder = tmp_path_factory.mktemp("captions")
    utterances = [Utterance(SAID[0], 0.5), Utterance(SAID[1], 4.5), Utterance(SAID[2], 8.5)]
    return make_talking_video(folder / "talk.mp4", utterances, duration_s=12.0, size=(640, 360), fps=FPS)


def _truth_transcript(talk):
    """The words as spoken (speechgen knows each word's time), as a `Transcript` (`transcribe --json`'s shape
    through `to_dict`)."""
    from grounding_agent.media.transcript import Segment, Transcript, Word

    segments = tuple(
        Segment(
            u.text, u.start_s, u.end_s, 1.0, tuple(Word(w.text, w.start_s, w.end_s, 1.0) for w in u.words)
        )
        for u in talk.utterances
    )
    return Transcript(segments=segments, duration_s=talk.duration_s, language="en")


def _words(text: str) -> str:
    """Caption words only: OCR also reads digits and letter pairs off the test pattern."""
    return " ".join(w for w in _norm(text).split() if len(w) >= 3 and w.isalpha())


def _norm(text: str) -> str:
    return re.sub(r"[^a-z0-9 ]+", "", text.lower().replace("\\n", " ").replace("\\N", " ")).strip()


def test_words_move_with_their_segment_and_cut_words_are_gone(talk) -> None:
    plan = plan_edit(talk.path, "cut 0:04 to 0:08")
    words = edited_words(plan, _truth_transcript(talk))
    assert [w.text for w in words] == SAID[0].split() + SAID[2].split()
    shift = plan.kept[1].start_s - plan.output_starts_s()[1]  # 4 s cut before the third sentence
    spoken = [*talk.utterances[0].words, *talk.utterances[2].words]
    for got, truth in zip(words, spoken, strict=True):
        want = truth.start_s - (shift if truth.start_s > 8 else 0.0)
        assert abs(got.start_s - want) < 1e-6
    lines = caption_lines(words)
    assert all(len(line) <= 4 for line in lines) and len({w.sentence for w in lines[-1]}) == 1


def test_burnt_in_style_is_readable_and_inside_safe_margins(talk) -> None:
    plan = plan_edit(talk.path, "cut 0:04 to 0:08")
    subs = subtitles(plan, _truth_transcript(talk), size=(202, 360))
    style = subs.styles["Default"]
    assert int(subs.info["PlayResX"]) == 202 and int(subs.info["PlayResY"]) == 360
    assert style.marginl >= 0.05 * 202 and style.marginr >= 0.05 * 202 and style.marginv >= 0.05 * 360
    assert style.outline >= 1 and style.bold
    # Word-timed: one event per word, the word being said (and only it) highlighted.
    first_line = [e for e in subs.events if e.start < 4000][:5]
    highlighted = [re.search(r"\{\\c&H[0-9A-F]+&\}(\w+)", e.text).group(1) for e in first_line]
    assert highlighted == SAID[0].split()[: len(highlighted)]


def test_filter_path_survives_odd_folder_names(tmp_path) -> None:
    """The ASS path is a filter option inside a graph: ':', ',', quotes and brackets must not break it."""
    import subprocess

    odd = tmp_path / "a:b,c'd [e];f"
    odd.mkdir()
    subs = pysubs2.SSAFile()
    subs.append(pysubs2.SSAEvent(start=0, end=500, text="HI"))
    ass = odd / "c.ass"
    subs.save(str(ass))
    args = ["ffmpeg", "-nostdin", "-loglevel", "error", "-f", "lavfi", "-i", "color=s=64x64:d=0.5",
            "-filter_complex", f"[0:v]ass=filename={filter_path(ass)}[v]", "-map", "[v]", "-f", "null", "-"]  # fmt: skip
    assert subprocess.run(args, capture_output=True, text=True).returncode == 0


def test_captions_need_a_render_words_and_no_copy(talk, capsys, tmp_path) -> None:
    out = tmp_path / "o.mp4"
    rc, _, err = run_cli(capsys, "edit", talk.path, "cut 0:04 to 0:08", "--render", out, "--captions")
    assert_one_line_error(rc, err, "--asr-model", "--transcript")
    rc, _, err = run_cli(
        capsys, "edit", talk.path, "cut 0:04 to 0:08", "--captions", "--transcript", "t.json"
    )
    assert_one_line_error(rc, err, "--render")
    rc, _, err = run_cli(
        capsys, "edit", talk.path, "cut 0:04 to 0:08", "--render", out, "--copy", "--aspect", "9:16"
    )
    assert_one_line_error(rc, err, "--copy")
    assert not out.exists()


def test_sidecar_vtt_from_a_transcript_file(talk, capsys, tmp_path) -> None:
    transcript = tmp_path / "t.json"
    transcript.write_text(json.dumps(_truth_transcript(talk).to_dict()))
    out, vtt = tmp_path / "o.mp4", tmp_path / "o.vtt"
    rc, stdout, err = run_cli(capsys, "edit", talk.path, "cut 0:04 to 0:08", "--transcript", transcript,
                              "--render", out, "--captions", "--captions-out", vtt)  # fmt: skip
    assert rc == 0, err
    cues = pysubs2.load(str(vtt))
    assert " ".join(_norm(c.text) for c in cues) == f"{SAID[0]} {SAID[2]}"
    third = talk.utterances[2]
    assert abs(cues[-1].end / 1000 - (third.end_s - 4.0)) < 0.002  # on the edited timeline
    assert "o.vtt" in stdout


@pytest.mark.slow
@pytest.mark.integration
def test_burnt_in_captions_read_back_by_ocr_at_the_right_frames(talk, whisper_base, capsys, tmp_path) -> None:
    from rapidfuzz import fuzz

    from grounding_agent.media.decode import sample_frames
    from grounding_agent.media.ocr import read_lines

    out = tmp_path / "captioned.mp4"
    rc, _, err = run_cli(capsys, "edit", talk.path, "cut 0:04 to 0:08", "--asr-model", whisper_base,
                         "--asr-language", "en", "--render", out, "--captions")  # fmt: skip
    assert rc == 0, err
    cues = [(c.start / 1000, c.end / 1000, _norm(c.text)) for c in pysubs2.load(str(out.with_suffix(".srt")))]
    said = " ".join(text for _, _, text in cues)
    assert "remove" not in said and "sentence" not in said  # the cut sentence is not captioned
    assert fuzz.ratio(said, f"{SAID[0]} {SAID[2]}") >= 80  # Whisper heard what was said
    third = talk.utterances[2]
    assert abs(cues[-1][0] - (third.start_s - 4.0)) <= 0.3  # the third sentence moved 4 s earlier

    # The decisive frames: the nearest ones more than one frame interval before and after each line change
    # (the change is drawn on a frame, so a caption early or late by more than one frame shows on one of
    # them), and each line's middle frame.
    frames = sample_frames(out, fps=FPS)
    times, frame_s = frames.timestamps_s, 1.0 / FPS
    picked = {int(np.argmin(np.abs(times - (a + b) / 2))) for a, b, _ in cues}
    for change in {b for c in cues for b in c[:2]}:
        before, after = (
            np.flatnonzero(times < change - frame_s - 1e-3),
            np.flatnonzero(times > change + frame_s + 1e-3),
        )
        picked |= {int(before[-1])} if len(before) else set()
        picked |= {int(after[0])} if len(after) else set()
    wrong = []
    for k in sorted(picked):
        t, pixels = float(times[k]), frames.pixels[k]
        lines = read_lines(pixels[int(pixels.shape[0] * 0.6) :])  # the bottom: the captions' place
        text = _words(" ".join(line.text for line in lines))
        shown = max(cues, key=lambda c: fuzz.ratio(text, _words(c[2]))) if text else None
        if shown is not None and fuzz.ratio(text, _words(shown[2])) < 70:
            wrong.append((round(t, 2), text, "matches no cue"))
            continue
        expected = next((c for c in cues if c[0] <= t < c[1]), None)
        if shown != expected:
            wrong.append((round(t, 2), text, expected and expected[2]))
    assert len(picked) >= 2 * len(cues) and not wrong, wrong
