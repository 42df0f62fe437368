"""Model-free signals over a video's time: audio loudness, visual motion and scene novelty.

Everything here is a `Curve` (one value per timestamp), the shape every saliency-like signal takes in
this package (CLIP similarity in `saliency`, fusion in `highlights`, window features in `rerank_features`).
Frames are streamed through `video.sample_frames` in time chunks so memory stays bounded on long videos.
"""

from __future__ import annotations

import functools
import itertools
import math
from collections import deque
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import av
import numpy as np

from grounding_agent.defaults import SAMPLING
from grounding_agent.errors import ConfigError, CorruptVideoError, NotAVideoError, VideoNotFoundError
from grounding_agent.types import Frames

# Decode at most this many seconds of video at once (frames of one chunk are held in memory together).
DEFAULT_CHUNK_S = 60.0
# Motion and histograms need little resolution: decode at about 160x90.
SIGNAL_MAX_PIXELS = 160 * 90
# dBFS floor for silence, so log(0) never happens and digital silence does not dominate the range.
SILENCE_DB = -80.0
HIST_BINS = 16


@dataclass(frozen=True, eq=False)
class Curve:
    """A signal sampled over a video's time.

    Attributes:
        name: what it measures ("clip", "motion", "audio", ...).
        times_s: float array (T,), strictly increasing, seconds from the video's start.
        values: float array (T,), one value per time.
    """

    name: str
    times_s: np.ndarray
    values: np.ndarray

    def __post_init__(self) -> None:
        times = np.asarray(self.times_s, dtype=np.float64).reshape(-1)
        values = np.asarray(self.values, dtype=np.float64).reshape(-1)
        if len(times) != len(values):
            raise ConfigError(f"curve {self.name!r}: {len(times)} times but {len(values)} values")
        if len(times) > 1 and not np.all(np.diff(times) > 0):
            raise ConfigError(f"curve {self.name!r}: times must be strictly increasing")
        if not np.all(np.isfinite(values)):
            raise ConfigError(f"curve {self.name!r}: values must be finite")
        object.__setattr__(self, "times_s", times)
        object.__setattr__(self, "values", values)

    def __len__(self) -> int:
        return len(self.times_s)

    def with_values(self, values: np.ndarray, name: str | None = None) -> Curve:
        return Curve(name or self.name, self.times_s, values)

    def minmax(self) -> Curve:
        """Scaled to [0, 1]; a flat curve becomes all zeros (it carries no ranking information)."""
        return self.with_values(minmax(self.values))

    def zscore(self) -> Curve:
        """Zero mean, unit variance over this video; a flat curve becomes all zeros."""
        return self.with_values(zscore(self.values))

    def to_dict(self) -> dict[str, object]:
        return {"name": self.name, "times_s": self.times_s.tolist(), "values": self.values.tolist()}


def minmax(values: np.ndarray) -> np.ndarray:
    values = np.asarray(values, dtype=np.float64)
    if values.size == 0:
        return values
    span = values.max() - values.min()
    return (values - values.min()) / span if span > 1e-12 else np.zeros_like(values)


def zscore(values: np.ndarray) -> np.ndarray:
    values = np.asarray(values, dtype=np.float64)
    if values.size == 0:
        return values
    std = values.std()
    return (values - values.mean()) / std if std > 1e-12 else np.zeros_like(values)


# --- frames, streamed -----------------------------------------------------------------------------


def iter_frame_chunks(
    path: str | Path,
    *,
    fps: float,
    max_pixels: int | None = None,
    chunk_s: float = DEFAULT_CHUNK_S,
    start_s: float = 0.0,
    end_s: float | None = None,
    keyframes_only: bool = False,
    threads: int | None = None,
) -> Iterator[Frames]:
    """Yield `Frames` sampled at `fps`, `chunk_s` seconds of video at a time, in order, no frame twice.

    Chunks decode ahead on `threads` cores (default: all), one chunk per core, so memory is at most
    `threads + 1` chunks' frames whatever the video's length. `keyframes_only`: the keyframe nearest each
    target (see `video.sample_frames`), a cheap coarse pass over a long video.

    Raises:
        ConfigError: if fps, chunk_s or threads is not positive.
        VideoError: (subclasses) if the file cannot be opened or decoded.
    """
    from grounding_agent.video import open_video, sample_frames, usable_cores

    if fps <= 0 or chunk_s <= 0:
        raise ConfigError(f"fps and chunk_s must be > 0, got fps={fps}, chunk_s={chunk_s}")
    if threads is not None and (isinstance(threads, bool) or not isinstance(threads, int) or threads < 1):
        raise ConfigError(f"threads must be a whole number >= 1, got {threads!r}")
    video = open_video(path)
    stop_s = video.duration_s if end_s is None else min(end_s, video.duration_s)
    # Chunks hold a whole number of sampling steps, so the chunked grid start + k / fps is exactly the
    # grid of one `sample_frames` call over the whole window.
    step_s = max(1, math.floor(chunk_s * fps)) / fps
    windows = ((t0, min(t0 + step_s, stop_s)) for t0 in (start_s + i * step_s for i in itertools.count()))
    windows = itertools.takewhile(lambda w: w[0] < stop_s - 1e-6, windows)
    sample = functools.partial(sample_frames, video, fps=fps, max_pixels=max_pixels, keyframes_only=keyframes_only)
    workers = threads or usable_cores()
    last_index = -1
    # Whole chunks run in parallel, each on one core: long runs of GOPs with no thread waiting on another.
    with ThreadPoolExecutor(workers, thread_name_prefix="chunks") as pool:
        ahead = deque(pool.submit(sample, start_s=a, end_s=b, threads=1) for a, b in itertools.islice(windows, workers))
        while ahead:
            frames = ahead.popleft().result()
            for a, b in itertools.islice(windows, 1):
                ahead.append(pool.submit(sample, start_s=a, end_s=b, threads=1))
            fresh = frames.indices > last_index  # on low-frame-rate video one frame can cover two targets
            if fresh.any():
                frames = frames if fresh.all() else frames.subset(fresh)
                last_index = int(frames.indices[-1])
                yield frames


# --- visual ----------------------------------------------------------------------------------------


def _gray(pixels: np.ndarray) -> np.ndarray:
    return pixels.astype(np.float32) @ np.array([0.299, 0.587, 0.114], dtype=np.float32)


def _histograms(pixels: np.ndarray) -> np.ndarray:
    """(T, H, W, 3) uint8 -> (T, 3 * HIST_BINS) per-channel colour histograms, each channel sums to 1."""
    t = pixels.shape[0]
    binned = (pixels.reshape(t, -1, 3) // (256 // HIST_BINS)).astype(np.int64)
    offsets = np.arange(3) * HIST_BINS + np.arange(t)[:, None, None] * 3 * HIST_BINS
    counts = np.bincount((binned + offsets).ravel(), minlength=t * 3 * HIST_BINS).reshape(t, 3 * HIST_BINS)
    return counts / (binned.shape[1])


def visual_change(
    path: str | Path,
    *,
    fps: float = SAMPLING.fps,
    max_pixels: int = SIGNAL_MAX_PIXELS,
    chunk_s: float = DEFAULT_CHUNK_S,
) -> tuple[Curve, Curve]:
    """Motion and scene novelty of a video, one value per sampled frame.

    - motion: mean absolute grey-level difference to the previous sampled frame, in [0, 1]
      (camera or subject movement, cuts). The first frame gets the second frame's value.
    - scene: total-variation distance of the frame's colour histogram to the video's median histogram,
      in [0, 1] (how unlike the rest of the video this frame looks: an inserted scene, a flash).

    Returns:
        (motion, scene) curves on the sampled frames' timestamps.
    """
    times, motion, hists = [], [], []
    prev: np.ndarray | None = None
    for frames in iter_frame_chunks(path, fps=fps, max_pixels=max_pixels, chunk_s=chunk_s):
        gray = _gray(frames.pixels)
        stacked = gray if prev is None else np.concatenate([prev[None], gray])
        diffs = np.abs(np.diff(stacked, axis=0)).mean(axis=(1, 2)) / 255.0
        if prev is None:  # the very first frame has no predecessor: borrow its successor's value
            diffs = np.concatenate([diffs[:1] if len(diffs) else np.zeros(1), diffs])
        motion.extend(diffs.tolist())
        prev = gray[-1]
        times.extend(frames.timestamps_s.tolist())
        hists.append(_histograms(frames.pixels))
    all_hists = np.concatenate(hists)
    scene = 0.5 * np.abs(all_hists - np.median(all_hists, axis=0)).sum(axis=1) / 3.0
    times_s = np.asarray(times)
    return Curve("motion", times_s, np.asarray(motion)), Curve("scene", times_s, scene)


# --- audio -----------------------------------------------------------------------------------------


def has_audio(path: str | Path) -> bool:
    """Whether the container has an audio stream."""
    with _open_container(path) as container:
        return bool(container.streams.audio)


def _open_container(path: str | Path) -> av.container.InputContainer:
    path = Path(path)
    if not path.is_file():
        raise VideoNotFoundError(path, "no such file; check the path")
    try:
        return av.open(str(path))
    except av.error.FFmpegError as exc:
        raise NotAVideoError(path, f"not a media file ffmpeg can open ({exc.strerror or exc})") from exc


def audio_energy(path: str | Path, *, hop_s: float = 0.5, sample_rate: int = 16000) -> Curve | None:
    """Loudness of the first audio stream: RMS in dBFS per `hop_s` window (decoded with PyAV).

    The stream is resampled to mono float at `sample_rate` and reduced on the fly, so memory does not
    grow with the video's length. Times are window centres.

    Returns:
        The "audio" curve, or None if the file has no audio stream.

    Raises:
        VideoNotFoundError, NotAVideoError: if the file is missing or not media.
        CorruptVideoError: if the audio stream fails to decode.
    """
    if hop_s <= 0:
        raise ConfigError(f"hop_s must be > 0, got {hop_s}")
    hop = max(1, int(round(hop_s * sample_rate)))
    rms: list[float] = []
    pending = np.zeros(0, dtype=np.float64)  # samples not yet filling a whole hop
    start_s: float | None = None
    with _open_container(path) as container:
        if not container.streams.audio:
            return None
        resampler = av.AudioResampler(format="flt", layout="mono", rate=sample_rate)
        try:
            for frame in _decoded_then_flushed(container, container.streams.audio[0], resampler):
                if start_s is None:
                    start_s = max(0.0, float(frame.time or 0.0))
                pending = np.concatenate([pending, frame.to_ndarray().reshape(-1).astype(np.float64)])
                n_full = len(pending) // hop
                if n_full:
                    blocks = pending[: n_full * hop].reshape(n_full, hop)
                    rms.extend(np.sqrt((blocks**2).mean(axis=1)).tolist())
                    pending = pending[n_full * hop :]
        except av.error.FFmpegError as exc:
            raise CorruptVideoError(path, f"audio stream fails to decode ({exc.strerror or exc})") from exc
    centres = [(i + 0.5) * hop for i in range(len(rms))]
    if len(pending) >= hop // 4:  # a short tail still counts; a few stray samples do not
        rms.append(float(np.sqrt((pending**2).mean())))
        centres.append(len(centres) * hop + len(pending) / 2.0)
    if not rms:
        return None
    db = np.maximum(20.0 * np.log10(np.maximum(np.asarray(rms), 1e-12)), SILENCE_DB)
    return Curve("audio", (start_s or 0.0) + np.asarray(centres) / sample_rate, db)


def _decoded_then_flushed(container, stream, resampler) -> Iterator[av.AudioFrame]:
    for frame in container.decode(stream):
        yield from resampler.resample(frame)
    yield from resampler.resample(None)
