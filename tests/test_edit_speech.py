"""Editing a talking video (espeak-ng speech at known times): silences cut on the audio to the frame, and
word / speech cuts through a real Whisper transcript (grounding_agent.media.asr)."""

from __future__ import annotations

import pytest

from grounding_agent.edit import plan_edit
from tests.speechgen import Utterance, make_talking_video


@pytest.fixture(scope="module")
def talk(tmp_path_factory):
    folder = tmp_path_factory.mktemp("edit_speech")
    return make_talking_video(
        folder / "talk.mp4",
        [
            Utterance("the price is twenty dollars", at_s=1.0),
            Utterance("basically it is very cheap", at_s=6.0),
        ],
        duration_s=10.0,
    )


@pytest.fixture(scope="module")
def transcript(talk, whisper_base, tmp_path_factory):
    from grounding_agent.media.asr import Transcriber

    cache = tmp_path_factory.mktemp("asr_cache")
    return Transcriber(whisper_base, language="en", cache_dir=cache).transcribe(talk.path)


def test_silences_between_utterances_are_cut_to_the_frame(talk):
    from grounding_agent.media.video import open_video

    frame_s = 1.0 / open_video(talk.path).avg_fps
    plan = plan_edit(talk.path, "remove the silences", pad_ms=0)  # unpadded: the sound's own edges
    kept = [(s.start_s, s.end_s) for s in plan.kept]
    truth = [(u.start_s, u.end_s) for u in talk.utterances]
    assert len(kept) == 2
    for (start, end), (want_start, want_end) in zip(kept, truth, strict=True):
        # Snapped to the nearest frame boundary: within half a frame, plus the 20-ms loudness window.
        assert abs(start - want_start) <= frame_s / 2 + 0.02 and abs(end - want_end) <= frame_s / 2 + 0.02


@pytest.mark.slow
@pytest.mark.integration
def test_word_cut_through_a_real_transcript(talk, transcript):
    word = next(w for w in talk.utterances[1].words if w.text == "basically")
    plan = plan_edit(talk.path, "cut the words 'basically'", transcript=transcript)
    cuts = [s for s in plan.segments if s.action == "cut"]
    assert len(cuts) == 1 and cuts[0].evidence[0].kind == "speech"
    # Whisper's word times are within a few tenths of a second of the synthesized ones.
    assert abs(cuts[0].start_s - word.start_s) <= 0.7 and abs(cuts[0].end_s - word.end_s) <= 0.5


@pytest.mark.slow
@pytest.mark.integration
def test_keep_only_the_speech_through_a_real_transcript(talk, transcript):
    plan = plan_edit(talk.path, "remove the parts without speech", transcript=transcript)
    truth = [(u.start_s, u.end_s) for u in talk.utterances]
    assert len(plan.kept) == 2
    for seg, (want_start, want_end) in zip(plan.kept, truth, strict=True):
        assert seg.start_s <= want_start + 0.3 and seg.end_s >= want_end - 0.3  # the speech itself is kept
        assert seg.start_s >= want_start - 0.8 and seg.end_s <= want_end + 0.8  # the silence around is not
