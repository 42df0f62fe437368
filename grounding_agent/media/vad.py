"""Voice activity for ASR: where speech is (Silero VAD), where to cut a long recording into chunks, which
clips Whisper hears, and each word clamped into its voice region (Whisper's first word of an utterance
tends to start early; the VAD onset is tighter). Audio is 16 kHz mono float32. `fit_to_energy` then moves
each word's edges out to where the audio's loudness falls (Whisper's word ends often clip a fading tail).
"""

from __future__ import annotations

import bisect
import itertools
import math
from collections.abc import Sequence
from dataclasses import replace

import numpy as np

from grounding_agent.media.transcript import Transcript, Word
from grounding_agent.types import Curve

__all__ = ["SAMPLE_RATE", "clamp_word", "cut_point", "fit_to_energy", "voice_regions", "whisper_clips"]

SAMPLE_RATE = 16_000
# A chunk is cut in a pause at least this far from its end (a word may be starting in the last bit).
CUT_MARGIN_S = 1.0
# VAD regions closer than this are sent to Whisper as one clip (it needs context), padded on both sides.
MERGE_GAP_S = 0.6
CLIP_PAD_S = 0.25
# Whisper encodes 30 s windows whatever the clip's length, so short pauses are kept inside one clip while
# it fits a window (7 sentences over 38 s: 2 encoder passes instead of 7).
PACK_GAP_S = 3.0
PACK_S = 28.0


def cut_point(regions: Sequence[tuple[int, int]], n: int) -> int:
    """Where to end a chunk of n samples: the middle of its last pause that is CUT_MARGIN_S before the end."""
    margin = int(CUT_MARGIN_S * SAMPLE_RATE)
    if not regions:
        return n
    pauses = [(a_end + b_start) // 2 for (_, a_end), (b_start, _) in itertools.pairwise(regions)]
    if n - regions[-1][1] >= 2 * margin:
        pauses.append((regions[-1][1] + n) // 2)
    ok = [p for p in pauses if p <= n - margin]
    return max(ok) if ok else n  # one long stretch of speech: cut anyway, memory stays bounded


def voice_regions(audio: np.ndarray) -> list[tuple[int, int]]:
    """(start, end) sample indices of speech in 16 kHz mono audio.

    Silero VAD v6 as faster-whisper ships it: the ONNX model inside its wheel, run on NumPy arrays through
    ONNX Runtime. silero-vad's own `get_speech_timestamps` takes torch tensors, and importing torch for it
    cost more (~2 s, ~500 MB) than the VAD itself on a short clip. Options are silero's defaults but for
    shorter silences and padding: a sentence's pauses split it into the regions words are clamped to.
    """
    from faster_whisper.vad import VadOptions, get_speech_timestamps

    if audio.size < SAMPLE_RATE // 10:
        return []
    options = VadOptions(min_speech_duration_ms=250, min_silence_duration_ms=250, speech_pad_ms=40)
    found = get_speech_timestamps(np.ascontiguousarray(audio, dtype=np.float32), options, SAMPLE_RATE)
    return [(int(r["start"]), int(r["end"])) for r in found]


def whisper_clips(regions: Sequence[tuple[int, int]], n: int) -> list[float]:
    """Whisper `clip_timestamps` (flat [start, end, ...] seconds): regions closer than MERGE_GAP_S merged,
    and those closer than PACK_GAP_S while the clip stays within PACK_S; then padded, without overlap."""
    merged: list[list[int]] = []
    for a, b in regions:
        gap = a - merged[-1][1] if merged else None
        if gap is not None and (
            gap < MERGE_GAP_S * SAMPLE_RATE
            or (gap < PACK_GAP_S * SAMPLE_RATE and b - merged[-1][0] <= PACK_S * SAMPLE_RATE)
        ):
            merged[-1][1] = b
        else:
            merged.append([a, b])
    pad = CLIP_PAD_S * SAMPLE_RATE
    flat: list[float] = []
    for a, b in merged:
        start = max(0.0, a - pad, flat[-1] * SAMPLE_RATE if flat else 0.0)
        flat += [start / SAMPLE_RATE, min(float(n), b + pad) / SAMPLE_RATE]
    return flat


def clamp_word(word: Word, regions_s: Sequence[tuple[float, float]]) -> Word:
    """Clamp a word into the VAD region it overlaps most (or the nearest one)."""
    if not regions_s:
        return word

    def fit(r: tuple[float, float]) -> float:
        overlap = min(word.end_s, r[1]) - max(word.start_s, r[0])
        return overlap if overlap > 0 else -min(abs(word.start_s - r[1]), abs(word.end_s - r[0]))

    a, b = max(regions_s, key=fit)
    start = min(max(word.start_s, a), b)
    end = max(min(word.end_s, b), start)
    return replace(word, start_s=float(start), end_s=float(end))


def fit_to_energy(transcript: Transcript, curve: Curve, threshold_db: float, max_s: float) -> Transcript:
    """`transcript` with each word's end moved later (and its start earlier) while the loudness `curve`
    (windows of equal width, centred at `curve.times_s`) stays at or above `threshold_db`: a fading tail
    Whisper cut off belongs to the word. A move is at most `max_s` and never reaches the neighbouring word;
    where the audio does not fall within that reach (music, noise, a tone) it is background, and the word
    keeps its time. Words never shrink. Segment times follow their words.

    The last word of a voice region (`transcript.speech_regions`) reaches to the region's last loud window
    (and the first word back to its first): Whisper may fold two words into one and time it to the first
    ("$20." ending at 5.93 s for "twenty dollars", said until 6.47 s); the VAD heard the voice go on.
    """
    times = np.asarray(curve.times_s, dtype=float)
    if times.size < 2 or not transcript.words:
        return transcript
    hop = float(times[1] - times[0])
    starts, loud = times - hop / 2, np.asarray(curve.values) >= threshold_db
    order = sorted(transcript.words, key=lambda w: w.start_s)
    regions = sorted(transcript.speech_regions)
    moved: dict[int, Word] = {}
    prev_end = 0.0
    for i, w in enumerate(order):
        next_start = order[i + 1].start_s if i + 1 < len(order) else math.inf
        start = _fall(starts, loud, hop, w.start_s, max(prev_end, w.start_s - max_s), -1)
        end = _fall(starts, loud, hop, w.end_s, min(next_start, w.end_s + max_s), +1)
        region = _region_of(regions, w.end_s)
        if region and next_start > region[1]:  # the last word said in this stretch of voice
            end = max(end, _last_loud(starts, loud, hop, w.end_s, min(region[1], next_start)))
        region = _region_of(regions, w.start_s)
        if region and prev_end < region[0]:  # the first
            start = min(start, _first_loud(starts, loud, hop, max(region[0], prev_end), w.start_s))
        moved[id(w)] = replace(w, start_s=min(start, w.start_s), end_s=max(end, w.end_s))
        prev_end = max(prev_end, moved[id(w)].end_s)
    segments = []
    for seg in transcript.segments:
        words = tuple(moved.get(id(w), w) for w in seg.words)
        start = min([seg.start_s, *(w.start_s for w in words)])
        segments.append(
            replace(seg, words=words, start_s=start, end_s=max([seg.end_s, *(w.end_s for w in words)]))
        )
    return replace(transcript, segments=tuple(segments))


def _fall(starts: np.ndarray, loud: np.ndarray, hop: float, t: float, limit: float, step: int) -> float:
    """From `t`, walking `step` (+1 later, -1 earlier) over loud windows: where the loudness falls, if it
    does before `limit`; else `t`."""
    k = int(np.searchsorted(starts, t, side="right")) - 1 if step > 0 else int(np.searchsorted(starts, t)) - 1
    while 0 <= k < len(loud) and loud[k]:
        edge = starts[k] + hop if step > 0 else starts[k]
        if (edge >= limit) if step > 0 else (edge <= limit):
            return t  # still loud at the neighbour or the reach: not a tail
        k += step
    if not 0 <= k < len(loud):
        return t
    return float(max(t, starts[k])) if step > 0 else float(min(t, starts[k] + hop))


def _region_of(regions: Sequence[tuple[float, float]], t: float) -> tuple[float, float] | None:
    i = bisect.bisect_right(regions, (t, math.inf)) - 1
    return regions[i] if i >= 0 and regions[i][0] <= t <= regions[i][1] else None


def _last_loud(starts: np.ndarray, loud: np.ndarray, hop: float, t: float, limit: float) -> float:
    """The end of the last loud window between `t` and `limit` (`t` if none)."""
    lo, hi = np.searchsorted(starts, [t - hop, limit])
    found = np.flatnonzero(loud[lo:hi])
    return float(min(starts[lo + found[-1]] + hop, limit)) if found.size else t


def _first_loud(starts: np.ndarray, loud: np.ndarray, hop: float, limit: float, t: float) -> float:
    """The start of the first loud window between `limit` and `t` (`t` if none)."""
    lo, hi = np.searchsorted(starts, [limit, t])
    found = np.flatnonzero(loud[lo:hi])
    return float(max(starts[lo + found[0]], limit)) if found.size else t
