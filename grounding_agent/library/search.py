"""Hybrid retrieval over a library: visual similarity, speech and on-screen text, fused by reciprocal rank.

Per sub-event of the planner's plan, each channel ranks spans:
- visual: the query's CLIP text vector against every frame vector (`LibraryStore.knn`: faiss IVF-SQ8 candidates, exact
  cosine rescoring; exact up to `LIBRARY.visual_exact_frames` frames, approximate above), frames of one video
  closer than `LIBRARY.span_gap_s` grouped into a span scored by its best frame;
- speech: FTS5 BM25 picks candidate segments, the fuzzy phrase matcher (`Transcript.search`, the one `edit`
  and `ground` use) then places the quote word-exactly in those videos; BM25 rows it cannot place stay as
  segment spans after its matches (paraphrases);
- ocr: the same over text read on screen (`ScreenText.search`).
Spans of one video that overlap across channels become one hit; its score is the sum over the channels of
weight * quality / (rrf_k + rank) (reciprocal rank fusion, Cormack et al. 2009, weighed by the hit's own
score in its channel) and its span is that of its strongest channel. Sub-events are
then composed across channels by the plan's relations ("after she mentions the price, the man runs").
"""

from __future__ import annotations

import itertools
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path

import numpy as np

from grounding_agent.defaults import AGENT, LIBRARY
from grounding_agent.errors import LibraryError
from grounding_agent.library.records import CHANNELS, SearchHit
from grounding_agent.library.store_api import LibraryStore
from grounding_agent.media.ocr import ScreenText, ocr_query
from grounding_agent.media.speech_query import speech_query
from grounding_agent.media.transcript import Transcript
from grounding_agent.types import Evidence, Plan

TextEncoder = Callable[[str], np.ndarray]  # a query -> its unit-norm text vector (the visual channel)
BM25_QUALITY = 0.5  # a BM25-only row's quality at the best BM25 score (a fuzzy match's is its own score)
_TOKEN = re.compile(r"\w+", re.UNICODE)
# Words that carry no content: left out of BM25 queries, so "the" or "is" alone never make a candidate.
STOP_WORDS = frozenset(
    "a an the and or but of to in on at by for with from as is are was were be been it its this that these "
    "those he she they we you i his her their our your my me him them us do does did so if then than when "
    "where who what which how there here not no".split()
)


@dataclass
class _Hit:
    video_id: int
    start_s: float
    end_s: float
    score: float = 0.0
    best_gain: float = 0.0
    evidence: list[Evidence] = field(default_factory=list)


def fts_words(text: str) -> list[str]:
    """The words of `text` a full-text search looks for (lower case, once each; stop words dropped unless
    they are all there is). The store builds its own query from them."""
    words = list(dict.fromkeys(t.lower() for t in _TOKEN.findall(text)))
    return [w for w in words if w not in STOP_WORDS] or words


def search(
    store: LibraryStore,
    plan: Plan,
    *,
    k: int = LIBRARY.search_k,
    channels: Sequence[str] | None = None,
    encode_text: TextEncoder | None = None,
) -> list[SearchHit]:
    """The `k` best hits for `plan` over the library, fused across `channels` (default: all indexed)."""
    channels = tuple(channels or CHANNELS)
    for c in channels:
        if c not in CHANNELS:
            raise LibraryError(f"unknown channel {c!r}; choose from {', '.join(CHANNELS)}")
    if not any(fts_words(s.text) for s in plan.steps):
        raise LibraryError("the query reads as nothing to search (no words); give words to look for")
    paths = {row["id"]: Path(row["path"]) for row in store.videos()}
    per_step = {s.id: step_hits(store, s.text, channels, encode_text) for s in plan.steps}
    hits = per_step[plan.steps[0].id] if len(plan.steps) == 1 else compose(plan, per_step)
    return [
        SearchHit(h.video_id, paths[h.video_id], h.start_s, h.end_s, h.score, tuple(h.evidence))
        for h in hits[:k]
        if h.video_id in paths
    ]


def step_hits(
    store: LibraryStore, text: str, channels: Sequence[str], encode_text: TextEncoder | None
) -> list[_Hit]:
    """One sub-event's hits, every channel's ranking fused by reciprocal rank, best first."""
    rankings: list[tuple[float, list[_Hit]]] = []
    said, shown = speech_query(text), ocr_query(text)
    if "speech" in channels:
        rankings.append((LIBRARY.channel_boost if said else 1.0, speech_hits(store, said or text)))
    if "ocr" in channels:
        rankings.append((LIBRARY.channel_boost if shown else 1.0, ocr_hits(store, shown or text)))
    if "visual" in channels and encode_text is not None:
        rankings.append((1.0, visual_hits(store, encode_text(text))))
    return fuse(rankings)


def fuse(rankings: Sequence[tuple[float, Sequence[_Hit]]], rrf_k: int = LIBRARY.rrf_k) -> list[_Hit]:
    """Weighted reciprocal rank fusion: each (weight, ranking) adds weight * quality / (rrf_k + rank) to a hit,
    quality being the hit's own score in its channel in [0, 1] (plain RRF is flat between ranks: on 50 clips
    sharing most words, a noisy channel's rank would outvote the fuzzy matcher's clear 1.0 against 0.67);
    overlapping spans of one video are one hit, spanning the span of its strongest channel."""
    fused: list[_Hit] = []
    for weight, ranking in rankings:
        for rank, h in enumerate(ranking, start=1):
            same = next((f for f in fused if f.video_id == h.video_id and _overlap(f, h)), None)
            if same is None:
                same = _Hit(h.video_id, h.start_s, h.end_s)
                fused.append(same)
            gain = weight * h.score / (rrf_k + rank)
            same.score += gain
            same.evidence.extend(h.evidence)
            if gain > same.best_gain:
                same.best_gain, same.start_s, same.end_s = gain, h.start_s, h.end_s
    return sorted(fused, key=lambda h: (-h.score, -h.best_gain, h.video_id, h.start_s))


def _overlap(a: _Hit, b: _Hit) -> bool:
    return min(a.end_s, b.end_s) > max(a.start_s, b.start_s)


def speech_hits(store: LibraryStore, text: str) -> list[_Hit]:
    return _text_hits(store, text, "speech", _speech_matches)


def ocr_hits(store: LibraryStore, text: str) -> list[_Hit]:
    return _text_hits(store, text, "ocr", _ocr_matches)


def _speech_matches(doc: dict, text: str) -> list[tuple[float, float, float, str]]:
    found = Transcript.from_dict(doc).search(text, top_k=3, min_score=LIBRARY.min_speech_score)
    return [(m.start_s, m.end_s, m.score, f'"{m.text}"') for m in found]


def _ocr_matches(doc: dict, text: str) -> list[tuple[float, float, float, str]]:
    found = ScreenText.from_dict(doc).search(text, top_k=3, min_score=LIBRARY.min_ocr_score)
    return [(m.start_s, m.end_s, m.score, m.text) for m in found]


def _text_hits(
    store: LibraryStore,
    text: str,
    kind: str,
    matcher: Callable[[dict, str], list[tuple[float, float, float, str]]],
) -> list[_Hit]:
    """BM25 candidates, then the fuzzy matcher in each candidate video; unplaced BM25 rows after them."""
    words = fts_words(text)
    if not words:
        return []
    rows = store.text_search(words, kind, LIBRARY.text_candidates)
    placed: list[_Hit] = []
    for video_id in dict.fromkeys(r[0] for r in rows):
        doc = store.document(video_id, kind)
        for a, b, score, said in matcher(doc, text) if doc else []:
            placed.append(_Hit(video_id, a, b, score, evidence=[Evidence(kind, a, b, score, said, "fuzzy")]))  # type: ignore[arg-type]
    placed.sort(key=lambda h: -h.score)
    top = max((r[4] for r in rows), default=1.0) or 1.0
    for video_id, a, b, said, bm25 in rows:
        quality = BM25_QUALITY * bm25 / top  # below a placed match of the same text: it matched words only
        h = _Hit(video_id, a, b, quality, evidence=[Evidence(kind, a, b, bm25 / top, said, "bm25")])  # type: ignore[arg-type]
        if not any(p.video_id == video_id and _overlap(p, h) for p in placed):
            placed.append(h)
    return placed


def visual_hits(store: LibraryStore, vector: np.ndarray) -> list[_Hit]:
    """Nearest frames grouped per video into spans (gaps under `span_gap_s`), best frame first."""
    by_video: dict[int, list[tuple[float, float]]] = {}
    for video_id, time_s, sim in store.knn(vector, LIBRARY.visual_candidates):
        by_video.setdefault(video_id, []).append((time_s, sim))
    hits: list[_Hit] = []
    for video_id, frames in by_video.items():
        frames.sort()
        run = [frames[0]]
        for f in frames[1:] + [(float("inf"), 0.0)]:
            if f[0] - run[-1][0] > LIBRARY.span_gap_s:
                hits.append(_visual_span(video_id, run))
                run = []
            run.append(f)
    lo, hi = min((h.score for h in hits), default=0.0), max((h.score for h in hits), default=1.0)
    for h in hits:  # min-max to a quality in [0, 1] for the fusion (cosines may be negative)
        h.score = (h.score - lo) / (hi - lo) if hi > lo else 1.0
    return sorted(hits, key=lambda h: -h.score)


def _visual_span(video_id: int, run: list[tuple[float, float]]) -> _Hit:
    start, end = run[0][0], run[-1][0]
    if end - start < LIBRARY.min_visual_span_s:
        end = start + LIBRARY.min_visual_span_s
    best = max(s for _, s in run)
    return _Hit(video_id, start, end, best, evidence=[Evidence("saliency", start, end, best, "", "clip")])


def compose(plan: Plan, per_step: dict[str, list[_Hit]], top: int = 5) -> list[_Hit]:
    """Per video, the best choice of one hit a step that keeps the plan's relations; score: their sum."""
    videos = set.intersection(*({h.video_id for h in hits} for hits in per_step.values()))
    out: list[_Hit] = []
    for video_id in videos:
        options = {sid: [h for h in hits if h.video_id == video_id][:top] for sid, hits in per_step.items()}
        best = _best_combination(plan, options)
        if best is not None:
            out.append(best)
    return sorted(out, key=lambda h: -h.score)


def _best_combination(plan: Plan, options: dict[str, list[_Hit]]) -> _Hit | None:
    ids = [s.id for s in plan.steps]
    best: _Hit | None = None
    for combo in itertools.product(*(options[i] for i in ids)):
        chosen = dict(zip(ids, combo, strict=True))
        if not all(_holds(r.kind, chosen[r.a], chosen[r.b]) for r in plan.relations):
            continue
        score = sum(h.score for h in combo)
        if best is None or score > best.score:
            span = [chosen[plan.target]] if plan.target in chosen else list(combo)
            note = Evidence(
                "composition", min(h.start_s for h in combo), max(h.end_s for h in combo), None,
                "; ".join(f"{r.a} {r.kind} {r.b}" for r in plan.relations), "planner",
            )  # fmt: skip
            evidence = [e for h in combo for e in h.evidence] + [note]
            best = _Hit(combo[0].video_id, min(h.start_s for h in span), max(h.end_s for h in span), score)
            best = replace(best, evidence=evidence)
    return best


def _holds(kind: str, a: _Hit, b: _Hit) -> bool:
    if kind == "before":
        return a.end_s <= b.start_s + AGENT.before_tolerance_s
    return _overlap(a, b)
