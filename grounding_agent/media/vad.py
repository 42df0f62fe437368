"""Voice activity for ASR: where speech is (Silero VAD), where to cut a long recording into chunks, which
clips Whisper hears, and each word clamped into its voice region (Whisper's first word of an utterance
tends to start early; the VAD onset is tighter). Audio is 16 kHz mono float32.
"""

from __future__ import annotations

import itertools
from collections.abc import Sequence
from dataclasses import replace

import numpy as np

from grounding_agent.media.transcript import Word

__all__ = ["SAMPLE_RATE", "clamp_word", "cut_point", "voice_regions", "whisper_clips"]

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
