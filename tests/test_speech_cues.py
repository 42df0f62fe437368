"""Transcript as evidence elsewhere: the rerank feature (query <-> words spoken in a window) and speech
activity as a highlight signal. Transcripts are built here (no ASR model needed)."""

from __future__ import annotations

import pytest

from grounding_agent.agent.rerank_features import fuse_speech, speech_features
from grounding_agent.errors import ConfigError
from grounding_agent.highlights.windows import HighlightWeights, generic_highlights
from grounding_agent.media.transcript import Segment, Transcript, Word
from grounding_agent.types import Moment
from tests.videogen import make_video


def _said(text: str, start_s: float, word_s: float = 0.4) -> Segment:
    words = tuple(
        Word(w, start_s + i * word_s, start_s + (i + 1) * word_s - 0.05, 0.9)
        for i, w in enumerate(text.split())
    )
    return Segment(text, words[0].start_s, words[-1].end_s, 0.9, words)


SEGMENTS = (_said("welcome back", 1.0), _said("the price is twenty dollars", 12.0))
TALK = Transcript(SEGMENTS, 20.0, "en", tuple((s.start_s, s.end_s) for s in SEGMENTS), True, "test")


def test_speech_feature_is_high_where_the_query_is_said_and_zero_elsewhere():
    query = "when does she mention the price"
    there = speech_features(TALK, Moment(11.5, 14.5), query)
    elsewhere = speech_features(TALK, Moment(0.5, 3.0), query)
    assert there.match > 0.8 and there.said == "the price is twenty dollars"
    assert elsewhere.match == 0.0 and elsewhere.said == "welcome back"
    assert speech_features(TALK, Moment(5.0, 9.0), query) == speech_features(TALK, Moment(5.0, 9.0), query)
    assert speech_features(TALK, Moment(5.0, 9.0), query).speech_fraction == 0.0


def test_fuse_speech_lifts_the_window_where_it_is_said():
    query = "the price is 20 dollars"
    a, b = Moment(11.5, 14.5, 0.5), Moment(0.5, 3.0, 0.6)
    fa, fb = (fuse_speech(m.score, speech_features(TALK, m, query)) for m in (a, b))
    assert fa > fb and fb == pytest.approx(0.7 * 0.6)
    with pytest.raises(ConfigError):
        fuse_speech(0.5, speech_features(TALK, a, query), weight=1.5)


def test_speech_activity_is_a_highlight_signal(tmp_path):
    clip = make_video(tmp_path / "v.mp4", duration_s=20.0, fps=4, size=(64, 48), audio=True)
    only_speech = HighlightWeights(clip=0, motion=0, scene=0, audio=0, speech=1)
    result = generic_highlights(clip, transcript=TALK, weights=only_speech)
    assert result.weights == {"speech": 1.0}
    best = result.windows[0]
    assert best.start_s < SEGMENTS[1].end_s and best.end_s > SEGMENTS[1].start_s  # the longer utterance
    without = generic_highlights(clip, weights=HighlightWeights(speech=1))
    assert "speech" not in without.weights and "--asr-model" in without.absent["speech"]
