"""Online highlights: model-free signals scored as the stream arrives, in constant memory, with a look-ahead
of at most `delay_s`.

    online = OnlineHighlights(delay_s=4)
    online.add_audio(samples_16k, t0_s); online.add_frame(rgb, t_s)
    for h in online.poll(now_s): ...            # HighlightHit(start_s, end_s, score, signals)

The stream is cut in 1-second bins. Each finished bin gets its loudness (RMS dBFS), motion (mean absolute
difference of consecutive sampled frames, 32x32 grey), scene change (colour-histogram distance to the
previous frame) and, when it holds voiced speech, speech arousal (`highlights.prosody`'s frame features on
the bin's own audio: the level of its voiced frames, their median pitch and 10-90 % pitch range, each a
running z-score, pitch counting half; no look-ahead beyond the bin, no speaking rate: that needs whole
utterances); each signal is a z-score over exponentially weighted running statistics (half-life
`halflife_s`, so memory is constant and the scale follows the stream); a bin's score is their mean. A bin
is a highlight when its score reaches `z` and it is the highest within `delay_s` on either side: it is
known `delay_s` after it ends, never later. The running top-k keeps the best `top_k` so far.
With a `saliency` model (`highlights.clip.ClipSaliency`), each sampled frame is also encoded and its best
cosine similarity to the highlight prompts (`defaults.HIGHLIGHTS.prompts`) kept per bin (the bin's max):
the "clip" signal, a running z-score like the others. Learned heads are not scored online (yet).
"""

from __future__ import annotations

import heapq
import math
from collections import deque
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Protocol

import numpy as np

from grounding_agent.defaults import HIGHLIGHTS, LIVE, PROSODY
from grounding_agent.highlights.prosody import frame_features
from grounding_agent.media.vad import SAMPLE_RATE

__all__ = ["HighlightHit", "OnlineHighlights", "RunningStats"]

BIN_S = 1.0
SETTLE_S = 0.5  # a bin is scored this long after it ends (audio and video arrive a little apart)
MIN_SAMPLES = 5  # bins seen before a signal's z-score counts
# The smallest spread each signal is measured against: 2 dB of loudness, 2 grey levels of motion, 5 % of
# the colour histogram moving.
MIN_STD = {"loudness": 2.0, "motion": 2.0, "scene": 0.05, "clip": 0.01}
# Speech arousal's parts (weight, spread floor): the voiced frames' level, median pitch, pitch range.
AROUSAL = {"voice_db": (1.0, PROSODY.spread_db), "pitch_st": (0.5, PROSODY.spread_st),
           "pitch_range_st": (0.5, PROSODY.spread_st)}  # fmt: skip
FRAME, HOP = round(PROSODY.frame_s * SAMPLE_RATE), round(PROSODY.frame_hop_s * SAMPLE_RATE)


class RunningStats:
    """Exponentially weighted mean and variance (one number each: constant memory); `min_std` keeps a
    steady signal's tiny wobbles from reading as many standard deviations."""

    def __init__(self, halflife: float, min_std: float):
        self.alpha = 1.0 - 0.5 ** (1.0 / max(halflife, 1.0))
        self.mean, self.var, self.n = 0.0, 0.0, 0
        self.min_std = min_std

    def z(self, x: float) -> float:
        """x's z-score against what came before, then x is added."""
        std = max(math.sqrt(self.var), self.min_std)
        z = (x - self.mean) / std if self.n >= MIN_SAMPLES else 0.0
        if self.n == 0:
            self.mean = x
        else:
            d = x - self.mean
            self.mean += self.alpha * d
            self.var = (1 - self.alpha) * (self.var + self.alpha * d * d)
        self.n += 1
        return z


class FrameScorer(Protocol):
    """What the "clip" signal needs of `highlights.clip.ClipSaliency`."""

    model_id: str

    def encode_frames(self, pixels: np.ndarray) -> np.ndarray: ...

    def embed_texts(self, texts: Sequence[str]) -> np.ndarray: ...


@dataclass(frozen=True)
class HighlightHit:
    start_s: float
    end_s: float
    score: float
    signals: dict[str, float]
    clip_sim: float | None = None  # the bin's best frame-prompt similarity, with a saliency model


class _Bin:
    __slots__ = ("energy", "samples", "motion", "scene", "audio", "clip")

    def __init__(self) -> None:
        self.energy, self.samples, self.motion, self.scene = 0.0, 0, 0.0, 0.0
        self.clip: float | None = None
        self.audio: list[np.ndarray] = []  # the bin's 16 kHz audio (one second at most), for arousal


class OnlineHighlights:
    """See the module docstring."""

    def __init__(
        self,
        *,
        delay_s: float = LIVE.delay_s,
        z: float = LIVE.highlight_z,
        top_k: int = LIVE.highlight_top_k,
        halflife_s: float = LIVE.stats_halflife_s,
        saliency: FrameScorer | None = None,
        prompts: tuple[str, ...] = HIGHLIGHTS.prompts,
    ):
        self.saliency = saliency
        self._prompt_vectors = saliency.embed_texts(list(prompts)) if saliency is not None else None
        self.radius = max(0, int(delay_s // BIN_S))
        self.z, self.top_k = z, top_k
        floors = MIN_STD | {name: floor for name, (_, floor) in AROUSAL.items()}
        self.stats = {name: RunningStats(halflife_s / BIN_S, floor) for name, floor in floors.items()}
        self._bins: dict[int, _Bin] = {}
        self._window: deque[tuple[int, float, dict[str, float]]] = deque(maxlen=2 * self.radius + 1)
        self._clip: deque[float | None] = deque(maxlen=2 * self.radius + 1)  # each window bin's similarity
        self._prev: tuple[np.ndarray, np.ndarray] | None = None
        self._next_bin = 0
        self.top: list[tuple[float, float]] = []  # min-heap of (score, start_s)

    def _bin(self, t_s: float) -> _Bin | None:
        k = int(t_s // BIN_S)
        if k < self._next_bin:
            return None  # already scored: late data is dropped
        return self._bins.setdefault(k, _Bin())

    def add_audio(self, samples: np.ndarray, t0_s: float) -> None:
        b = self._bin(t0_s)
        if b is not None and samples.size:
            b.energy += float(np.dot(samples, samples))
            b.samples += samples.size
            b.audio.append(samples)

    def add_frame(self, pixels: np.ndarray, t_s: float) -> None:
        small = _grey(pixels)
        hist = np.concatenate([np.histogram(pixels[..., c], bins=8, range=(0, 256))[0] for c in range(3)])
        hist = hist / max(1, hist.sum())
        b = self._bin(t_s)
        if b is not None and self.saliency is not None and self._prompt_vectors is not None:
            sim = float((self.saliency.encode_frames(pixels[None]) @ self._prompt_vectors.T).max())
            b.clip = sim if b.clip is None else max(b.clip, sim)
        if self._prev is not None and b is not None:
            b.motion = max(b.motion, float(np.abs(small - self._prev[0]).mean()))
            b.scene = max(b.scene, float(0.5 * np.abs(hist - self._prev[1]).sum()))
        self._prev = (small, hist)

    def poll(self, now_s: float) -> list[HighlightHit]:
        """Score the bins that ended at least SETTLE_S before `now_s`; the highlights now known."""
        hits = []
        while (self._next_bin + 1) * BIN_S + SETTLE_S <= now_s:
            k = self._next_bin
            self._next_bin += 1
            hit = self._score(k, self._bins.pop(k, _Bin()))
            if hit is not None:
                hits.append(hit)
        return hits

    def _score(self, k: int, b: _Bin) -> HighlightHit | None:
        signals = {"motion": self.stats["motion"].z(b.motion), "scene": self.stats["scene"].z(b.scene)}
        if b.samples:
            rms = math.sqrt(b.energy / b.samples)
            signals["loudness"] = self.stats["loudness"].z(20 * math.log10(max(rms, 1e-5)))
            arousal = self._arousal(np.concatenate(b.audio))
            if arousal is not None:
                signals["arousal"] = arousal
        if b.clip is not None:
            signals["clip"] = self.stats["clip"].z(b.clip)
        score = float(np.mean(list(signals.values())))
        self._window.append((k, score, signals))
        self._clip.append(b.clip)
        if len(self._window) < self._window.maxlen:
            return None
        c, s, sig = self._window[self.radius]
        clip_sim = self._clip[self.radius]
        if s < self.z or s < max(x[1] for x in self._window):
            return None
        heapq.heappush(self.top, (s, c * BIN_S))
        if len(self.top) > self.top_k:
            heapq.heappop(self.top)
        return HighlightHit(c * BIN_S, (c + 1) * BIN_S, s, {n: round(v, 3) for n, v in sig.items()}, clip_sim)

    def _arousal(self, audio: np.ndarray) -> float | None:
        """The bin's speech arousal (see the module docstring); None without enough voiced frames."""
        if audio.size < FRAME:
            return None
        level, _, f0 = frame_features(np.lib.stride_tricks.sliding_window_view(audio, FRAME)[::HOP]).T
        voiced = np.isfinite(f0)
        if voiced.sum() < PROSODY.min_voiced_frames:
            return None
        pitch = 12 * np.log2(f0[voiced] / 100.0)
        parts = {"voice_db": 10 * math.log10(max(float(np.mean(10 ** (level[voiced] / 10))), 1e-12)),
                 "pitch_st": float(np.median(pitch)),
                 "pitch_range_st": float(np.percentile(pitch, 90) - np.percentile(pitch, 10))}  # fmt: skip
        z = {name: self.stats[name].z(value) for name, value in parts.items()}
        return sum(AROUSAL[n][0] * v for n, v in z.items()) / sum(w for w, _ in AROUSAL.values())

    def top_k_s(self) -> list[tuple[float, float]]:
        """The running top-k as (start_s, score), best first."""
        return [(t, s) for s, t in sorted(self.top, reverse=True)]


def _grey(pixels: np.ndarray) -> np.ndarray:
    h, w = pixels.shape[:2]
    ys = np.linspace(0, h - 1, 32).astype(int)
    xs = np.linspace(0, w - 1, 32).astype(int)
    return pixels[np.ix_(ys, xs)].mean(axis=-1).astype(np.float32)
