"""Speech arousal from prosody: loudness, pitch and speaking rate within speech, and an applause cue.

    prosody = analyze_prosody("talk.mp4", transcript=transcript)   # transcript optional
    prosody.arousal()     # Curve "arousal": z-scored within the video, high = louder, higher, faster speech
    prosody.applause()    # Curve "applause": loud broadband noise (claps, cheering, crowd)

Per analysis frame (64 ms, hop 20 ms, 16 kHz mono streamed with `media.audio.iter_audio`): RMS level,
spectral flatness and F0 from YIN (de Cheveigne & Kawahara 2002; vectorised with FFTs, no pitch library
here). Speech is where the VAD hears it (Silero through `media.vad`, or the transcript's speech regions).
Per time step, over a span around it: loudness of the speech, the median and the 10-90 % range of its pitch
in semitones, and the speaking rate (words per second of speech from Whisper's word times when a transcript
is given, else envelope peaks per second of speech: a syllable-rate proxy). Each feature is z-scored within
the video with a floor on its spread (`PROSODY.spread_*`), and arousal is their mean (pitch level and range
count half each). Steps without speech get the video's lowest arousal.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
from numpy.lib.stride_tricks import sliding_window_view

from grounding_agent.defaults import PROSODY
from grounding_agent.media.audio import iter_audio
from grounding_agent.media.vad import SAMPLE_RATE, voice_regions
from grounding_agent.types import Curve

if TYPE_CHECKING:
    from grounding_agent.media.transcript import Transcript

__all__ = ["Prosody", "analyze_prosody", "frame_features", "yin_f0"]

# Frames quieter than this (dBFS) are silence: no pitch, no flatness worth trusting.
QUIET_DB = -60.0


def yin_f0(
    frames: np.ndarray,
    sample_rate: int = SAMPLE_RATE,
    *,
    fmin_hz: float = PROSODY.pitch_min_hz,
    fmax_hz: float = PROSODY.pitch_max_hz,
    threshold: float = PROSODY.yin_threshold,
) -> np.ndarray:
    """F0 in Hz of each row of `frames` (F, N) by YIN; NaN where no period is clear (unvoiced, noise)."""
    n = frames.shape[1]
    tau_max = min(int(np.ceil(sample_rate / fmin_hz)), n // 2)
    tau_min = max(2, int(sample_rate / fmax_hz))
    w = n - tau_max
    size = 1 << int(np.ceil(np.log2(n + w)))
    # r(tau) = sum_{j<w} x_j x_{j+tau}, for all frames at once
    acf = np.fft.irfft(np.conj(np.fft.rfft(frames[:, :w], size)) * np.fft.rfft(frames, size), size)
    acf = acf[:, : tau_max + 1]
    sq = np.concatenate([np.zeros((len(frames), 1)), np.cumsum(frames.astype(np.float64) ** 2, axis=1)], 1)
    taus = np.arange(tau_max + 1)
    energy = sq[:, taus + w] - sq[:, taus]  # sum_{j=tau}^{tau+w-1} x_j^2
    diff = np.maximum(energy[:, :1] + energy - 2.0 * acf, 0.0)
    cmnd = np.ones_like(diff)
    cmnd[:, 1:] = diff[:, 1:] * taus[1:] / np.maximum(np.cumsum(diff[:, 1:], axis=1), 1e-12)
    seg = cmnd[:, tau_min - 1 : tau_max + 1]  # one lag either side, for the local-minimum test
    dip = (seg[:, 1:-1] < threshold) & (seg[:, 1:-1] <= seg[:, 2:]) & (seg[:, 1:-1] <= seg[:, :-2])
    found = dip.any(axis=1)
    tau = dip.argmax(axis=1) + tau_min
    rows = np.arange(len(frames))
    a, b, c = cmnd[rows, tau - 1], cmnd[rows, tau], cmnd[rows, np.minimum(tau + 1, tau_max)]
    curvature = a - 2 * b + c
    shift = np.where(curvature > 1e-12, 0.5 * (a - c) / np.where(curvature > 1e-12, curvature, 1.0), 0.0)
    return np.where(found, sample_rate / (tau + np.clip(shift, -0.5, 0.5)), np.nan)


def frame_features(frames: np.ndarray, sample_rate: int = SAMPLE_RATE) -> np.ndarray:
    """(F, 3): level in dBFS, spectral flatness (0 tonal .. 1 white noise), F0 in Hz (NaN unvoiced)."""
    level = 10 * np.log10(np.maximum((frames.astype(np.float64) ** 2).mean(axis=1), 1e-12))
    power = np.abs(np.fft.rfft(frames * np.hanning(frames.shape[1]), axis=1))[:, 1:] ** 2 + 1e-12
    flatness = np.exp(np.log(power).mean(axis=1)) / power.mean(axis=1)
    f0 = yin_f0(frames, sample_rate)
    quiet = level < QUIET_DB
    return np.stack([level, np.where(quiet, 0.0, flatness), np.where(quiet, np.nan, f0)], axis=1)


@dataclass(frozen=True, eq=False)
class Prosody:
    """Prosodic features per time step; NaN where a step has too little speech for the feature.

    Attributes:
        times_s: step times (each summarising `PROSODY.span_s` around it).
        loudness_db: level of the speech in the span.
        pitch_st: median F0 of its voiced frames, semitones above 100 Hz.
        pitch_range_st: their 10-90 % range, in semitones.
        rate_per_s: words (or syllable peaks) per second of speech.
        level_db, flatness: level and mean spectral flatness of all the audio in the span.
        speech_share: share of the span that is speech.
        rate_unit: "words" (from a transcript) or "syllables" (envelope peaks).
        speech_regions_s: where the VAD (or the transcript) heard speech.
    """

    times_s: np.ndarray
    loudness_db: np.ndarray
    pitch_st: np.ndarray
    pitch_range_st: np.ndarray
    rate_per_s: np.ndarray
    level_db: np.ndarray
    flatness: np.ndarray
    speech_share: np.ndarray
    rate_unit: str
    speech_regions_s: tuple[tuple[float, float], ...]

    @property
    def has_speech(self) -> bool:
        return bool(np.isfinite(self.loudness_db).any())

    def arousal(self) -> Curve | None:
        """Mean of the z-scored loudness, pitch (level and range, half each) and rate; None without speech."""
        if not self.has_speech:
            return None
        parts = np.stack(
            [
                _z(self.loudness_db, PROSODY.spread_db),
                _z(self.pitch_st, PROSODY.spread_st),
                _z(self.pitch_range_st, PROSODY.spread_st),
                _z(self.rate_per_s, PROSODY.spread_rate),
            ]
        )
        weights = np.array([1.0, 0.5, 0.5, 1.0])[:, None] * np.isfinite(parts)
        total = weights.sum(axis=0)
        score = np.where(
            total > 0, (np.nan_to_num(parts) * weights).sum(axis=0) / np.maximum(total, 1e-12), np.nan
        )
        score = np.where(total > 0, score, np.nanmin(score))
        return Curve("arousal", self.times_s, score)

    def applause(self) -> Curve:
        """Loud and noise-like at once: min of the z-scored level and flatness, floored at 0."""
        z_level = _z(self.level_db, PROSODY.spread_db)
        z_flat = _z(self.flatness, PROSODY.spread_flatness)
        return Curve("applause", self.times_s, np.maximum(np.minimum(z_level, z_flat), 0.0))

    def describe(self, start_s: float, end_s: float) -> str:
        """How the speech in [start_s, end_s] differs from the video's median: 'loudness +8.0 dB, pitch +5.1 st'."""
        inside = (self.times_s >= start_s) & (self.times_s <= end_s)
        parts = []
        for label, values, unit in (
            ("loudness", self.loudness_db, "dB"),
            ("pitch", self.pitch_st, "st"),
            ("pitch range", self.pitch_range_st, "st"),
            (f"{self.rate_unit}/s", self.rate_per_s, ""),
        ):
            here, typical = values[inside & np.isfinite(values)], values[np.isfinite(values)]
            if len(here) and len(typical):
                delta = float(np.median(here) - np.median(typical))
                parts.append(f"{label} {delta:+.1f}{unit and ' ' + unit}")
        return ", ".join(parts) or "no speech"


def _z(values: np.ndarray, floor: float) -> np.ndarray:
    """(x - mean) / max(std, floor) over the finite values; NaN stays NaN."""
    ok = np.isfinite(values)
    if not ok.any():
        return np.full(len(values), np.nan)
    mean, std = values[ok].mean(), values[ok].std()
    return (values - mean) / max(std, floor)


def _frames_of(
    path: str | Path, frame: int, hop: int, *, vad: bool = True
) -> tuple[np.ndarray, list[tuple[int, int]], int]:
    """Per-frame features over the whole audio, streamed; plus the VAD's regions (if `vad`) and the sample count."""
    feats, regions = [], []
    pending, offset = np.zeros(0, np.float32), 0
    for block in iter_audio(path, sample_rate=SAMPLE_RATE):
        if vad:
            regions += [(a + offset, b + offset) for a, b in voice_regions(block)]
        offset += len(block)
        pending = np.concatenate([pending, block])
        count = (len(pending) - frame) // hop + 1 if len(pending) >= frame else 0
        if count:
            feats.append(frame_features(sliding_window_view(pending, frame)[::hop][:count], SAMPLE_RATE))
            pending = pending[count * hop :]
    return (np.concatenate(feats) if feats else np.zeros((0, 3))), regions, offset


def _percentile_rows(values: np.ndarray, q: float) -> np.ndarray:
    """The q-quantile of each row's finite values (NaN for a row without any), without warnings."""
    ok = np.isfinite(values)
    ordered = np.sort(np.where(ok, values, np.inf), axis=1)
    n = ok.sum(axis=1)
    idx = np.clip(np.floor(q * (n - 1)).astype(int), 0, values.shape[1] - 1)
    return np.where(n > 0, ordered[np.arange(len(values)), idx], np.nan)


def _syllable_peaks(level_db: np.ndarray, speech: np.ndarray) -> np.ndarray:
    """1 at envelope peaks within speech: a local max over +-60 ms with a dip of `syllable_dip_db` around."""
    smooth = np.convolve(level_db, np.ones(3) / 3, mode="same")
    pad = np.pad(smooth, 5, mode="edge")
    near_max = sliding_window_view(pad[2:-2], 7).max(axis=1)
    wide_min = sliding_window_view(pad, 11).min(axis=1)
    return ((smooth >= near_max) & (smooth - wide_min >= PROSODY.syllable_dip_db) & speech).astype(float)


def analyze_prosody(
    path: str | Path,
    *,
    transcript: Transcript | None = None,
    step_s: float = PROSODY.step_s,
    span_s: float = PROSODY.span_s,
) -> Prosody | None:
    """Prosodic features of a file's audio per `step_s`; None when it has no audio (or too little)."""
    frame, hop = round(PROSODY.frame_s * SAMPLE_RATE), round(PROSODY.frame_hop_s * SAMPLE_RATE)
    given = transcript is not None and bool(transcript.speech_regions)
    feats, vad, n_samples = _frames_of(path, frame, hop, vad=not given)
    if not len(feats):
        return None
    centres = (np.arange(len(feats)) * hop + frame / 2) / SAMPLE_RATE
    if given:
        regions = tuple((float(a), float(b)) for a, b in transcript.speech_regions)
    else:
        regions = tuple((a / SAMPLE_RATE, b / SAMPLE_RATE) for a, b in vad)
    speech = np.zeros(len(feats), bool)
    for a, b in regions:
        speech |= (centres >= a) & (centres < b)
    level, flatness, f0 = feats.T
    n_steps = max(1, int(np.ceil(n_samples / SAMPLE_RATE / step_s - 1e-9)))
    spans = _Spans(n_steps, step_s / PROSODY.frame_hop_s, span_s / PROSODY.frame_hop_s)
    speech_frames = spans.total(speech.astype(float))
    speech_s = speech_frames * PROSODY.frame_hop_s
    enough = speech_s >= PROSODY.min_speech_s
    speech_power = spans.total(np.where(speech, 10 ** (level / 10), 0.0)) / np.maximum(speech_frames, 1)
    with np.errstate(invalid="ignore"):  # NaN F0 (unvoiced) stays NaN
        pitch = spans.windows(np.where(speech, 12 * np.log2(f0 / 100.0), np.nan))
    voiced = np.isfinite(pitch).sum(axis=1) >= PROSODY.min_voiced_frames
    if transcript is not None and transcript.words:
        mids = np.array([(w.start_s + w.end_s) / 2 for w in transcript.words])
        hits = np.bincount(np.searchsorted(centres, mids).clip(0, len(feats) - 1), minlength=len(feats))
        unit = "words"
    else:
        hits, unit = _syllable_peaks(level, speech), "syllables"
    return Prosody(
        times_s=(np.arange(n_steps) + 0.5) * step_s,
        loudness_db=np.where(enough, _db(speech_power), np.nan),
        pitch_st=np.where(voiced, _percentile_rows(pitch, 0.5), np.nan),
        pitch_range_st=np.where(voiced, _percentile_rows(pitch, 0.9) - _percentile_rows(pitch, 0.1), np.nan),
        rate_per_s=np.where(enough, spans.total(hits.astype(float)) / np.maximum(speech_s, 1e-9), np.nan),
        level_db=_db(spans.total(10 ** (level / 10)) / np.maximum(spans.total(np.ones(len(level))), 1)),
        flatness=spans.total(flatness) / np.maximum(spans.total(np.ones(len(level))), 1),
        speech_share=speech_s / span_s,
        rate_unit=unit,
        speech_regions_s=regions,
    )


def _db(power: np.ndarray) -> np.ndarray:
    return 10 * np.log10(np.maximum(power, 1e-12))


class _Spans:
    """Windows of `span` frames centred on each step (every `per_step` frames), past the ends padded."""

    def __init__(self, n_steps: int, per_step: float, span: float):
        self.half = max(1, round(span / 2))
        self.centre = np.round((np.arange(n_steps) + 0.5) * per_step).astype(int)
        self.tail = int(self.centre[-1]) + self.half + 1

    def windows(self, values: np.ndarray) -> np.ndarray:
        """(n_steps, 2 * half), NaN outside the audio."""
        padded = np.concatenate([np.full(self.half, np.nan), values, np.full(self.tail, np.nan)])
        return sliding_window_view(padded, 2 * self.half)[self.centre]

    def total(self, values: np.ndarray) -> np.ndarray:
        """Sum over each window (of finite values)."""
        cum = np.concatenate([[0.0], np.cumsum(np.nan_to_num(values))])
        lo = np.clip(self.centre - self.half, 0, len(values))
        hi = np.clip(self.centre + self.half, 0, len(values))
        return cum[hi] - cum[lo]
