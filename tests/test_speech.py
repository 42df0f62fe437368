"""The speech modules (transcript, text_match, speech_query, vad, asr) without the ASR model: normalisation, fuzzy transcript search, speech queries, chunking, cache
format, subtitles, and the typed errors for a bad model. The real-Whisper tests are in test_speech_asr.py."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from grounding_agent.errors import ConfigError, ModelLoadError, VideoNotFoundError
from grounding_agent.media.asr import Transcriber, load_whisper
from grounding_agent.media.audio import iter_audio
from grounding_agent.media.speech_query import speech_query
from grounding_agent.media.text_match import normalize
from grounding_agent.media.transcript import Segment, Transcript, Word
from grounding_agent.media.vad import SAMPLE_RATE, clamp_word, cut_point, whisper_clips
from tests.speechgen import Utterance, make_talking_video
from tests.videogen import make_audio_only, make_video

REPO = Path(__file__).resolve().parents[1]


def _transcript(*sentences: tuple[float, str], word_s: float = 0.4) -> Transcript:
    """Words laid out `word_s` apart from each sentence's start: a transcript as the ASR would give it."""
    segments = []
    for start, text in sentences:
        words = tuple(
            Word(w, start + i * word_s, start + (i + 1) * word_s - 0.05, 0.9)
            for i, w in enumerate(text.split())
        )
        segments.append(Segment(text, words[0].start_s, words[-1].end_s, 0.9, words))
    regions = tuple((s.start_s, s.end_s) for s in segments)
    return Transcript(tuple(segments), 60.0, "en", regions, True, "test")


TALK = _transcript(
    (2.0, "Good morning everyone."),
    (8.0, "My favorite color is blue."),
    (15.0, "Let's go to the park at 7."),
    (25.0, "The price is 20 dollars."),
    (33.0, "Where did you put the red car?"),
)


# --- normalisation ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "tokens"),
    [
        ("Let's go!", ["let", "us", "go"]),
        ("at 7.", ["at", "seven"]),
        ("20 dollars", ["twenty", "dollars"]),
        ("the 3rd time", ["the", "third", "time"]),
        ("1,500 people", ["one", "thousand", "five", "hundred", "people"]),
        ("twenty-one", ["twenty", "one"]),
        ("“Quoted,” she said", ["quoted", "she", "said"]),
    ],
)
def test_normalize_spells_numbers_and_drops_punctuation(text, tokens):
    assert normalize(text) == tokens


# --- search ----------------------------------------------------------------------------------------


def test_exact_quote_finds_its_sentence_with_full_score():
    (match,) = TALK.search("my favorite color is blue", top_k=1)
    assert (match.start_s, match.end_s) == (8.0, TALK.segments[1].end_s)
    assert match.score == pytest.approx(1.0) and match.text == "My favorite color is blue."


@pytest.mark.parametrize(
    ("quote", "segment"),
    [
        ("my favourite colour is blue", 1),  # British spelling vs the ASR's American one
        ("my favrite colr is blu", 1),  # misspelled
        ("let's go to the park at seven", 2),  # number as a word vs the ASR's digit
        ("let us go to the park", 2),  # paraphrase: contraction expanded, words dropped
        ("the price is twenty dollars", 3),
        ("where did you leave the red car", 4),  # a different verb
    ],
)
def test_variant_quotes_land_on_the_right_sentence(quote, segment):
    best = TALK.search(quote, top_k=3)[0]
    seg = TALK.segments[segment]
    assert seg.start_s - 1e-9 <= best.start_s < best.end_s <= seg.end_s + 1e-9
    assert best.end_s - best.start_s >= 0.5 * (seg.end_s - seg.start_s)


def test_unrelated_text_does_not_match_and_scores_are_ordered():
    assert TALK.search("the cat jumps over the fence") == []
    matches = TALK.search("the red car is blue", top_k=3)
    assert len(matches) >= 2 and matches[0].score >= matches[1].score
    spans = [(m.start_s, m.end_s) for m in matches]
    assert all(
        a[1] <= b[0] or b[1] <= a[0] for i, a in enumerate(spans) for b in spans[i + 1 :]
    )  # no overlap


def test_match_becomes_moment_and_speech_evidence():
    match = TALK.search("good morning", top_k=1)[0]
    moment, ev = match.to_moment(), match.to_evidence("whisper-base")
    assert (moment.start_s, moment.end_s, moment.score) == (match.start_s, match.end_s, match.score)
    assert ev.kind == "speech" and ev.text == '"Good morning"' and ev.source == "whisper-base"


def test_empty_transcript_and_empty_query_give_no_match():
    assert Transcript().search("anything") == [] and TALK.search("  ...  ") == []


def test_words_and_text_between_a_window():
    assert TALK.text_between(14.9, 16.4) == "Let's go to the"
    assert TALK.speech_fraction(0.0, 2.0) == 0.0 and TALK.speech_fraction(8.0, 9.0) == pytest.approx(1.0)
    activity = TALK.speech_activity(np.array([1.0, 9.0]), hop_s=1.0)
    np.testing.assert_allclose(activity, [0.0, 1.0])


# --- which sub-queries are about speech -------------------------------------------------------------


@pytest.mark.parametrize(
    ("query", "said"),
    [
        ("he says 'let's go'", "let's go"),
        ('when is "blue" said', "blue"),
        ("when does she mention the price?", "the price"),
        ("the woman asks 'where is the car'", "where is the car"),
        ("she talks about the weather", "the weather"),
        ('"good morning"', "good morning"),
        ("the man runs", None),
        ("the sign reads 'exit'", None),  # a quote without a speech verb is not speech
        ("the man's dog barks", None),
    ],
)
def test_speech_query(query, said):
    assert speech_query(query) == said


# --- chunking and word tightening -------------------------------------------------------------------


def test_chunk_is_cut_in_the_last_pause_before_the_margin():
    sr = SAMPLE_RATE
    regions = [(1 * sr, 3 * sr), (5 * sr, 9 * sr), (int(9.4 * sr), int(9.8 * sr))]
    assert cut_point(regions, 10 * sr) == 4 * sr  # the 9-9.4 s pause is within 1 s of the end: not it
    assert cut_point([(sr, 2 * sr)], 10 * sr) == 6 * sr  # trailing silence: its middle
    assert cut_point([(0, 10 * sr)], 10 * sr) == 10 * sr  # no pause at all: cut at the end
    assert cut_point([], 10 * sr) == 10 * sr


_VAD_CHILD = """
import json, sys
import numpy as np
from grounding_agent.media.audio import iter_audio
from grounding_agent.media.vad import SAMPLE_RATE, voice_regions
audio = np.concatenate(list(iter_audio(sys.argv[1])))
regions = [(a / SAMPLE_RATE, b / SAMPLE_RATE) for a, b in voice_regions(audio)]
print(json.dumps({"regions": regions, "torch": "torch" in sys.modules}))
"""


def test_the_vad_finds_each_sentence_without_importing_torch(tmp_path):
    """Speech regions come from the ONNX VAD on NumPy arrays: a transcription never pays torch's import."""
    said = [Utterance("open the window", 1.0), Utterance("close the door please", 4.5)]
    clip = make_talking_video(tmp_path / "talk.mp4", said, duration_s=8.0)
    proc = subprocess.run([sys.executable, "-c", _VAD_CHILD, str(clip.path)], capture_output=True, text=True,
                          cwd=REPO, timeout=120)  # fmt: skip
    assert proc.returncode == 0, proc.stderr[-2000:]
    out = json.loads(proc.stdout)
    assert out["torch"] is False
    regions = out["regions"]
    for spoken in clip.utterances:  # each sentence mostly inside the regions, and nothing before the first
        inside = sum(max(0.0, min(b, spoken.end_s) - max(a, spoken.start_s)) for a, b in regions)
        assert inside >= 0.8 * (spoken.end_s - spoken.start_s), (spoken, regions)
    assert regions[0][0] >= clip.utterances[0].start_s - 0.2


def test_clips_merge_close_regions_and_pad_without_overlap():
    sr = SAMPLE_RATE
    flat = whisper_clips([(1 * sr, 2 * sr), (int(2.3 * sr), 3 * sr), (6 * sr, 7 * sr)], 10 * sr)
    assert flat == pytest.approx([0.75, 3.25, 5.75, 7.25])
    # Pauses under PACK_GAP_S stay inside one clip while it fits one 30-s Whisper window...
    packed = whisper_clips([(1 * sr, 3 * sr), (5 * sr, 8 * sr), (10 * sr, 12 * sr)], 20 * sr)
    assert packed == pytest.approx([0.75, 12.25])
    # ...and start a new clip when it would not.
    long = whisper_clips([(0, 20 * sr), (22 * sr, 35 * sr)], 40 * sr)
    assert long == pytest.approx([0.0, 20.25, 21.75, 35.25])


def test_tighten_clamps_a_word_into_its_voice_region():
    early = Word("My", 0.0, 1.4, 0.8)  # Whisper's first word often starts long before the voice
    assert clamp_word(early, [(0.95, 3.6), (5.0, 7.7)]) == Word("My", 0.95, 1.4, 0.8)
    assert clamp_word(early, []) == early


# --- transcript format -----------------------------------------------------------------------------


def test_transcript_round_trips_through_its_dict():
    again = Transcript.from_dict(TALK.to_dict(), from_cache=True)
    assert again == TALK and again.from_cache and not TALK.from_cache


def test_subtitles_srt_and_vtt():
    srt = TALK.to_subtitles("srt")
    assert srt.startswith("1\n00:00:02,000 --> ") and "My favorite color is blue." in srt
    vtt = TALK.to_subtitles("vtt")
    assert vtt.startswith("WEBVTT") and "00:00:08.000 --> " in vtt
    with pytest.raises(ConfigError):
        TALK.to_subtitles("ass")


# --- files and models ------------------------------------------------------------------------------


def test_iter_audio_streams_16k_mono_blocks(tmp_path):
    clip = make_audio_only(tmp_path / "a.wav", duration_s=3.0)
    blocks = list(iter_audio(clip, block_s=1.0))
    assert len(blocks) >= 3 and all(b.dtype == np.float32 and b.ndim == 1 for b in blocks)
    assert sum(b.size for b in blocks) == pytest.approx(3 * SAMPLE_RATE, rel=0.01)
    assert list(iter_audio(make_video(tmp_path / "silent.mp4", duration_s=1.0))) == []


@pytest.mark.parametrize("make", ["missing", "not_whisper"])
def test_bad_model_folder_is_a_typed_error_naming_the_option(tmp_path, make):
    folder = tmp_path / "model"
    if make == "not_whisper":
        folder.mkdir()
        (folder / "config.json").write_text("{}")
    with pytest.raises(ModelLoadError, match="--asr-model DIR"):
        Transcriber(folder)


def test_unknown_name_offline_is_a_typed_error_naming_the_option(tmp_path):
    with pytest.raises(ModelLoadError, match="--asr-model DIR"):
        load_whisper("base", download_root=tmp_path, local_files_only=True)
    asr = Transcriber("base", download_root=tmp_path, local_files_only=True, cache_dir=tmp_path / "c")
    with pytest.raises(ModelLoadError, match="cannot fetch .*--asr-model DIR"):
        _ = asr.whisper  # loaded on first use (a cached transcript never needs it)


def test_no_audio_track_is_an_empty_recorded_transcript_without_loading_the_model(tmp_path):
    asr = Transcriber("base", download_root=tmp_path, local_files_only=True, cache_dir=tmp_path / "c")
    transcript = asr.transcribe(make_video(tmp_path / "v.mp4", duration_s=1.0))
    assert not transcript and not transcript.has_audio and transcript.notes == ("no audio track",)
    assert asr._model is None  # nothing to hear: Whisper was never loaded


def test_missing_video_is_a_typed_error(tmp_path):
    with pytest.raises(VideoNotFoundError):
        Transcriber("base", local_files_only=True, cache_dir=tmp_path).transcribe(tmp_path / "nope.mp4")
