"""The real Whisper base model on generated talking clips (espeak-ng speech at known times, noise or music
under some): quoted-speech grounding, word timing, variant quotes, cache, chunked long audio.

The clips are made once per session and each is transcribed once (a session-wide transcript cache).
"""

from __future__ import annotations

import statistics
from pathlib import Path

import pytest

from grounding_agent.media.asr import Transcriber
from grounding_agent.media.speech_query import speech_query
from grounding_agent.media.text_match import normalize
from grounding_agent.media.transcript import Transcript
from grounding_agent.utils.temporal import tiou
from tests.speechgen import TalkingVideo, Utterance, make_talking_video

pytestmark = [pytest.mark.slow, pytest.mark.integration]

# (utterances, background): several voices and speeds, 2 sentences per clip, some over noise or music.
CORPUS: list[tuple[list[Utterance], str | None]] = [
    (
        [Utterance("my favourite colour is blue", 0.5), Utterance("let's go to the park", 4.5, "en-gb", 170)],
        None,
    ),
    (
        [
            Utterance("the meeting starts at seven", 0.8, "en-gb", 140),
            Utterance("please close the door", 5.0),
        ],
        "noise",
    ),
    (
        [
            Utterance("good morning everyone", 0.4, "en-us+f3", 150),
            Utterance("the weather is very cold today", 3.6, "en-us+f3", 160),
        ],
        None,
    ),
    (
        [
            Utterance("where did you put the keys", 1.0, "en-gb-scotland", 150),
            Utterance("they are on the kitchen table", 4.6),
        ],
        "music",
    ),
    (
        [
            Utterance("the price is twenty dollars", 0.6, "en-us", 130),
            Utterance("that is too expensive", 4.4, "en-gb-x-rp", 150),
        ],
        None,
    ),
    (
        [
            Utterance("turn left at the next corner", 0.5, "en-us+m3", 175),
            Utterance("then drive for two miles", 4.0, "en-us+m3", 175),
        ],
        "noise",
    ),
    (
        [
            Utterance("i would like a cup of coffee", 0.7, "en-029", 140),
            Utterance("with milk and sugar please", 4.5, "en-us", 150),
        ],
        None,
    ),
    (
        [
            Utterance("the train leaves in ten minutes", 0.5, "en-gb", 160),
            Utterance("we have to hurry", 4.2, "en-gb", 160),
        ],
        "music",
    ),
    (
        [
            Utterance("can you hear me now", 0.6, "en-us+f2", 145),
            Utterance("yes i can hear you clearly", 3.6, "en-us+f2", 145),
        ],
        None,
    ),
    (
        [
            Utterance("the dog is sleeping on the sofa", 0.5, "en-gb-x-rp", 150),
            Utterance("do not wake him up", 4.3, "en-us", 165),
        ],
        "noise",
    ),
]
CLIP_S = 7.5


@pytest.fixture(scope="session")
def talking_clips(tmp_path_factory) -> list[TalkingVideo]:
    folder = tmp_path_factory.mktemp("talking")
    return [
        make_talking_video(folder / f"talk{i}.mp4", utterances, duration_s=CLIP_S, background=bg)
        for i, (utterances, bg) in enumerate(CORPUS)
    ]


@pytest.fixture(scope="session")
def speech_cache(tmp_path_factory) -> Path:
    return tmp_path_factory.mktemp("transcripts")


@pytest.fixture(scope="session")
def transcripts(talking_clips, whisper_base, speech_cache) -> list[Transcript]:
    asr = Transcriber(whisper_base, language="en", cache_dir=speech_cache)
    return [asr.transcribe(clip.path) for clip in talking_clips]


def _pairs(talking_clips, transcripts):
    for clip, transcript in zip(talking_clips, transcripts):
        for spoken in clip.utterances:
            yield clip, transcript, spoken


def test_quoted_speech_queries_land_on_the_spoken_sentence(talking_clips, transcripts):
    ious = []
    for _, transcript, spoken in _pairs(talking_clips, transcripts):
        quote = speech_query(f"when does he say '{spoken.text}'")
        assert quote == spoken.text
        best = transcript.search(quote, top_k=1)
        ious.append(tiou((best[0].start_s, best[0].end_s), (spoken.start_s, spoken.end_s)) if best else 0.0)
    hit = sum(i >= 0.7 for i in ious) / len(ious)
    assert len(ious) >= 20 and hit >= 0.9, f"IoU>=0.7 on {hit:.0%}: {[round(i, 2) for i in ious]}"


def test_median_word_start_error_is_within_0_3_s(talking_clips, transcripts):
    errors = []
    for _, transcript, spoken in _pairs(talking_clips, transcripts):
        heard = [w for w in transcript.words if spoken.start_s - 1.0 <= w.start_s <= spoken.end_s + 0.5]
        by_token = {}
        for w in heard:
            for t in normalize(w.text):
                by_token.setdefault(t, w)
        for truth in spoken.words:
            (token,) = normalize(truth.text)[:1] or [""]
            if token in by_token:  # a word Whisper heard differently has no start to compare
                errors.append(abs(by_token[token].start_s - truth.start_s))
    words = sum(len(s.words) for c in talking_clips for s in c.utterances)
    assert len(errors) >= 0.8 * words, f"only {len(errors)} of {words} words recognised"
    assert statistics.median(errors) <= 0.3, f"median word start error {statistics.median(errors):.3f} s"


@pytest.mark.parametrize(
    ("clip", "utterance", "quote"),
    [
        (0, 0, "my favorite color is blue"),  # US spelling of what the test said in British spelling
        (0, 0, "my favrite colr is blu"),  # misspelled
        (1, 0, "the meeting begins at 7"),  # paraphrased verb, digit
        (4, 0, "the price is 20 dollars"),
        (3, 0, "where have you put my keys"),  # paraphrased
    ],
)
def test_variant_quote_still_lands(talking_clips, transcripts, clip, utterance, quote):
    spoken = talking_clips[clip].utterances[utterance]
    best = transcripts[clip].search(quote, top_k=1)
    assert best, f"no match for {quote!r} in {transcripts[clip].text!r}"
    assert tiou((best[0].start_s, best[0].end_s), (spoken.start_s, spoken.end_s)) >= 0.5


def test_second_transcriber_reads_the_cache_and_skips_the_model(
    talking_clips, transcripts, whisper_base, speech_cache
):
    asr = Transcriber(whisper_base, language="en", cache_dir=speech_cache)
    again = asr.transcribe(talking_clips[0].path)
    assert again.from_cache and again == transcripts[0]
    assert (asr.stats.hits, asr.stats.misses, asr.stats.audio_s_transcribed) == (1, 0, 0.0)
    assert asr._model is None  # a cache hit never loads Whisper


def test_vad_regions_cover_the_speech_and_skip_the_silence(talking_clips, transcripts):
    for clip, transcript in zip(talking_clips, transcripts):
        for spoken in clip.utterances:
            assert transcript.speech_fraction(spoken.start_s, spoken.end_s) >= 0.8
        assert transcript.speech_fraction(0.0, clip.utterances[0].start_s - 0.15) <= 0.5


def test_long_audio_is_chunked_in_pauses_without_losing_words(tmp_path, whisper_base):
    """Chunks of 8 s over a 22 s clip: every sentence is still transcribed, once, at its time."""
    sentences = [
        Utterance("first we open the box", 0.5),
        Utterance("then we read the letter", 7.0),
        Utterance("finally we write an answer", 14.5),
    ]
    clip = make_talking_video(tmp_path / "long.mp4", sentences, duration_s=22.0)
    asr = Transcriber(whisper_base, language="en", chunk_s=8.0, cache_dir=tmp_path / "cache")
    transcript = asr.transcribe(clip.path)
    assert transcript.duration_s == pytest.approx(22.0, abs=0.2)
    for spoken in clip.utterances:
        (best,) = transcript.search(spoken.text, top_k=1)
        assert tiou((best.start_s, best.end_s), (spoken.start_s, spoken.end_s)) >= 0.7
    tokens = normalize(transcript.text)
    assert tokens.count("letter") == 1 and tokens.count("box") == 1  # no word doubled across a chunk cut
