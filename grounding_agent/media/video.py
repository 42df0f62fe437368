"""Open videos and sample frames with their real presentation times.

decord indexes the file: every frame's timestamp (also on variable-frame-rate files) and the keyframes.
PyAV decodes the sampled frames: it walks each GOP once, seeks only across GOPs, skips non-reference
frames it does not keep and converts to RGB (scaled in the same swscale pass) only the frames it keeps.
Runs of whole GOPs are decoded in parallel threads, one per core, each with its own demuxer and decoder.
`bench/decode.py` compares this with decord, PyAV, torchcodec and ffmpeg's own decode floors.
Each decoded frame is matched to decord's index by its timestamp; frames PyAV does not deliver are taken
from decord. A display rotation (a phone's `rotate=90`) is applied as ffmpeg's autorotate would, and
`Video.width/height` are the displayed size. Only this module imports decord.

    video = open_video("clip.mp4")
    frames = sample_frames(video, fps=1.0, max_frames=64, max_pixels=448 * 448, cache=True)
"""

from __future__ import annotations

import bisect
import functools
import itertools
import logging
import math
import os
import re
import stat
import threading
from collections import OrderedDict, deque
from collections.abc import Hashable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path

import av
import decord
import numpy as np
from decord._ffi.base import DECORDError

from grounding_agent.errors import (
    ConfigError,
    CorruptVideoError,
    EmptyVideoError,
    NotAVideoError,
    NoVideoStreamError,
    SamplingError,
    TruncatedVideoError,
    UnsupportedCodecError,
    VideoNotFoundError,
)
from grounding_agent.types import Frames, Video

__all__ = [
    "DEFAULT_FRAME_CACHE",
    "FrameCache",
    "FramePlan",
    "fit_max_pixels",
    "frame_times",
    "open_video",
    "plan_frames",
    "sample_frames",
]

logger = logging.getLogger(__name__)

# decord's bundled ffmpeg otherwise prints its own log lines to stderr; its failures become typed errors.
decord.logging.set_level(decord.logging.QUIET)

# decord raises both (DECORDError is a plain Exception, not a RuntimeError).
_DECORD_ERRORS = (DECORDError, RuntimeError)

# A container that claims this much more video than decodes is truncated (audio tails, rounding stay below).
_TRUNCATION_SLACK_S = 1.0

_REENCODE = "`ffmpeg -i IN -c:v libx264 OUT.mp4`"

# Frames per decord get_batch call in the fallback path (its batch is a second copy of the pixels).
_DECORD_CHUNK = 32

# GOP-walking threads (None: one per core); bench/decode.py sets 1 to measure the decoder's own threading.
_DECODE_WORKERS: int | None = None
_MAX_WORKERS = 8  # past that, GOP runs get short and seeks dominate
# The shortest GOP run, as a share of one thread's work: the runs taken last are this short, so threads
# finish within about one of them of each other; each run costs one open + seek.
_SHORTEST_RUN = 1 / 16

# (resolved path, mtime ns, size): changes whenever the file does.
FileKey = tuple[str, int, int]


# --- frame cache ------------------------------------------------------------------------------------


class FrameCache:
    """Thread-safe LRU of decoded frames within a byte budget.

    Keys are (file key, output size, frame index), so any later sampling of the same file at the same
    resolution reuses every frame it shares with earlier ones (another window, another fps).

    Args:
        max_bytes: budget for the pixel data held; least recently used frames are dropped first.
    """

    def __init__(self, max_bytes: int = 1 << 30):
        if max_bytes < 0:
            raise ValueError(f"max_bytes must be >= 0, got {max_bytes}")
        self.max_bytes = max_bytes
        self.nbytes = 0
        self.hits = 0
        self.misses = 0
        self._frames: OrderedDict[Hashable, np.ndarray] = OrderedDict()
        self._lock = threading.Lock()

    def __len__(self) -> int:
        return len(self._frames)

    def get(self, key: Hashable) -> np.ndarray | None:
        with self._lock:
            frame = self._frames.get(key)
            if frame is None:
                self.misses += 1
                return None
            self._frames.move_to_end(key)
            self.hits += 1
            return frame

    def put(self, key: Hashable, frame: np.ndarray) -> None:
        if frame.nbytes > self.max_bytes:
            return
        frame = frame.copy()
        frame.setflags(write=False)  # shared between callers: nobody may edit it in place
        with self._lock:
            old = self._frames.pop(key, None)
            if old is not None:
                self.nbytes -= old.nbytes
            self._frames[key] = frame
            self.nbytes += frame.nbytes
            while self.nbytes > self.max_bytes:
                _, dropped = self._frames.popitem(last=False)
                self.nbytes -= dropped.nbytes

    def clear(self) -> None:
        with self._lock:
            self._frames.clear()
            self.nbytes = self.hits = self.misses = 0


DEFAULT_FRAME_CACHE = FrameCache()


# --- opening and checking a file --------------------------------------------------------------------


@dataclass(frozen=True)
class _Index:
    """What decord knows about a file without decoding it."""

    video: Video
    starts_s: np.ndarray  # (N,) float64, each frame's presentation time, non-decreasing
    key_starts_s: np.ndarray  # (K,) float64, presentation times of keyframes, sorted
    tol_s: float  # two times closer than this are the same frame (decord stores float32 seconds)
    quarter_turns: int = 0  # display rotation, counterclockwise quarter turns (np.rot90's k)


def open_video(path: str | os.PathLike) -> Video:
    """Read a video's metadata (duration, frame count, fps, size) without decoding frames.

    Raises:
        VideoError: a subclass saying what is wrong with the file (missing, empty, not a video,
            truncated, no video stream, undecodable codec, corrupt).
    """
    return _load_index(_file_key(path)).video


def _file_key(path: str | os.PathLike) -> FileKey:
    if not isinstance(path, (str, os.PathLike)) or isinstance(path, bytes):
        raise VideoNotFoundError(path, f"a video path must be a str or path, got {type(path).__name__}")
    if "\0" in os.fspath(path):
        raise VideoNotFoundError(repr(os.fspath(path)), "the path contains a NUL byte; check the path")
    p = Path(path).expanduser()
    try:
        st = p.stat()
    except FileNotFoundError:
        if "://" in os.fspath(path):  # name it as typed: Path() would fold "http://" into "http:/"
            raise VideoNotFoundError(os.fspath(path), "is a URL; download the video and pass the file") from None
        raise VideoNotFoundError(p, "no such file; check the path") from None
    except OSError as exc:
        raise VideoNotFoundError(
            p, f"cannot be read ({exc.strerror}); check the path and its permissions"
        ) from None
    if stat.S_ISDIR(st.st_mode):
        raise VideoNotFoundError(p, "is a directory, not a video file; pass the path of a video file")
    if not stat.S_ISREG(st.st_mode):
        # A pipe or device has no size and cannot be seeked: it would read as "empty" or never end.
        raise NotAVideoError(p, f"is a {_file_kind(st.st_mode)}, not a regular file; save the video to a file")
    if st.st_size == 0:
        raise EmptyVideoError(p, "the file is empty (0 bytes); copy or download it again")
    return (str(p.resolve()), st.st_mtime_ns, st.st_size)


def _file_kind(mode: int) -> str:
    kinds = (
        (stat.S_ISFIFO, "FIFO (named pipe)"),
        (stat.S_ISCHR, "character device"),
        (stat.S_ISBLK, "block device"),
        (stat.S_ISSOCK, "socket"),
    )
    return next((name for test, name in kinds if test(mode)), "special file")


@functools.lru_cache(maxsize=64)
def _load_index(key: FileKey) -> _Index:
    path = Path(key[0])
    expected_s, width, height, turns = _check_container(path)
    if turns % 2:  # Video reports the displayed size: a phone's portrait clip is portrait
        width, height = height, width
    reader = _decord_reader(path)
    n = len(reader)
    if n == 0:
        raise CorruptVideoError(path, "the video stream has no decodable frames")
    # decord keeps float32 seconds: round to the microsecond so 1.001 does not print as 1.00100004673.
    ts = np.round(reader.get_frame_timestamp(np.arange(n)).astype(np.float64), 6)
    starts, stops = ts[:, 0], ts[:, 1]
    avg_fps = float(reader.get_avg_fps())
    if not math.isfinite(avg_fps) or avg_fps <= 0:
        avg_fps = (n - 1) / starts[-1] if n > 1 and starts[-1] > 0 else 1.0
    # Some containers store no packet durations: fall back to one average frame.
    last_stop = stops[-1] if stops[-1] > starts[-1] else starts[-1] + 1.0 / avg_fps
    keys = np.asarray(reader.get_key_indices(), dtype=np.int64)
    keys = keys[(keys >= 0) & (keys < n)]
    key_starts = np.unique(np.concatenate([[starts[0]], starts[keys]]))
    del reader
    video = Video(
        path=path, duration_s=float(last_stop), avg_fps=avg_fps, num_frames=n, width=width, height=height
    )
    if expected_s is not None and expected_s - video.duration_s > max(_TRUNCATION_SLACK_S, 3.0 / avg_fps):
        raise TruncatedVideoError(
            path,
            f"the container says {expected_s:.2f} s but frames end at {video.duration_s:.2f} s; "
            "the file was cut off (interrupted copy or download?): get a complete copy",
        )
    tol_s = 1e-4 + float(last_stop) * 2.0**-22
    return _Index(video=video, starts_s=starts, key_starts_s=key_starts, tol_s=tol_s, quarter_turns=turns)


def _decord_reader(path: Path, width: int = -1, height: int = -1) -> decord.VideoReader:
    try:
        return decord.VideoReader(str(path), width=width, height=height, num_threads=0)
    except _DECORD_ERRORS as exc:
        msg = str(exc)
        if "partial file" in msg:
            raise TruncatedVideoError(
                path, "the file ends mid-stream (cut off download or copy?): get a complete copy"
            ) from None
        if "cannot find video stream" in msg:
            raise UnsupportedCodecError(
                path,
                f"the video stream's codec cannot be decoded; re-encode it, e.g. {_REENCODE}",
            ) from None
        raise CorruptVideoError(
            path, f"cannot be indexed ({_first_line(msg)}); re-encode it with ffmpeg"
        ) from None


def _check_container(path: Path) -> tuple[float | None, int, int, int]:
    """Reject what decord would mis-handle, using PyAV (which fails cleanly) and the file's structure.

    Returns:
        (the video duration the container declares in seconds when reliable, else None; coded width;
        coded height; display rotation in counterclockwise quarter turns).
    """
    truncated = _mp4_truncation(path) or _mkv_truncation(path)
    try:
        container = av.open(str(path), metadata_errors="ignore")
    except av.error.FFmpegError as exc:
        if truncated:
            raise TruncatedVideoError(
                path, f"{truncated}; the file was cut off: get a complete copy"
            ) from None
        reason = getattr(exc, "strerror", None) or _first_line(str(exc))
        raise NotAVideoError(path, f"not a video file ffmpeg can read ({reason}); check the file") from None
    with container:
        if truncated:
            raise TruncatedVideoError(path, f"{truncated}; the file was cut off: get a complete copy")
        streams = [
            s for s in container.streams.video if not s.disposition & av.stream.Disposition.attached_pic
        ]
        if not streams:
            kinds = sorted({s.type for s in container.streams}) or ["no streams"]
            raise NoVideoStreamError(
                path, f"has no video stream (found: {', '.join(kinds)}); pass a video file"
            )
        stream = streams[0]
        if stream.codec_context is None:
            raise UnsupportedCodecError(
                path,
                f"its video codec is unknown to ffmpeg; re-encode it, e.g. {_REENCODE}",
            )
        size = stream.codec_context.width, stream.codec_context.height, _quarter_turns(container, stream)
        if stream.duration and stream.time_base:
            return float(stream.duration * stream.time_base), *size
        tagged = _parse_clock(stream.metadata.get("DURATION", ""))
        if tagged is not None:
            return tagged, *size
        if container.duration and not container.streams.audio:
            return container.duration / av.time_base, *size
        return None, *size


def _quarter_turns(container: av.container.InputContainer, stream: av.VideoStream) -> int:
    """The display rotation (a phone's `rotate=90` / display matrix) in counterclockwise quarter turns.

    PyAV exposes it per decoded frame only, so this decodes the first frame (milliseconds); ffmpeg's own
    autorotate turns a frame with rotation r by r degrees counterclockwise, and so do we.
    """
    try:
        for packet in container.demux(stream):
            for frame in packet.decode():
                return round(float(frame.rotation or 0.0) / 90.0) % 4
    except (av.error.FFmpegError, ValueError):
        pass  # undecodable: later checks and decoding say why
    return 0


def _mp4_truncation(path: Path) -> str | None:
    """Walk an ISO-BMFF (mp4/mov) file's top-level boxes: a box running past the end means a cut file."""
    size = path.stat().st_size
    with path.open("rb") as f:
        if f.read(8)[4:8] != b"ftyp":
            return None
        pos, kinds = 0, set()
        while pos + 8 <= size:
            f.seek(pos)
            head = f.read(16)
            box_size, kind = int.from_bytes(head[:4], "big"), head[4:8]
            if box_size == 1 and len(head) == 16:
                box_size = int.from_bytes(head[8:16], "big")
            elif box_size == 0:  # runs to the end of the file by definition
                box_size = size - pos
            if box_size < 8 or not all(32 <= c < 127 for c in kind):
                break  # trailing padding or junk, not a box: let ffmpeg judge the rest
            kinds.add(kind)
            if pos + box_size > size:
                name = kind.decode("latin-1")
                return f"the mp4 '{name}' box needs {pos + box_size} bytes but the file has {size}"
            pos += box_size
    if b"moov" not in kinds:
        return "the mp4 has no 'moov' index (recording or download never finished)"
    return None


def _mkv_truncation(path: Path) -> str | None:
    """A Matroska/WebM file whose Segment declares more bytes than the file holds was cut off."""
    size = path.stat().st_size
    with path.open("rb") as f:
        head = f.read(64)
    if head[:4] != b"\x1a\x45\xdf\xa3":
        return None
    header_size, pos = _ebml_vint(head, 4)
    if header_size is None:
        return None
    pos += header_size
    with path.open("rb") as f:
        f.seek(pos)
        seg = f.read(12)
    if seg[:4] != b"\x18\x53\x80\x67":
        return None
    seg_size, data_at = _ebml_vint(seg, 4)
    if seg_size is None:  # unknown size (live stream): nothing to compare
        return None
    end = pos + data_at + seg_size
    if end > size:
        return f"the Matroska segment needs {end} bytes but the file has {size}"
    return None


def _ebml_vint(buf: bytes, at: int) -> tuple[int | None, int]:
    """Decode an EBML variable-length size at `buf[at]`. Returns (value or None if unknown, next offset)."""
    if at >= len(buf) or buf[at] == 0:
        return None, at
    length = 8 - buf[at].bit_length() + 1
    raw = buf[at : at + length]
    if len(raw) < length:
        return None, at
    value = int.from_bytes(raw, "big") & ((1 << (7 * length)) - 1)
    if value == (1 << (7 * length)) - 1:
        return None, at + length
    return value, at + length


def _parse_clock(text: str) -> float | None:
    """'00:00:10.333000000' -> 10.333 (Matroska DURATION tags)."""
    parts = text.strip().split(":")
    if len(parts) != 3:
        return None
    try:
        return int(parts[0]) * 3600 + int(parts[1]) * 60 + float(parts[2])
    except ValueError:
        return None


def _first_line(text: str) -> str:
    """The gist of a (multi-line, log-prefixed) library error message."""
    lines = [re.sub(r"\[\d\d:\d\d:\d\d\]\s*\S+:\d+:\s*", "", line).strip() for line in text.splitlines()]
    lines = [line for line in lines if line]
    return lines[-1][:200] if lines else "unknown error"


# --- choosing frames --------------------------------------------------------------------------------


@dataclass(frozen=True)
class FramePlan:
    """Which frames a sampling takes, without decoding them.

    Attributes:
        video: the file's metadata.
        indices: (T,) frame indices, strictly increasing.
        timestamps_s: (T,) their presentation times.
        fps: the effective rate (see `Frames.fps`); requested_fps: what was asked.
        window_s: the window actually sampled (an end past the video is cut to its duration).
        frame_size: (width, height) of the frames after the max-pixels budget.
    """

    video: Video
    indices: np.ndarray
    timestamps_s: np.ndarray
    fps: float
    requested_fps: float | None
    window_s: tuple[float, float]
    frame_size: tuple[int, int]


def plan_frames(
    video_or_path: Video | str | os.PathLike,
    *,
    fps: float | None = None,
    max_frames: int | None = None,
    start_s: float | None = None,
    end_s: float | None = None,
    max_pixels: int | None = None,
    keyframes_only: bool = False,
) -> FramePlan:
    """The frames `sample_frames` would take with these arguments (same rules), without decoding any."""
    index = _load_index(_file_key(_path_of(video_or_path)))
    return _plan(index, fps, max_frames, start_s, end_s, max_pixels, keyframes_only)


def _path_of(video_or_path: Video | str | os.PathLike) -> str | os.PathLike:
    return video_or_path.path if isinstance(video_or_path, Video) else video_or_path


def frame_times(video_or_path: Video | str | os.PathLike) -> tuple[np.ndarray, np.ndarray]:
    """(every frame's presentation time, the keyframes' times), seconds, sorted: the decoder's own index.

    Editing snaps cuts to these (a frame boundary, or a keyframe for stream copy).
    """
    index = _load_index(_file_key(_path_of(video_or_path)))
    return index.starts_s.copy(), index.key_starts_s.copy()


def _plan(index: _Index, fps, max_frames, start_s, end_s, max_pixels, keyframes_only=False) -> FramePlan:
    """Target times start + k/rate -> the nearest frame (or keyframe) to each, deduplicated."""
    video = index.video
    path = video.path
    if fps is None and max_frames is None:
        raise SamplingError(path, "give fps and/or max_frames to say how many frames to sample")
    if fps is not None and (not _is_number(fps) or not math.isfinite(fps) or fps <= 0):
        raise SamplingError(path, f"fps must be a positive number, got {fps!r}")
    if max_frames is not None and not _positive_int(max_frames):
        raise SamplingError(path, f"max_frames must be a positive integer, got {max_frames!r}")
    if max_pixels is not None and not _positive_int(max_pixels):
        raise SamplingError(path, f"max_pixels must be a positive integer, got {max_pixels!r}")
    if not all(_is_number(v) for v in (start_s, end_s) if v is not None):
        raise SamplingError(path, f"window start/end must be seconds (numbers), got {start_s!r}..{end_s!r}")
    start = 0.0 if start_s is None else float(start_s)
    end = video.duration_s if end_s is None else float(end_s)
    if not (math.isfinite(start) and math.isfinite(end)):
        raise SamplingError(path, f"window must be finite seconds, got {start_s!r}..{end_s!r}")
    if start < 0 or start >= video.duration_s:
        raise SamplingError(
            path, f"window start {start:.3f} s is outside the video (0..{video.duration_s:.3f} s)"
        )
    if end <= start:
        raise SamplingError(path, f"window end {end:.3f} s must be after its start {start:.3f} s")
    end = min(end, video.duration_s)  # a window running past the end means "to the end"; window_s says so
    length = end - start
    rate = float(fps) if fps is not None else max_frames / length
    count = max(1, math.ceil(length * rate - 1e-9))
    if max_frames is not None and count > max_frames:
        count, rate = int(max_frames), max_frames / length
    targets = start + np.arange(count) / rate
    if keyframes_only:
        indices = _nearest_keyframes(index, targets, start, end)
    else:
        indices = np.unique(_nearest_frames(index.starts_s, targets)).astype(np.int64)
    # Frames sharing a timestamp (rounded container times) are one instant: keep the first.
    indices = indices[np.concatenate([[True], np.diff(index.starts_s[indices]) > 0])]
    if len(indices) < count:  # asked for more than the video has: the frames themselves set the rate
        rate = len(indices) / length
    return FramePlan(
        video=video,
        indices=indices,
        timestamps_s=index.starts_s[indices].copy(),
        fps=rate,
        requested_fps=None if fps is None else float(fps),
        window_s=(start, end),
        frame_size=fit_max_pixels(video.width, video.height, max_pixels),
    )


def _nearest_keyframes(index: _Index, targets: np.ndarray, start: float, end: float) -> np.ndarray:
    """The keyframe nearest each target, among the window's keyframes (else the one nearest the window)."""
    key_frames = np.searchsorted(index.starts_s, index.key_starts_s - index.tol_s)
    inside = key_frames[(index.starts_s[key_frames] >= start - index.tol_s) & (index.starts_s[key_frames] < end)]
    if len(inside) == 0:
        inside = key_frames[_nearest_frames(index.starts_s[key_frames], np.array([start]))]
    return np.unique(inside[_nearest_frames(index.starts_s[inside], targets)]).astype(np.int64)


def _is_number(value: object) -> bool:
    return isinstance(value, (int, float, np.integer, np.floating)) and not isinstance(value, (bool, np.bool_))


def _positive_int(value: object) -> bool:
    return isinstance(value, (int, np.integer)) and not isinstance(value, bool) and value >= 1


def _nearest_frames(starts_s: np.ndarray, targets_s: np.ndarray) -> np.ndarray:
    """Index of the frame whose timestamp is nearest each target (the earlier one on a tie)."""
    if len(starts_s) == 1:
        return np.zeros(len(targets_s), dtype=np.int64)
    after = np.clip(np.searchsorted(starts_s, targets_s, side="left"), 1, len(starts_s) - 1)
    before = after - 1
    take_after = np.abs(starts_s[after] - targets_s) < np.abs(targets_s - starts_s[before])
    return np.where(take_after, after, before)


def fit_max_pixels(width: int, height: int, max_pixels: int | None) -> tuple[int, int]:
    """The largest (width, height) with the same aspect ratio and width * height <= max_pixels."""
    if max_pixels is None or width * height <= max_pixels:
        return width, height
    scale = math.sqrt(max_pixels / (width * height))
    w, h = max(1, math.floor(width * scale)), max(1, math.floor(height * scale))
    while w * h > max_pixels and w > 1 and h > 1:  # float rounding at the boundary
        w, h = (w - 1, h) if w >= h else (w, h - 1)
    return w, h


# --- decoding ---------------------------------------------------------------------------------------


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
    key = _file_key(_path_of(video_or_path))
    index = _load_index(key)
    plan = _plan(index, fps, max_frames, start_s, end_s, max_pixels, bool(keyframes_only))
    size = plan.frame_size
    if not isinstance(cache, (bool, FrameCache)):
        raise SamplingError(index.video.path, f"cache must be True, False or a FrameCache, got {cache!r}")
    if threads is not None and not _positive_int(threads):
        raise SamplingError(index.video.path, f"threads must be a whole number >= 1, got {threads!r}")
    frame_cache = DEFAULT_FRAME_CACHE if cache is True else (cache if isinstance(cache, FrameCache) else None)

    pixels = np.empty((len(plan.indices), size[1], size[0], 3), dtype=np.uint8)
    todo = []
    for pos, frame_index in enumerate(plan.indices):
        hit = frame_cache.get((key, size, int(frame_index))) if frame_cache is not None else None
        if hit is None:
            todo.append(pos)
        else:
            pixels[pos] = hit
    if todo:
        slots = np.asarray(todo)
        _decode_into(index, plan.indices[slots], size, pixels, slots, threads)
        if frame_cache is not None:
            for pos in todo:
                frame_cache.put((key, size, int(plan.indices[pos])), pixels[pos])
    return Frames(
        video=index.video,
        pixels=pixels,
        timestamps_s=plan.timestamps_s,
        indices=plan.indices,
        fps=plan.fps,
        requested_fps=plan.requested_fps,
        window_s=plan.window_s,
    )


def _decode_into(
    index: _Index,
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
    reader = _decord_reader(path, *(coded if size != (index.video.width, index.video.height) else (-1, -1)))
    for chunk in np.array_split(missing, math.ceil(len(missing) / _DECORD_CHUNK)):  # bounded extra memory
        try:
            batch = reader.get_batch(wanted[chunk].tolist()).asnumpy()
            out[slots[chunk]] = np.rot90(batch, turns, axes=(1, 2)) if turns else batch
        except _DECORD_ERRORS as exc:
            logger.debug("%s: decord failed too: %s", path, exc)
            raise CorruptVideoError(
                path,
                f"frames fail to decode near {index.starts_s[wanted[chunk[0]]]:.2f} s; the file is damaged: "
                "re-encode or re-download it",
            ) from None


def _decode_pyav(
    index: _Index,
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
    job = functools.partial(_decode_part, index, targets, resize, turns, out, slots, found, threads // running)
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


def _split_gops(index: _Index, wanted: np.ndarray, workers: int) -> list[slice]:
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
    index: _Index,
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
    index: _Index,
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
    frames = None  # decoding generator, None until the first seek
    pos_s = -math.inf  # time of the last decoded frame
    pending = None  # a decoded frame not yet consumed (it came after a target that never appeared)
    for i, t in enumerate(targets):
        key_s = index.key_starts_s[np.searchsorted(index.key_starts_s, t + tol, side="right") - 1]
        if frames is None or key_s > pos_s + tol or t < pos_s - tol:
            # Land just after the keyframe's decord time (float32) so a backward seek finds it.
            container.seek(int((key_s + tol / 2) / time_base) + origin, stream=stream, backward=True)
            stream.codec_context.flush_buffers()
            frames, pending = _decode_kept(container, stream, targets, tol), None
        while True:
            frame = pending if pending is not None else next(frames, None)
            pending = None
            if frame is None:
                break
            if frame.pts is None:
                continue
            frame_s = (frame.pts - origin) * seconds_per_tick
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


# Decode at most this many seconds of video at once (frames of one chunk are held in memory together).
DEFAULT_CHUNK_S = 60.0


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
