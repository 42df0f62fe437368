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
        asr_threads: CTranslate2 threads of the library's Whisper (1: it runs beside the frame channels, one
            core each; on the loaded 2-core machine one thread transcribed 1.45x faster than two).
        asr_workers: files whose speech is transcribed at once, the next files' started while this one's
            frames are read (a folder of short files is bound by Whisper's fixed 30-s window per file).
        asr_language_once_at: the language Whisper detects with at least this probability on a file is kept
            for the rest of the `index` run (one detection a run instead of one a file; see `Transcriber`).
        ocr_threads: ONNX Runtime threads of the library's OCR (1: under load one thread ran 2.3x faster than
            two, whose spinning workers fight the other processes).
        frame_side: long side, pixels, of the frames shared by the visual and OCR channels (720p -> 640x360:
            28-px subtitles and 20-px labels still read exactly; at 480 a subtitle came out garbled).
        ocr_same_mean: the change test on a 1/4-size grey copy of each frame: a mean absolute difference
            (0-255) under this, with at most `ocr_same_fraction` of its pixels changed by more than
            `ocr_changed_level`, is "the same frame" and reuses the text read before (a word appearing on a
            still background moves the mean by less than 1, but its strokes change many pixels a lot).
        ocr_same_fraction: see `ocr_same_mean`.
        ocr_changed_level: see `ocr_same_mean`.
        ocr_queue_chunks: decoded chunks waiting for the OCR thread at most (bounds memory on long videos).
        shot_cut: cosine distance between consecutive frame embeddings that starts a new shot.
        search_k: hits `search` returns.
        rrf_k: the constant of reciprocal rank fusion (Cormack et al. use 60).
        channel_boost: weight of a channel the query names ("says ...": speech, "titled ...": ocr).
        visual_candidates: nearest frames fetched per visual sub-query before they are grouped into spans.
        visual_rescore: frames the ANN index (`library.ann`) passes to exact cosine rescoring from the store's
            float32 vectors (at least the k asked for; 1,000 found no more than 200 at 1M frames and cost
            5-8x the latency: docs/library.md).
        visual_exact_frames: a library with at most this many frames gets an exact (flat) index, not IVF.
        visual_ann_lists_per_sqrt: IVF lists per sqrt(frames) at training, rounded to a power of two
            (1.0: 2,048 lists at 3.6M frames).
        visual_ann_probes: IVF lists a query scans (`nprobe`): more is slower and finds more.
        visual_ann_train_per_list: training sample per IVF list (faiss wants >= 39; drawn at random).
        visual_ann_retrain_growth: the index is retrained (new lists) once the library holds this many times
            the frames it was trained on; appends below that reuse the lists.
        text_candidates: BM25 rows fetched per text channel before the fuzzy matcher rescores them.
        span_gap_s: visual frames of one video closer than this join one span.
        min_visual_span_s: a visual span is widened to at least this long.
        min_speech_score: the fuzzy phrase matcher's floor for a speech hit.
        min_ocr_score: the fuzzy matcher's floor for an on-screen text hit.
        ground_videos: videos `--ground` refines inside.
        ground_calls: grounder calls `--ground` may make in all.
        ground_pad_s: seconds around a hit the grounder looks at.
        busy_timeout_s: how long a reader or writer waits for a lock before a typed error.
        pg_connect_timeout_s: how long opening a PostgreSQL library waits for its server.
        pg_sync_rows: frame rows a reader fetches per batch when it syncs its local vector cache.
    """

    folder_name: str = "library"
    visual_fps: float = 1.0
    ocr_fps: float = 1.0
    ocr_refine_fps: float = 0.0
    asr_beam_size: int = 1
    asr_threads: int = 1
    asr_workers: int = 2
    asr_language_once_at: float = 0.5
    ocr_threads: int = 1
    frame_side: int = 640
    ocr_same_mean: float = 3.0
    ocr_same_fraction: float = 0.002
    ocr_changed_level: int = 32
    ocr_queue_chunks: int = 2
    shot_cut: float = 0.25
    search_k: int = 10
    rrf_k: int = 60
    channel_boost: float = 3.0
    visual_candidates: int = 200
    visual_rescore: int = 200
    visual_exact_frames: int = 20_000
    visual_ann_lists_per_sqrt: float = 1.0
    visual_ann_probes: int = 32
    visual_ann_train_per_list: int = 48
    visual_ann_retrain_growth: float = 4.0
    text_candidates: int = 50
    span_gap_s: float = 2.0
    min_visual_span_s: float = 1.0
    min_speech_score: float = 0.5
    min_ocr_score: float = 0.7
    ground_videos: int = 3
    ground_calls: int = 3
    ground_pad_s: float = 5.0
    busy_timeout_s: float = 10.0
    pg_connect_timeout_s: float = 10.0
    pg_sync_rows: int = 50_000

    @property
    def folder(self):
        """The default library folder (under `cache_dir`, so $GROUNDING_AGENT_CACHE moves it)."""
        return cache_dir(self.folder_name)


LIBRARY = LibraryDefaults()

__all__ = ["LIBRARY", "LibraryDefaults"]
