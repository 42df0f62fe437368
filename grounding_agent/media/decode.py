"""Decode sampled frames: `sample_frames` (one window) and `iter_frame_chunks` (a long video, streamed).

PyAV decodes the sampled frames: it walks each GOP once, seeks only across GOPs, skips non-reference
frames it does not keep and converts to RGB (scaled in the same swscale pass) only the frames it keeps.
Runs of whole GOPs are decoded in parallel threads, one per core, each with its own demuxer and decoder.
`bench/decode.py` compares this with decord, PyAV, torchcodec and ffmpeg's own decode floors.
Each decoded frame is matched to decord's index (`video`) by its timestamp; frames PyAV does not deliver
are taken from decord. A display rotation is applied as ffmpeg's autorotate would.

    frames = sample_frames("clip.mp4", fps=1.0, max_frames=64, max_pixels=448 * 448, cache=True)
"""

from __future__ import annotations

import bisect
import functools
import itertools
import logging
import math
import os
from collections import deque
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from fractions import Fraction
from pathlib import Path

import av
import numpy as np

from grounding_agent.defaults import LIMITS, MEDIA
from grounding_agent.errors import ConfigError, CorruptVideoError, SamplingError
from grounding_agent.media.frame_cache import DEFAULT_FRAME_CACHE, FrameCache
from grounding_agent.media.frame_plan import plan_from_index, positive_int
from grounding_agent.media.video import (
    DECORD_ERRORS,
    VideoIndex,
    _file_key,
    _load_index,
    decord_reader,
    open_video,
    path_of,
)
from grounding_agent.types import Frames, Video

__all__ = ["iter_frame_chunks", "sample_frames", "usable_cores"]

logger = logging.getLogger(__name__)

# Frames per decord get_batch call in the fallback path (its batch is a second copy of the pixels).
_DECORD_CHUNK = 32

# GOP-walking threads (None: one per core); bench/decode.py sets 1 to measure the decoder's own threading.
_DECODE_WORKERS: int | None = None
_MAX_WORKERS = 8  # past that, GOP runs get short and seeks dominate
# The shortest GOP run, as a share of one thread's work: the runs taken last are this short, so threads
# finish within about one of them of each other; each run costs one open + seek.
_SHORTEST_RUN = 1 / 16


def sample_frames(
    video_or_path: Video | str | os.PathLike,
    *,
    fps: float | None = None,
    max_frames: int | None = None,
    start_s: float | None = None,
    end_s: float | None = None,
    max_pixels: int | None = None,
    cache: bool | FrameCache = False,
    keyframes_only: bool = False,
    threads: int | None = None,
) -> Frames:
    """Sample frames at `fps` (capped at `max_frames`) from the window [start_s, end_s).

    Target times are start_s + k / rate; each takes the frame whose timestamp is nearest (duplicates
    dropped), so `Frames.timestamps_s` are real presentation times, also on variable-frame-rate files.

    Args:
        fps: frames per second of video. With only `max_frames`, frames spread evenly over the window.
        max_frames: cap; when it lowers the rate, `Frames.fps` is the effective rate and
            `Frames.requested_fps` what was asked.
        start_s, end_s: the window (default: the whole video); an end past the video means its end.
        max_pixels: resize (keeping the aspect ratio) so that height * width <= max_pixels.
        cache: True for the shared `DEFAULT_FRAME_CACHE`, or a `FrameCache`; decoded frames are reused by
            later calls on the same unchanged file.
        keyframes_only: take the keyframe nearest each target instead of the nearest frame: a coarse
            pass over a long video for the price of decoding its keyframes alone (~10x cheaper than
            1 fps on H.264 with 8-s GOPs), at the keyframes' own spacing at most.
        threads: cores to decode on (default: all this process may use).

    Raises:
        SamplingError: bad fps / max_frames / window.
        VideoError: the file cannot be decoded (see `open_video`).
    """
    key = _file_key(path_of(video_or_path))
    index = _load_index(key)
    plan = plan_from_index(index, fps, max_frames, start_s, end_s, max_pixels, bool(keyframes_only))
    size = plan.frame_size
    if not isinstance(cache, (bool, FrameCache)):
        raise SamplingError(index.video.path, f"cache must be True, False or a FrameCache, got {cache!r}")
    if threads is not None and not positive_int(threads):
        raise SamplingError(index.video.path, f"threads must be a whole number >= 1, got {threads!r}")
    frame_cache = DEFAULT_FRAME_CACHE if cache is True else (cache if isinstance(cache, FrameCache) else None)
    _check_bytes(len(plan.indices), size)
    pixels = np.empty((len(plan.indices), size[1], size[0], 3), dtype=np.uint8)
    keys = [(key, size, int(i)) for i in plan.indices]
    todo = _from_cache(frame_cache, keys, pixels)
    if todo:
        slots = np.asarray(todo)
        _decode_into(index, plan.indices[slots], size, pixels, slots, threads)
        if frame_cache is not None:
            for pos in todo:
                frame_cache.put(keys[pos], pixels[pos])
    return Frames(
        video=index.video,
        pixels=pixels,
        timestamps_s=plan.timestamps_s,
        indices=plan.indices,
        fps=plan.fps,
        requested_fps=plan.requested_fps,
        window_s=plan.window_s,
    )


def _check_bytes(count: int, size: tuple[int, int]) -> None:
    """Refuse, before decoding, a sampling whose pixels would not fit `LIMITS.max_sample_bytes`."""
    need = count * size[0] * size[1] * 3
    if need > LIMITS.max_sample_bytes:
        raise ConfigError(
            f"{count} frames of {size[0]}x{size[1]} would hold {need / 2**30:.1f} GiB of pixels; the most one "
            f"sampling holds is {LIMITS.max_sample_bytes / 2**30:.0f} GiB: lower fps, max_frames or max_pixels"
        )


def _from_cache(cache: FrameCache | None, keys: list, out: np.ndarray) -> list[int]:
    """Fill `out[pos]` from `cache` where it holds `keys[pos]`; returns the positions still to decode."""
    todo = []
    for pos, key in enumerate(keys):
        hit = cache.get(key) if cache is not None else None
        if hit is None:
            todo.append(pos)
        else:
            out[pos] = hit
    return todo


def _decode_into(
    index: VideoIndex,
    wanted: np.ndarray,
    size: tuple[int, int],
    out: np.ndarray,
    slots: np.ndarray,
    threads: int | None = None,
) -> None:
    """Decode frames `wanted` (sorted decord indices) into `out[slots]`: PyAV first, decord for the rest."""
    path = index.video.path
    found = _decode_pyav(index, wanted, size, out, slots, threads)
    missing = np.flatnonzero(~found)
    if len(missing) == 0:
        return
    logger.debug(
        "%s: %d of %d frames not delivered by PyAV; decoding them with decord",
        path,
        len(missing),
        len(wanted),
    )
    turns = index.quarter_turns
    coded = size if turns % 2 == 0 else size[::-1]  # decord ignores the display rotation: we apply it
    reader = decord_reader(path, *(coded if size != (index.video.width, index.video.height) else (-1, -1)))
    for chunk in np.array_split(missing, math.ceil(len(missing) / _DECORD_CHUNK)):  # bounded extra memory
        try:
            batch = reader.get_batch((wanted[chunk] + index.first).tolist()).asnumpy()  # decord's own index
            out[slots[chunk]] = np.rot90(batch, turns, axes=(1, 2)) if turns else batch
        except DECORD_ERRORS as exc:
            logger.debug("%s: decord failed too: %s", path, exc)
            raise CorruptVideoError(
                path,
                f"frames fail to decode near {index.starts_s[wanted[chunk[0]]]:.2f} s; the file is damaged: "
                "re-encode or re-download it",
            ) from None


def _decode_pyav(
    index: VideoIndex,
    wanted: np.ndarray,
    size: tuple[int, int],
    out: np.ndarray,
    slots: np.ndarray,
    threads: int | None = None,
) -> np.ndarray:
    """Decode `wanted` frames GOP by GOP on `threads` cores (default: all); returns which were delivered.

    Seeks only when the next wanted frame lies beyond the next keyframe; otherwise decodes forward,
    skipping non-reference frames it does not keep and converting to RGB only the frames it keeps.
    GOPs are independent, so contiguous runs of them go to one thread per core, each run with its own
    demuxer and decoder (PyAV releases the GIL while decoding and converting): the decoder's own frame
    threading keeps barely more than one core busy. Runs are taken as threads come free and shrink towards
    the end, so no core idles there. Memory: each decoder's few reference frames plus `out`.
    """
    found = np.zeros(len(wanted), dtype=bool)
    targets = index.starts_s[wanted]
    turns = index.quarter_turns
    coded = size if turns % 2 == 0 else size[::-1]  # the decoder scales before we rotate
    full = (index.video.width, index.video.height)
    resize = {} if size == full else {"width": coded[0], "height": coded[1]}
    threads = threads or usable_cores()
    workers = _DECODE_WORKERS or min(_MAX_WORKERS, threads)
    parts = _split_gops(index, wanted, workers)
    running = min(workers, len(parts))
    # Alone, a run's decoder threads itself on every core; beside other runs, on the cores they leave
    # (frame threads on a taken core only add latency and reference-frame copies).
    job = functools.partial(
        _decode_part, index, targets, resize, turns, out, slots, found, threads // running
    )
    if running == 1:
        for part in parts:
            job(part)
    else:
        with ThreadPoolExecutor(running, thread_name_prefix="decode") as pool:
            list(pool.map(job, parts))
    return found


def usable_cores() -> int:
    """Cores this process may run on."""
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1


def _split_gops(index: VideoIndex, wanted: np.ndarray, workers: int) -> list[slice]:
    """Cut the sorted `wanted` frames into runs of whole GOPs for `workers` threads, longest first.

    The work of a frame is the frames decoded to reach it: from its keyframe, or from the previous wanted
    frame in the same GOP. Equal runs left one thread idle for most of a run at the end (1.9 s of 34 on a
    10-min 1-fps decode); runs that shrink (guided scheduling) end the threads within a short run.
    """
    if workers <= 1 or len(wanted) < 2:
        return [slice(0, len(wanted))]
    key_frames = np.searchsorted(index.starts_s, index.key_starts_s - index.tol_s)
    gop = np.searchsorted(key_frames, wanted, side="right") - 1
    new_gop = np.concatenate([[True], gop[1:] != gop[:-1]])
    prev = np.where(new_gop, key_frames[gop], np.concatenate([[0], wanted[:-1]]))
    work = np.cumsum(wanted - prev + 1)
    starts = np.flatnonzero(new_gop)  # where a run may begin
    if len(starts) < 2:
        return [slice(0, len(wanted))]
    before = np.concatenate([[0], work])[starts]  # work done before each possible run start
    goals = _run_ends(float(work[-1]), workers)
    cuts = np.unique(starts[np.clip(np.searchsorted(before, goals), 1, len(starts) - 1)])
    bounds = [0, *cuts.tolist(), len(wanted)]
    return [slice(a, b) for a, b in zip(bounds[:-1], bounds[1:]) if b > a]


def _run_ends(total: float, workers: int) -> list[float]:
    """Work done at the end of each run but the last: each run takes 1/(2 x workers) of the work left,
    down to `_SHORTEST_RUN` of one thread's share."""
    shortest = total / workers * _SHORTEST_RUN
    ends, done = [], 0.0
    while total - done > 1.5 * shortest:
        done += max((total - done) / (2 * workers), shortest)
        ends.append(done)
    return ends


def _decode_part(
    index: VideoIndex,
    targets: np.ndarray,
    resize: dict,
    turns: int,
    out: np.ndarray,
    slots: np.ndarray,
    found: np.ndarray,
    decoder_threads: int,
    part: slice,
) -> None:
    """One run of GOPs, with its own demuxer and decoder (`found[part]` is a view: writes land)."""
    with av.open(str(index.video.path)) as container:
        try:
            args = (targets[part], resize, turns, out, slots[part], found[part], decoder_threads)
            _walk_gops(container, index, *args)
        except av.error.FFmpegError as exc:  # damaged data: decord gets a chance at the rest
            logger.debug("%s: PyAV stopped decoding (%s)", index.video.path, exc)


def _walk_gops(
    container: av.container.InputContainer,
    index: VideoIndex,
    targets: np.ndarray,
    resize: dict,
    turns: int,
    out: np.ndarray,
    slots: np.ndarray,
    found: np.ndarray,
    decoder_threads: int = 1,
) -> None:
    """Fill `out[slots[i]]` with the frame at `targets[i]` (sorted seconds) and set `found[i]`."""
    tol = index.tol_s
    stream = next(
        s for s in container.streams.video if not s.disposition & av.stream.Disposition.attached_pic
    )
    if decoder_threads > 1:
        stream.thread_type, stream.codec_context.thread_count = "AUTO", decoder_threads
    else:
        stream.thread_type = "NONE"
    time_base = stream.time_base or Fraction(1, 1)
    origin = stream.start_time or 0
    seconds_per_tick = float(time_base)  # floats, not Fractions, per frame: within 1 ulp, far below tol
    zero_s = index.zero_s  # the first presented frame's time on the stream's clock
    frames = None  # decoding generator, None until the first seek
    pos_s = -math.inf  # time of the last decoded frame
    pending = None  # a decoded frame not yet consumed (it came after a target that never appeared)
    for i, t in enumerate(targets):
        key_s = index.key_starts_s[np.searchsorted(index.key_starts_s, t + tol, side="right") - 1]
        if frames is None or key_s > pos_s + tol or t < pos_s - tol:
            # A fresh demuxer already stands at the first GOP: no seek (a pre-roll keyframe may have no
            # timestamp to seek to). Else land just after the keyframe's decord time (float32) so a
            # backward seek finds it.
            if frames is not None or key_s > index.key_starts_s[0] + tol:
                target = int((key_s + zero_s + tol / 2) / time_base) + origin
                container.seek(target, stream=stream, backward=True)
                stream.codec_context.flush_buffers()
            frames, pending = _decode_kept(container, stream, targets + zero_s, tol), None
        while True:
            frame = pending if pending is not None else next(frames, None)
            pending = None
            if frame is None:
                break
            if frame.pts is None:
                continue
            frame_s = (frame.pts - origin) * seconds_per_tick - zero_s
            pos_s = frame_s
            if frame_s >= t - tol:
                break
        if frame is None:
            break  # stream ended: the rest stays missing
        if abs(frame_s - t) <= tol:
            rgb = frame.to_ndarray(format="rgb24", **resize)
            out[slots[i]] = np.rot90(rgb, turns) if turns else rgb
            found[i] = True
        else:
            pending = frame  # later than this target: may be the next one


def _decode_kept(
    container: av.container.InputContainer, stream: av.VideoStream, kept_s: np.ndarray, tol: float
):
    """Decode `stream` from the current position, skipping non-reference frames that are not kept.

    A non-reference frame (most B-frames) is never needed to decode another one, so skipping it is
    exact; on typical H.264 this halves the decoding work between sampled frames.
    """
    codec = stream.codec_context
    seconds_per_tick = float(stream.time_base or 1)
    origin = stream.start_time or 0
    kept = kept_s.tolist()  # bisect on a list: a packet's check costs well under a microsecond
    mode = None
    for packet in container.demux(stream):
        keep = packet.pts is None  # no timestamp: cannot tell, so decode it
        if not keep:
            t = (packet.pts - origin) * seconds_per_tick
            j = bisect.bisect_left(kept, t - tol)
            keep = j < len(kept) and kept[j] <= t + tol
        if mode != (wanted := "DEFAULT" if keep else "NONREF"):  # most packets keep the previous one
            codec.skip_frame = mode = wanted
        yield from codec.decode(packet)


# --- frames, streamed -----------------------------------------------------------------------------


def iter_frame_chunks(
    path: str | Path,
    *,
    fps: float,
    max_pixels: int | None = None,
    chunk_s: float = MEDIA.decode_chunk_s,
    start_s: float = 0.0,
    end_s: float | None = None,
    keyframes_only: bool = False,
    threads: int | None = None,
) -> Iterator[Frames]:
    """Yield `Frames` sampled at `fps`, `chunk_s` seconds of video at a time, in order, no frame twice.

    Chunks decode ahead on `threads` cores (default: all), one chunk per core, so memory is at most
    `threads + 1` chunks' frames whatever the video's length. `keyframes_only`: the keyframe nearest each
    target (see `sample_frames`), a cheap coarse pass over a long video.

    Raises:
        ConfigError: if fps, chunk_s or threads is not positive.
        VideoError: (subclasses) if the file cannot be opened or decoded.
    """
    LIMITS.check_fps(fps)  # before the chunk grid: 1e6 fps would plan 60 M targets per chunk
    if not chunk_s > 0:
        raise ConfigError(f"chunk_s must be > 0, got {chunk_s}")
    if threads is not None and (isinstance(threads, bool) or not isinstance(threads, int) or threads < 1):
        raise ConfigError(f"threads must be a whole number >= 1, got {threads!r}")
    video = open_video(path)
    stop_s = video.duration_s if end_s is None else min(end_s, video.duration_s)
    # Chunks hold a whole number of sampling steps, so the chunked grid start + k / fps is exactly the
    # grid of one `sample_frames` call over the whole window.
    step_s = max(1, math.floor(chunk_s * fps)) / fps
    windows = ((t0, min(t0 + step_s, stop_s)) for t0 in (start_s + i * step_s for i in itertools.count()))
    windows = itertools.takewhile(lambda w: w[0] < stop_s - 1e-6, windows)
    sample = functools.partial(
        sample_frames, video, fps=fps, max_pixels=max_pixels, keyframes_only=keyframes_only
    )
    workers = threads or usable_cores()
    last_index = -1
    # Whole chunks run in parallel, each on one core: long runs of GOPs with no thread waiting on another.
    with ThreadPoolExecutor(workers, thread_name_prefix="chunks") as pool:
        ahead = deque(
            pool.submit(sample, start_s=a, end_s=b, threads=1) for a, b in itertools.islice(windows, workers)
        )
        while ahead:
            frames = ahead.popleft().result()
            for a, b in itertools.islice(windows, 1):
                ahead.append(pool.submit(sample, start_s=a, end_s=b, threads=1))
            fresh = frames.indices > last_index  # on low-frame-rate video one frame can cover two targets
            if fresh.any():
                frames = frames if fresh.all() else frames.subset(fresh)
                last_index = int(frames.indices[-1])
                yield frames
