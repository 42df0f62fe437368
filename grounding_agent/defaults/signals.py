"""Highlight signals: speech arousal (prosody), speech emotion, title queries, per-window evidence."""

from __future__ import annotations

from dataclasses import dataclass
from types import MappingProxyType

__all__: list[str] = []


@dataclass(frozen=True)
class ProsodyDefaults:
    """Speech arousal from prosody (`highlights.prosody`): how the audio is cut and what counts as a change.

    Attributes:
        step_s: one arousal value per this many seconds.
        span_s: each value summarises this much audio around its time.
        frame_s, frame_hop_s: the pitch / loudness / flatness analysis frame and its hop.
        pitch_min_hz, pitch_max_hz: the voice's F0 search range (YIN).
        yin_threshold: YIN's cumulative-mean-normalised-difference threshold (the paper: 0.1-0.15 for clean speech;
            higher keeps pitch under noise such as applause).
        min_voiced_frames: fewer voiced frames in a span give no pitch for it.
        min_speech_s: a span with less speech than this has no loudness, pitch or rate.
        spread_db, spread_st, spread_rate: floors on each feature's spread when z-scoring it within a
            video, so a steady voice's jitter is not blown up into excitement.
        spread_flatness: the same floor for spectral flatness (the applause cue).
        syllable_dip_db: an envelope peak counts as a syllable when the level dips this much around it.
    """

    step_s: float = 0.5
    span_s: float = 2.0
    frame_s: float = 0.064
    frame_hop_s: float = 0.02
    pitch_min_hz: float = 70.0
    pitch_max_hz: float = 500.0
    yin_threshold: float = 0.25
    min_voiced_frames: int = 5
    min_speech_s: float = 0.5
    spread_db: float = 3.0
    spread_st: float = 2.0
    spread_rate: float = 0.75
    spread_flatness: float = 0.05
    syllable_dip_db: float = 3.0


@dataclass(frozen=True)
class EmotionDefaults:
    """Speech emotion through a transformers audio-classification model (`highlights.emotion`).

    Attributes:
        chunk_s: speech is cut into pieces of at most this long, each classified on its own.
        min_chunk_s: shorter pieces are dropped (too little to classify).
        batch_clips: pieces per forward pass.
    """

    chunk_s: float = 4.0
    min_chunk_s: float = 0.5
    batch_clips: int = 8


@dataclass(frozen=True)
class SignalWeights:
    """Default fusion weights of the signals this module adds (`windows.HighlightWeights`)."""

    arousal: float = 1.0
    applause: float = 0.5
    emotion: float = 1.0
    title: float = 1.0
    head: float = 1.0
    like: float = 1.0


# Emotion label -> arousal (0 calm .. 1 aroused), matched on the lower-cased label, then its first 3 letters
# (SUPERB's "ang"/"hap"/"neu"/"sad", RAVDESS-style "angry"/"calm"/"fearful"/"surprised", ...).
EMOTION_AROUSAL = MappingProxyType(
    {
        "angry": 1.0,
        "surprised": 1.0,
        "excited": 1.0,
        "happy": 0.8,
        "fearful": 0.8,
        "frustrated": 0.6,
        "disgust": 0.5,
        "neutral": 0.0,
        "calm": 0.0,
        "sad": 0.0,
        "bored": 0.0,
    }
)
# Evidence: a signal "lifted" a window when its mean per-clip score there is this far above its median.
EVIDENCE_MIN_LIFT = 0.1

PROSODY = ProsodyDefaults()
EMOTION = EmotionDefaults()
SIGNAL_WEIGHTS = SignalWeights()
__all__ += [
    "EMOTION",
    "EMOTION_AROUSAL",
    "EVIDENCE_MIN_LIFT",
    "PROSODY",
    "SIGNAL_WEIGHTS",
    "EmotionDefaults",
    "ProsodyDefaults",
    "SignalWeights",
]
