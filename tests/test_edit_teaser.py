"""A teaser of an asked length: whole sentences (transcript segments) when there is a transcript, within a
second of the length; highlight windows grown or trimmed to the length otherwise."""

from __future__ import annotations

import pytest

from grounding_agent.edit import plan_edit
from grounding_agent.edit.teaser import fit_windows, pick_sentences
from tests.speechgen import Utterance, make_talking_video

SENTENCES = [
    "and welcome to the show", "today we talk about the weather", "it was cold in the morning",
    "then the sun came out", "we went for a long walk", "the river was very high",
    "my dog jumped into the water", "that was the best part", "thank you for watching",
]  # fmt: skip


def test_pick_sentences_fits_the_length_or_says_none() -> None:
    spans = [(0, 3), (4, 6.5), (8, 12), (13, 15)]
    picked = pick_sentences(spans, [0.1, 0.9, 0.5, 0.2], 6.0, 0.5)
    assert picked is not None and abs(sum(spans[i][1] - spans[i][0] for i in picked) - 6.0) <= 0.5
    assert 1 in picked  # the best sentence is in
    assert pick_sentences([(0, 5)], [1.0], 10.0, 0.5) is None


def test_windows_grow_or_shrink_to_the_length_overlaps_counted_once() -> None:
    windows = [(4.0, 8.0), (18.0, 20.0), (16.0, 24.0), (6.0, 12.0)]
    for total in (3.0, 15.0, 30.0):
        spans = fit_windows(windows, total, 40.0)
        assert abs(sum(b - a for a, b in spans) - total) < 0.01
        assert all(b0 < a1 for (_, b0), (a1, _) in zip(spans, spans[1:]))


@pytest.fixture(scope="module")
def talk(tmp_path_factory):
    utterances, t = [], 0.5
    for text in SENTENCES:
        utterances.append(Utterance(text, t))
        t += 0.45 * len(text.split()) + 1.6
    return make_talking_video(tmp_path_factory.mktemp("teaser") / "talk.mp4", utterances, duration_s=t + 0.5)


@pytest.mark.slow
@pytest.mark.integration
def test_a_15_second_teaser_is_15_s_of_whole_sentences(talk, whisper_base, tmp_path) -> None:
    from grounding_agent.media.asr import Transcriber

    transcript = Transcriber(whisper_base, language="en", cache_dir=tmp_path).transcribe(talk.path)
    plan = plan_edit(talk.path, "a 15-second teaser", transcript=transcript)
    assert abs(plan.kept_s - 15.0) <= 1.0, plan.kept_s
    starts = [u.start_s for u in talk.utterances]
    ends = [u.end_s for u in talk.utterances]
    for seg in plan.kept:  # each kept stretch starts at a sentence's start and ends at a sentence's end
        assert min(abs(seg.start_s - s) for s in starts) <= 0.35, (seg.start_s, starts)
        assert min(abs(seg.end_s - e) for e in ends) <= 0.35, (seg.end_s, ends)
    # No silence kept between sentences: every kept stretch is mostly speech.
    spoken = sum(
        max(0.0, min(s.end_s, e) - max(s.start_s, a)) for s in plan.kept for a, e in zip(starts, ends)
    )
    assert spoken >= 0.85 * plan.kept_s


def test_a_teaser_without_a_transcript_has_the_asked_length(talk) -> None:
    plan = plan_edit(talk.path, "a 15-second teaser")
    assert abs(plan.kept_s - 15.0) <= 1.0, plan.kept_s
