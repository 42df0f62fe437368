"""Indexing speed levers must not change what is indexed (issue 31, `bench/library.py`).

- the language detected once per run (`Transcriber(language_once_at=...)`) gives the words and times of
  per-file detection, on espeak-ng clips with known sentence times, and skips the detection pass;
- `SpeechAhead` (the next files' speech started while this one's frames are read) gives the transcripts of
  one file at a time, in scan order, around a duplicate that is never indexed;
- the OCR thread of `frames.frame_pass` gives the same text and vectors as each channel alone.
"""

from __future__ import annotations

import shutil
import threading
import time
from pathlib import Path

import numpy as np
import pytest

from grounding_agent.defaults import LIBRARY
from grounding_agent.highlights.clip import ClipSaliency
from grounding_agent.library import Library, Models, index_one
from grounding_agent.library.pipeline import SpeechAhead, embed, read_text
from grounding_agent.media.asr import Transcriber
from grounding_agent.media.transcript import Transcript
from grounding_agent.media.video import open_video
from tests.librarygen import iou, library_clips

N_CLIPS = 4


@pytest.fixture(scope="module")
def clips():
    return library_clips(8)[:N_CLIPS]


def _words(transcript: Transcript) -> list[tuple[str, float, float]]:
    return [(w.text, w.start_s, w.end_s) for w in transcript.words]


def _same_words(a: Transcript, b: Transcript, tol_s: float = 0.05) -> None:
    assert [w[0] for w in _words(a)] == [w[0] for w in _words(b)]
    for x, y in zip(_words(a), _words(b)):
        assert abs(x[1] - y[1]) <= tol_s and abs(x[2] - y[2]) <= tol_s, (x, y)


def _asr(whisper_base: Path, cache: Path, **options) -> Transcriber:
    return Transcriber(
        whisper_base, beam_size=LIBRARY.asr_beam_size, cpu_threads=1, cache_dir=cache, **options
    )


@pytest.mark.slow
def test_language_once_keeps_words_and_times_and_skips_detection(clips, whisper_base, tmp_path):
    per_file = _asr(whisper_base, tmp_path / "cache")
    once = _asr(whisper_base, tmp_path / "cache", language_once_at=LIBRARY.asr_language_once_at)
    asked = []  # the language each real Whisper call was given (None: it detects first)
    real = once.whisper.transcribe
    once.whisper.transcribe = lambda audio, **kw: (asked.append(kw["language"]), real(audio, **kw))[1]
    for clip in clips:
        a, b = per_file.transcribe(clip.path), once.transcribe(clip.path)
        _same_words(a, b)
        assert a.language == b.language == "en"
        spoken = (b.words[0].start_s, b.words[-1].end_s)
        assert iou(spoken, clip.sentence_span_s) >= 0.5, (spoken, clip.sentence_span_s)  # espeak's truth
    assert asked == [None] + ["en"] * (len(clips) - 1)
    assert len(list((tmp_path / "cache").glob("*.json"))) == 2 * len(clips)  # cached apart


class RecordingTranscriber:
    """Test double above the model: records which files are transcribed, from which thread, when."""

    def __init__(self, seconds: float = 0.05):
        self.seconds, self.calls, self.lock = seconds, [], threading.Lock()

    def transcribe(self, path) -> Transcript:
        with self.lock:
            self.calls.append(Path(path).name)
        time.sleep(self.seconds)
        return Transcript(model=Path(path).name)


def test_speech_ahead_starts_the_next_files_and_drops_passed_ones(tmp_path):
    paths = [(tmp_path / f"{i}.mp4").resolve() for i in range(6)]
    double = RecordingTranscriber()
    with SpeechAhead(Models(transcriber=double), paths, workers=2) as ahead:
        first = ahead.take(paths[0])
        assert first is not None and first.result().model == "0.mp4"
        time.sleep(0.2)
        assert sorted(double.calls) == ["0.mp4", "1.mp4", "2.mp4"]  # this file and two ahead, no more
        assert ahead.take(tmp_path / "other.mp4") is None  # not in the plan: the caller transcribes it
        assert ahead.take(paths[3]).result().model == "3.mp4"  # 1 and 2 were passed over (twins)
        assert ahead.take(paths[1]) is None
        assert ahead.take(paths[5]).result().model == "5.mp4"
    assert {"0.mp4", "1.mp4", "2.mp4", "3.mp4", "5.mp4"} <= set(double.calls) and len(double.calls) <= 6


@pytest.mark.slow
def test_index_with_speech_ahead_matches_one_file_at_a_time(clips, whisper_base, tmp_path, monkeypatch):
    monkeypatch.setenv("GROUNDING_AGENT_CACHE", str(tmp_path / "cache"))
    src = tmp_path / "src"
    src.mkdir()
    for clip in clips[:3]:
        shutil.copy(clip.path, src / clip.path.name)
    shutil.copy(clips[0].path, src / "zz_twin.mp4")  # same bytes: skipped, its speech never waited for
    ahead = Transcriber(whisper_base, beam_size=1, cpu_threads=1, num_workers=2, use_cache=False)
    lib = Library(tmp_path / "lib", create=True, transcriber=ahead)
    report = lib.index([src], channels=["speech"])
    assert [r.status for r in report.rows] == ["indexed"] * 3 + ["skipped"]
    alone = Models(transcriber=Transcriber(whisper_base, beam_size=1, cpu_threads=1, use_cache=False))
    for video in lib.videos():
        one = index_one(video.path, ("speech",), alone).transcript
        assert one is not None and one.words
        _same_words(lib.transcript(video.video_id), one, tol_s=1e-6)
    lib.close()


@pytest.mark.slow
def test_ocr_thread_gives_what_each_channel_gives_alone(clips, tiny_models, tmp_path, monkeypatch):
    clip = ClipSaliency.from_pretrained(tiny_models["clip"], use_cache=False)
    models = Models(saliency=clip)
    models.check(("visual", "ocr"))
    video = open_video(clips[1].path)
    monkeypatch.setenv("GROUNDING_AGENT_CACHE", str(tmp_path / "together"))
    record = index_one(clips[1].path, ("visual", "ocr"), models)
    monkeypatch.setenv("GROUNDING_AGENT_CACHE", str(tmp_path / "ocr-alone"))
    screen = read_text(video, models)
    times, vectors, shots = embed(video, models)
    assert screen.to_dict() == record.screen.to_dict()
    assert any(clips[1].title.lower() in line.text.lower() for f in screen.frames for line in f.lines)
    assert np.array_equal(times, record.frame_times_s) and shots == record.shots
    np.testing.assert_allclose(vectors, record.frame_vectors, atol=1e-6)
