"""Speech alerts (`live.alerts.SpeechAlerts`) on real Whisper base int8 and espeak-ng speech: why
bench/live.py found 20 of 22 phrases, and that the fix keeps other speech from alerting.

The two missed phrases were whole utterances, transcribed in one call each (no chunk boundary, no cooldown):
Whisper base hears espeak-ng's "copper kettle" as "Copper Catalyst" / "Copper Cattle" and "purple meadow" as
"purple metal", greedy or beam 5, per utterance or over the whole file. The alerts' phrases are known before
the stream starts, so they go to Whisper as hotwords, which biases it towards them.
"""

from __future__ import annotations

from pathlib import Path

import av
import numpy as np
import pytest
from faster_whisper.transcribe import Segment, get_compression_ratio

from grounding_agent.live.alerts import Hit, SpeechAlerts, read_alert
from grounding_agent.media.asr import load_whisper
from grounding_agent.media.vad import SAMPLE_RATE
from tests.speechgen import Spoken, Utterance, make_talking_video

MISHEARD = ("copper kettle", "purple meadow")
OTHERS = ("blue harbour", "silver station", "winter palace", "kingfisher lake", "golden bridge")
UTTERANCES = [
    Utterance("now we visit the copper kettle", 1.0),
    Utterance("now we visit the purple meadow", 5.2),
    Utterance("the kettle is on the stove", 9.4),  # no alert phrase in it: nothing may fire
]
DURATION_S = 13.5


@pytest.fixture(scope="module")
def talk(tmp_path_factory) -> tuple[np.ndarray, tuple[Spoken, ...]]:
    """16 kHz mono audio of the utterances (through AAC, as a stream carries it) and what was said when."""
    clip = make_talking_video(
        tmp_path_factory.mktemp("speech") / "talk.mp4", UTTERANCES, duration_s=DURATION_S
    )
    return _audio(clip.path), clip.utterances


@pytest.fixture(scope="module")
def whisper(whisper_base):
    return load_whisper(whisper_base, compute_type="int8")


def _audio(path: Path) -> np.ndarray:
    resampler = av.AudioResampler(format="flt", layout="mono", rate=SAMPLE_RATE)
    with av.open(str(path)) as c:
        chunks = [f.to_ndarray().reshape(-1) for fr in c.decode(audio=0) for f in resampler.resample(fr)]
    return np.concatenate(chunks)


def _watch(audio: np.ndarray, whisper, **kw) -> tuple[list[Hit], SpeechAlerts]:
    """Feed the audio in 1024-sample packets, as the watch does, and flush at the end."""
    alerts = [read_alert(f"when someone says '{p}'") for p in (*MISHEARD, *OTHERS)]
    speech = SpeechAlerts(alerts, whisper, language="en", **kw)
    speech.wait_when_behind = True  # nothing skipped: every utterance is transcribed
    hits = []
    for i in range(0, audio.size, 1024):
        hits += speech.feed(audio[i : i + 1024], i / SAMPLE_RATE)
    return hits + speech.flush(), speech


@pytest.mark.slow
def test_phrases_whisper_mishears_alone_alert_with_the_alerts_as_hotwords(talk, whisper):
    audio, spoken = talk
    hits, _ = _watch(audio, whisper)
    assert sorted(h.alert.target for h in hits) == sorted(MISHEARD)  # and the kettle on the stove: nothing
    for hit in hits:
        truth = spoken[MISHEARD.index(hit.alert.target)]
        assert abs(hit.end_s - truth.end_s) < 1.0 and hit.start_s >= truth.words[-2].start_s - 1.0


@pytest.mark.slow
def test_without_hotwords_whisper_mishears_both_phrases(talk, whisper):
    """The root cause, pinned: the same audio and matcher, no hotwords, no alert (what bench/live.py saw)."""
    audio, _ = talk
    hits, speech = _watch(audio, whisper, hotwords=False)
    heard = " ".join(w.text for w in speech.words)
    assert hits == [], heard  # e.g. "Now we visit the Copper Catalyst. How we visit the purple metal ..."


def test_made_up_segments_are_dropped():
    """Segments measured on this audio with hotwords: speech ("use the discount code R"), what Whisper decoded
    in the pause after it ("palace, mountain palace, ...": no-speech 0.524, log-probability -1.714), and the
    loop it fell into after "velvet curtain" when the pause was decoded again (no-speech 0.70, -0.21)."""

    def segment(text: str, no_speech: float, logprob: float) -> Segment:
        return Segment(0, 0, 0.0, 1.0, text, [], logprob, get_compression_ratio(text), no_speech, [], 0.0)

    speech = SpeechAlerts([read_alert("when someone says 'winter palace'")], whisper=None)
    assert speech._heard(segment(" use the discount code R", 0.013, -0.569))
    assert speech._heard(segment(" use this count code, how?", 0.015, -1.151))  # unsure, but speech
    assert not speech._heard(segment(" palace, mountain palace, mountain palace", 0.524, -1.714))
    assert not speech._heard(segment(" bridge", 0.545, -0.727))
    loop = " and green" + ", silver station" * 7
    assert not speech._heard(segment(loop, 0.70, -0.21))
    assert speech.dropped == 3
