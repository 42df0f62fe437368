"""The video library (`index`, `search`): channels, the store, hybrid retrieval, retrieve-then-ground."""

from __future__ import annotations

from dataclasses import dataclass

from grounding_agent.defaults.core import cache_dir


@dataclass(frozen=True)
class LibraryDefaults:
    """Knobs of `grounding_agent.library`.

    Attributes:
        folder_name: the library's folder under the cache folder when none is given.
        visual_fps: frames embedded per second of video (the visual channel).
        ocr_fps: frames read per second for on-screen text (a frame like the one before reuses its text).
        ocr_refine_fps: rate at which a change of on-screen text is timed (0: to 1 / ocr_fps only; cheaper).
        asr_beam_size: Whisper's beam when indexing (1: greedy, about twice as fast as 5 on CPU).
        shot_cut: cosine distance between consecutive frame embeddings that starts a new shot.
        search_k: hits `search` returns.
        rrf_k: the constant of reciprocal rank fusion (Cormack et al. use 60).
        channel_boost: weight of a channel the query names ("says ...": speech, "titled ...": ocr).
        visual_candidates: nearest frames fetched per visual sub-query before they are grouped into spans.
        visual_rescore: frames the sign-bit (Hamming) pre-filter passes to exact cosine rescoring; a library
            with no more frames than this is searched exactly (recall vs size in docs/library.md).
        visual_prefilter: frames kept by Hamming distance over all sign bits, reranked by the float query
            against their bits before `visual_rescore` of them are rescored exactly.
        text_candidates: BM25 rows fetched per text channel before the fuzzy matcher rescores them.
        span_gap_s: visual frames of one video closer than this join one span.
        min_visual_span_s: a visual span is widened to at least this long.
        min_speech_score: the fuzzy phrase matcher's floor for a speech hit.
        min_ocr_score: the fuzzy matcher's floor for an on-screen text hit.
        ground_videos: videos `--ground` refines inside.
        ground_calls: grounder calls `--ground` may make in all.
        ground_pad_s: seconds around a hit the grounder looks at.
        busy_timeout_s: how long a reader or writer waits for a lock before a typed error.
    """

    folder_name: str = "library"
    visual_fps: float = 1.0
    ocr_fps: float = 1.0
    ocr_refine_fps: float = 0.0
    asr_beam_size: int = 1
    shot_cut: float = 0.25
    search_k: int = 10
    rrf_k: int = 60
    channel_boost: float = 3.0
    visual_candidates: int = 200
    visual_rescore: int = 1000
    visual_prefilter: int = 20000
    text_candidates: int = 50
    span_gap_s: float = 2.0
    min_visual_span_s: float = 1.0
    min_speech_score: float = 0.5
    min_ocr_score: float = 0.7
    ground_videos: int = 3
    ground_calls: int = 3
    ground_pad_s: float = 5.0
    busy_timeout_s: float = 10.0

    @property
    def folder(self):
        """The default library folder (under `cache_dir`, so $GROUNDING_AGENT_CACHE moves it)."""
        return cache_dir(self.folder_name)


LIBRARY = LibraryDefaults()

__all__ = ["LIBRARY", "LibraryDefaults"]
