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
the "clip" signal, a running z-score like the others.
With a learned head (`HeadScorer`: a `highlights.heads` head, its CLIP model, its text if it needs one),
each sampled frame's embedding is summed into its 2-s clip (`CLIP_LEN_S`, the clips heads are trained on);
when the clip's last bin is scored, the clip's L2-normalised mean embedding (as `heads.clip_features`) is
scored by the head and both its bins get the "head" signal: the score's running z-score (one sample per
clip). A clip's first second is still in the look-ahead window then (`delay_s` >= 1 s): no look-ahead
beyond `delay_s`; with a shorter delay only a clip's last second carries it. Every head's `score_clips`
scores each clip on its own features (rank: an MLP; VCL: a cosine to the prompted text; TaoHighlight:
attention over the title's tokens), so one clip of frames is the whole window a head needs.
"""

from __future__ import annotations

import heapq
import math
from collections import deque
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Protocol

import numpy as np

from grounding_agent.defaults import CLIP_LEN_S, HIGHLIGHTS, LIVE, PROSODY
from grounding_agent.errors import HeadError
from grounding_agent.highlights.heads import HighlightHead
from grounding_agent.highlights.prosody import frame_features
from grounding_agent.media.vad import SAMPLE_RATE

__all__ = ["HeadScorer", "HighlightHit", "OnlineHighlights", "RunningStats", "load_head_scorer"]

BIN_S = 1.0
SETTLE_S = 0.5  # a bin is scored this long after it ends (audio and video arrive a little apart)
MIN_SAMPLES = 5  # bins seen before a signal's z-score counts
# The smallest spread each signal is measured against: 2 dB of loudness, 2 grey levels of motion, 5 % of
# the colour histogram moving.
MIN_STD = {"loudness": 2.0, "motion": 2.0, "scene": 0.05, "clip": 0.01, "head": 0.01}
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
class HeadScorer:
    """A learned highlight head scored online: `encoder` embeds the frames (the head's CLIP model), `text`
    is what a head that needs one (VCL, TaoHighlight) scores the clips against."""

    head: HighlightHead
    encoder: FrameScorer
    text: str | None = None

    def check(self) -> None:
        """Refuse (HeadError, one line) a head that cannot score these frames, before the stream opens."""
        if self.head.needs_text and not (self.text and self.text.strip()):
            raise HeadError(
                f"the {self.head.recipe} head scores clips against a text: pass --head-text "
                "(the query, or the stream's title)"
            )
        probe = self.encoder.encode_frames(np.zeros((1, 32, 32, 3), np.uint8))
        try:
            self.head.score_clips(probe, self.text)
        except HeadError:
            h, model = self.head, self.encoder.model_id
            fix = (
                "retrain the head" if model == h.clip_model else "drop --saliency-model (the head's is used)"
            )
            raise HeadError(
                f"the {h.recipe} head does not score {model!r} frame features (its config names "
                f"{h.clip_model!r}); {fix}"
            ) from None

    def score(self, feature: np.ndarray) -> float:
        """One clip's score from its L2-normalised mean frame embedding (D,)."""
        return float(self.head.score_clips(feature[None].astype(np.float32), self.text)[0])


def load_head_scorer(folder: str, text: str | None, saliency: FrameScorer | None) -> HeadScorer:
    """The head in `folder` (`heads.load_head`), on `saliency`'s CLIP model when given, else its own."""
    from grounding_agent.highlights.clip import ClipSaliency
    from grounding_agent.highlights.heads import load_head

    head = load_head(folder)
    encoder = saliency or ClipSaliency.from_pretrained(head.clip_model, use_cache=False)
    return HeadScorer(head, encoder, text)


@dataclass(frozen=True)
class HighlightHit:
    start_s: float
    end_s: float
    score: float
    signals: dict[str, float]
    clip_sim: float | None = None  # the bin's best frame-prompt similarity, with a saliency model
    head_score: float | None = None  # the head's raw score of the bin's 2-s clip, with a learned head


class _Bin:
    __slots__ = ("energy", "samples", "motion", "scene", "audio", "clip", "embedding", "frames")

    def __init__(self) -> None:
        self.energy, self.samples, self.motion, self.scene = 0.0, 0, 0.0, 0.0
        self.clip: float | None = None
        self.audio: list[np.ndarray] = []  # the bin's 16 kHz audio (one second at most), for arousal
        self.embedding: np.ndarray | None = None  # the sum of its frames' head-model embeddings
        self.frames = 0


class _ClipSum:
    """The 2-s clip being filled for the head: the sum of its frames' embeddings (constant memory)."""

    def __init__(self, index: int) -> None:
        self.index, self.total, self.frames = index, None, 0

    def add(self, b: _Bin) -> None:
        if b.embedding is not None:
            self.total = b.embedding if self.total is None else self.total + b.embedding
            self.frames += b.frames

    def feature(self) -> np.ndarray | None:
        if self.total is None or not self.frames:
            return None
        mean = self.total / self.frames
        return mean / max(float(np.linalg.norm(mean)), 1e-12)


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
        head: HeadScorer | None = None,
    ):
        if head is not None:
            head.check()
        self.saliency, self.head = saliency, head
        self._prompt_vectors = saliency.embed_texts(list(prompts)) if saliency is not None else None
        self.radius = max(0, int(delay_s // BIN_S))
        self.z, self.top_k = z, top_k
        floors = MIN_STD | {name: floor for name, (_, floor) in AROUSAL.items()}
        self.stats = {name: RunningStats(halflife_s / BIN_S, floor) for name, floor in floors.items()}
        self._bins: dict[int, _Bin] = {}
        self._window: deque[tuple[int, float, dict[str, float]]] = deque(maxlen=2 * self.radius + 1)
        self._clip: deque[float | None] = deque(maxlen=2 * self.radius + 1)  # each window bin's similarity
        self._head: deque[float | None] = deque(maxlen=2 * self.radius + 1)  # each window bin's head score
        self._clip_sum = _ClipSum(0)
        self.stats["head"] = RunningStats(halflife_s / CLIP_LEN_S, MIN_STD["head"])  # one sample per clip
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
        if b is not None:
            self._embed(b, pixels)
        if self._prev is not None and b is not None:
            b.motion = max(b.motion, float(np.abs(small - self._prev[0]).mean()))
            b.scene = max(b.scene, float(0.5 * np.abs(hist - self._prev[1]).sum()))
        self._prev = (small, hist)

    def _embed(self, b: _Bin, pixels: np.ndarray) -> None:
        """The frame's CLIP similarity to the prompts and its head-model embedding (one encoding when the
        head uses the saliency model itself)."""
        vector = None
        if self.saliency is not None and self._prompt_vectors is not None:
            vector = self.saliency.encode_frames(pixels[None])[0]
            sim = float((vector @ self._prompt_vectors.T).max())
            b.clip = sim if b.clip is None else max(b.clip, sim)
        if self.head is not None:
            if vector is None or self.head.encoder is not self.saliency:
                vector = self.head.encoder.encode_frames(pixels[None])[0]
            v = vector.astype(np.float64)
            b.embedding = v if b.embedding is None else b.embedding + v
            b.frames += 1

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
        self._head.append(None)
        if self.head is not None:
            self._head_clip(k, b)
        if len(self._window) < self._window.maxlen:
            return None
        c, s, sig = self._window[self.radius]
        clip_sim, head_score = self._clip[self.radius], self._head[self.radius]
        if s < self.z or s < max(x[1] for x in self._window):
            return None
        heapq.heappush(self.top, (s, c * BIN_S))
        if len(self.top) > self.top_k:
            heapq.heappop(self.top)
        signals = {n: round(v, 3) for n, v in sig.items()}
        return HighlightHit(c * BIN_S, (c + 1) * BIN_S, s, signals, clip_sim, head_score)

    def _head_clip(self, k: int, b: _Bin) -> None:
        """Add bin k to its 2-s clip; when k is the clip's last bin, score the clip with the head and give
        the "head" signal to the clip's bins still in the window (their scores are recomputed)."""
        index = int(k * BIN_S // CLIP_LEN_S)
        if index != self._clip_sum.index:
            self._clip_sum = _ClipSum(index)
        self._clip_sum.add(b)
        if int((k + 1) * BIN_S // CLIP_LEN_S) == index:
            return  # the clip goes on in the next bin
        feature = self._clip_sum.feature()
        if feature is None:
            return  # no frame in this clip: no head signal
        assert self.head is not None
        raw = self.head.score(feature)
        z = self.stats["head"].z(raw)
        for i, (bin_k, _, signals) in enumerate(self._window):
            if int(bin_k * BIN_S // CLIP_LEN_S) == index:
                signals["head"] = z
                self._window[i] = (bin_k, float(np.mean(list(signals.values()))), signals)
                self._head[i] = raw

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
