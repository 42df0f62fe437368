"""One decode for two channels: frames sampled once per video feed both the frame embedder and the OCR.

    visual, screen = frame_pass(video, fingerprint, ("visual", "ocr"), saliency=clip, fps=1.0, ocr_fps=1.0,
                                ocr_threads=1)

Frames are streamed in chunks at `LIBRARY.frame_side` pixels on the long side (720p -> 640x360): big
enough for titles and captions to stay readable, and CLIP's processor shrinks them to its input size
anyway. OCR runs only on a frame that changed since the last one read (a difference test on a grey copy of
every 4th pixel each way, ~0.1 ms; thresholds `LIBRARY.ocr_same_*`), with RapidOCR's detector capped at the
frame's own size (its default, `limit_type: min` at 736, *enlarges* a 360p frame to 1309x736: 0.88 s a
frame against 0.33 s). The engine is built once per process. OCR runs in its own thread beside decode and
CLIP (ONNX Runtime and PyAV release the GIL), fed at most `LIBRARY.ocr_queue_chunks` chunks ahead, so the
frame side of a video is no longer decode + CLIP + OCR in series but about the OCR alone.
Both channels are cached by file content (embeddings as .npz, on-screen text as JSON), so a file indexed
before, into any library, is not decoded again. Stage by stage (`pipeline.embed`, `pipeline.read_text`)
or together (`pipeline.index_one`), the same frames give the same vectors and text.
"""

from __future__ import annotations

import functools
import hashlib
import json
import logging
from collections import deque
from collections.abc import Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from typing import Any

import numpy as np

from grounding_agent.defaults import LIBRARY
from grounding_agent.highlights.clip import ClipSaliency
from grounding_agent.highlights.embedding_cache import EmbeddingCache, cache_key, model_fingerprint
from grounding_agent.io import write_json_atomic
from grounding_agent.media.decode import iter_frame_chunks
from grounding_agent.media.ocr import FrameText, ScreenReader, ScreenText, read_lines
from grounding_agent.types import Video
from grounding_agent.utils.cache import cache_folder

log = logging.getLogger(__name__)

FRAME_SIDE = LIBRARY.frame_side  # long side of the shared frames, pixels
OCR_VERSION = 1  # in the OCR cache key: bump when the pass changes what it reads
ASR_THREADS = LIBRARY.asr_threads  # CTranslate2 threads of the library's Whisper (`ray_index` reads it)


def frame_pixels(video: Video) -> int | None:
    """`max_pixels` for the shared frames: the long side at `FRAME_SIDE` (None: small enough already)."""
    long_side = max(video.width, video.height)
    if long_side <= FRAME_SIDE:
        return None
    scale = FRAME_SIDE / long_side
    return int(np.ceil(video.width * scale) * np.ceil(video.height * scale))


@functools.cache
def ocr_engine(threads: int) -> Any:
    """RapidOCR (models in its wheel) with the detector at the frame's own size, built once per process."""
    from rapidocr import RapidOCR

    return RapidOCR(
        params={
            "Global.log_level": "error",
            "Det.limit_type": "max",
            "Det.limit_side_len": FRAME_SIDE,
            "EngineConfig.onnxruntime.intra_op_num_threads": threads,
            "EngineConfig.onnxruntime.inter_op_num_threads": 1,
        }
    )


def thumb(pixels: np.ndarray) -> np.ndarray:
    """A small grey copy (every 4th pixel each way, green channel): what the change test compares."""
    return pixels[::4, ::4, 1].astype(np.int16)


def same(a: np.ndarray, b: np.ndarray) -> bool:
    if a.shape != b.shape:
        return False
    diff = np.abs(a - b)
    return (
        float(diff.mean()) < LIBRARY.ocr_same_mean
        and float((diff > LIBRARY.ocr_changed_level).mean()) <= LIBRARY.ocr_same_fraction
    )


class _Ocr:
    """OCR over a stream of frames, reading only those that changed since the last one read."""

    def __init__(self, engine: Any):
        self.engine, self.frames, self.read = engine, [], 0
        self._last: np.ndarray | None = None

    def feed(self, times_s: np.ndarray, pixels: np.ndarray) -> None:
        for t, frame in zip(times_s, pixels):
            small = thumb(frame)
            if self._last is not None and self.frames and same(self._last, small):
                lines = self.frames[-1].lines
            else:
                lines, self._last = read_lines(frame, self.engine), small
                self.read += 1
            self.frames.append(FrameText(float(t), lines))


def _keys(fingerprint: str, saliency: ClipSaliency | None, fps: dict[str, float]) -> dict[str, str]:
    keys = {}
    if saliency is not None:
        model = model_fingerprint(saliency.model, saliency.model_id)
        keys["visual"] = cache_key(
            video=fingerprint, fps=fps["visual"], side=FRAME_SIDE, model=model, backend=saliency.backend
        )
    parts = [OCR_VERSION, fingerprint, fps["ocr"], FRAME_SIDE, ScreenReader.model_name(), LIBRARY.ocr_same_mean,
             LIBRARY.ocr_same_fraction, LIBRARY.ocr_changed_level]  # fmt: skip
    keys["ocr"] = hashlib.sha256(json.dumps(parts).encode()).hexdigest()[:32]
    return keys


def _cached(channel: str, key: str, saliency: ClipSaliency | None) -> Any:
    if channel == "visual":
        data = saliency.cache.load(key) if saliency is not None and saliency.cache else None
        return None if data is None else (data["times_s"], data["vectors"])
    path = cache_folder("ocr") / f"library-{key}.json"
    try:
        return ScreenText.from_dict(json.loads(path.read_text(encoding="utf-8")), from_cache=True)
    except FileNotFoundError:
        return None
    except (OSError, ValueError, KeyError, TypeError) as exc:  # a damaged entry is a miss, rewritten
        log.warning("ignoring unreadable OCR cache entry %s (%s)", path, exc)
        return None


def frame_pass(
    video: Video,
    fingerprint: str,
    channels: Sequence[str],
    *,
    saliency: ClipSaliency | None,
    fps: float,
    ocr_fps: float,
    ocr_threads: int,
) -> tuple[tuple[np.ndarray, np.ndarray] | None, ScreenText | None]:
    """((times_s, unit frame vectors) or None, on-screen text or None) for the wanted frame channels
    ("visual" at `fps`, needing `saliency`; "ocr" at `ocr_fps`): one decode serves both when the rates are
    equal (the default). A cached channel is not recomputed; every wanted channel cached: no decode."""
    rates = {"visual": fps, "ocr": ocr_fps}
    keys = _keys(fingerprint, saliency, rates)
    done = {c: _cached(c, keys[c], saliency) for c in channels if c in rates}
    todo = [c for c, v in done.items() if v is None]
    for rate in dict.fromkeys(rates[c] for c in todo):
        part = [c for c in todo if rates[c] == rate]
        done.update(_compute(video, part, keys, saliency=saliency, fps=rate, ocr_threads=ocr_threads))
    return done.get("visual"), done.get("ocr")


def _compute(
    video: Video,
    todo: list[str],
    keys: dict[str, str],
    *,
    saliency: ClipSaliency | None,
    fps: float,
    ocr_threads: int,
) -> dict[str, Any]:
    times, vectors = [], []
    embedder = saliency if "visual" in todo else None
    ocr = _Ocr(ocr_engine(ocr_threads)) if "ocr" in todo else None
    with ThreadPoolExecutor(1, thread_name_prefix="ocr") as pool:
        pending: deque[Future] = deque()  # OCR of earlier chunks, in order (one worker: FIFO)
        for chunk in iter_frame_chunks(video.path, fps=fps, max_pixels=frame_pixels(video)):
            if ocr is not None:
                pending.append(pool.submit(ocr.feed, chunk.timestamps_s, chunk.pixels))
            if embedder is not None:
                times.append(chunk.timestamps_s)
                vectors.append(embedder.encode_frames(chunk.pixels))
            while len(pending) > LIBRARY.ocr_queue_chunks:  # memory: the decoder waits for the OCR
                pending.popleft().result()
        for job in pending:
            job.result()  # raises what the OCR raised
    out: dict[str, Any] = {}
    if embedder is not None:
        pair = (
            np.concatenate(times) if times else np.zeros(0),
            np.concatenate(vectors) if vectors else embedder.encode_frames(np.zeros((0, 8, 8, 3), np.uint8)),
        )
        if isinstance(embedder.cache, EmbeddingCache):
            embedder.cache.save(keys["visual"], {"times_s": pair[0], "vectors": pair[1]})
        out["visual"] = pair
    if ocr is not None:
        screen = ScreenText(tuple(ocr.frames), fps, video.duration_s, ScreenReader.model_name(), 0.0)
        write_json_atomic(cache_folder("ocr") / f"library-{keys['ocr']}.json", screen.to_dict())
        log.debug("%s: OCR read %d of %d frames", video.path, ocr.read, len(ocr.frames))
        out["ocr"] = screen
    return out
