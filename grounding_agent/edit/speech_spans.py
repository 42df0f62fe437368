"""Word-exact spans for speech edits, from the words' own times (after `media.vad.fit_to_energy`):

- a sentence runs from its first word's start to its last word's end; sentences end at . ? ! or at a pause
  of `PAUSE_S`, never at Whisper's segment ends, which split a sentence wherever its 30-s window or its
  decoding did (a transcript without any sentence punctuation falls back to its segments);
- a kept span is padded by `pad_s`, but stops halfway to a neighbouring word it does not keep;
- a silence cut stops `pad_s` short of the sound on each side, and one shorter than `min_gap_s` is not made;
- "sound" is anything above the recording's own floor (`floor_level`), not just above the silence
  threshold: a word's fading tail (espeak-ng's and real voices' end at -45 to -55 dBFS) is quieter than
  -40 dBFS and was cut 40-120 ms into the word when silences ended at the threshold.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Any

import numpy as np

from grounding_agent.media.transcript import PAUSE_S, Transcript, Word

SENTENCE_END = (".", "?", "!", "…")
_CLOSING = "\"'”’)]»"
Run = tuple[float, float]


def hit_ranges(words: Sequence[Word], hits: Iterable[Any]) -> list[tuple[int, int]]:
    """(first, last) indices into time-ordered `words` of the words each match (start_s, end_s) covers."""
    mids = np.array([(w.start_s + w.end_s) / 2 for w in words])
    out = []
    for hit in hits:
        first = int(np.searchsorted(mids, hit.start_s - 1e-6, side="left"))
        last = int(np.searchsorted(mids, hit.end_s + 1e-6, side="right")) - 1
        out.append((first, max(first, last)))
    return out


def sentence_ranges(words: Sequence[Word], transcript: Transcript) -> list[tuple[int, int]]:
    """(first, last) word indices of each sentence of time-ordered `words` (the transcript's own)."""
    punctuated = any(_ends_sentence(w.text) for w in words)
    segment_ends = set() if punctuated else {id(s.words[-1]) for s in transcript.segments if s.words}
    ranges, first = [], 0
    for i, w in enumerate(words):
        nxt = words[i + 1] if i + 1 < len(words) else None
        if (nxt is None or _ends_sentence(w.text) or nxt.start_s - w.end_s >= PAUSE_S
                or id(w) in segment_ends):  # fmt: skip
            ranges.append((first, i))
            first = i + 1
    return ranges


def sentences_with(
    words: Sequence[Word], transcript: Transcript, hits: Iterable[Any]
) -> list[tuple[int, int]]:
    """The sentences (as word index ranges) holding any word of any match."""
    wanted = sorted(hit_ranges(words, hits))
    return [
        (a, b) for a, b in sentence_ranges(words, transcript) if any(lo <= b and hi >= a for lo, hi in wanted)
    ]


def word_spans(
    words: Sequence[Word], ranges: Iterable[tuple[int, int]], pad_s: float, duration_s: float | None = None
) -> list[tuple[float, float, str]]:
    """(start_s, end_s, text) per word range: first start to last end, `pad_s` wider on each side but never
    past halfway to the word before or after (which the range does not include), nor outside the video."""
    out = []
    for a, b in sorted(set(ranges)):
        start, end = words[a].start_s - pad_s, words[b].end_s + pad_s
        if a > 0:
            start = max(start, (words[a - 1].end_s + words[a].start_s) / 2)
        if b + 1 < len(words):
            end = min(end, (words[b].end_s + words[b + 1].start_s) / 2)
        start = min(max(0.0, start), words[a].start_s)
        end = max(end if duration_s is None else min(end, duration_s), words[b].end_s)
        out.append((start, end, " ".join(w.text for w in words[a : b + 1])))
    return out


def merged(regions: Iterable[Run], gap_s: float, duration_s: float) -> list[Run]:
    """`regions` clamped to the video, sorted, and joined where less than `gap_s` apart."""
    spans: list[list[float]] = []
    for start, end in sorted((max(0.0, a), min(b, duration_s)) for a, b in regions):
        if spans and start - spans[-1][1] < gap_s:
            spans[-1][1] = max(spans[-1][1], end)
        elif end > start:
            spans.append([start, end])
    return [(a, b) for a, b in spans]


def padded_silences(
    runs: Iterable[Run], pad_s: float, min_gap_s: float, duration_s: float
) -> tuple[list[tuple[Run, Run]], int]:
    """Silence cuts: each quiet run shrunk by `pad_s` where it meets sound (not at the video's ends), as
    (cut, run) pairs; and how many runs were left in because their cut would be shorter than `min_gap_s`."""
    cuts, short = [], 0
    for run_start, run_end in runs:
        run_end = min(run_end, duration_s)
        start = run_start + pad_s if run_start > 0 else 0.0
        end = run_end - pad_s if run_end < duration_s - 1e-6 else duration_s
        if end - start < min_gap_s:
            short += 1
            continue
        cuts.append(((start, end), (run_start, run_end)))
    return cuts, short


def floor_level(db: np.ndarray, threshold_db: float, margin_db: float) -> float:
    """The loudness below which audio is the recording's floor (its 5th percentile plus `margin_db`), or
    `threshold_db` where that is lower: the level a word's tail falls to."""
    values = np.asarray(db, dtype=float)
    return min(threshold_db, float(np.percentile(values, 5)) + margin_db) if values.size else threshold_db


def quiet_core(times_s: np.ndarray, db: np.ndarray, hop_s: float, run: Run, level_db: float) -> Run | None:
    """The part of a quiet run from its first to its last window at or below `level_db` (a fading tail
    at its edges is sound, not silence), or None when none is."""
    times = np.asarray(times_s)
    inside = np.flatnonzero((times >= run[0]) & (times <= run[1]))
    floor = inside[np.asarray(db)[inside] <= level_db]
    if not floor.size:
        return None
    return max(run[0], float(times[floor[0]] - hop_s / 2)), min(run[1], float(times[floor[-1]] + hop_s / 2))


def _ends_sentence(text: str) -> bool:
    return text.rstrip(_CLOSING).endswith(SENTENCE_END)
