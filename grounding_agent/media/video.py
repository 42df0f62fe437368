"""Open a video: check the path and the container, then index its frames with decord (without decoding).

decord indexes the file: every frame's timestamp (also on variable-frame-rate files) and the keyframes.
A display rotation (a phone's `rotate=90`) counts: `Video.width/height` are the displayed size.
Time zero is the first presented frame: frames decord lists before it (an edit list's pre-roll, as
`ffmpeg -ss X -c copy` writes, or frames without a timestamp) are not part of the video, and every time
(duration, frame times, keyframes) counts from it; `time_origin` gives its place on the container's clock
for the code that talks to ffmpeg or PyAV. Only the
`media` package imports decord (here and in `decode`'s fallback).

    video = open_video("clip.mp4")
    starts_s, keyframes_s = frame_times(video)
"""

from __future__ import annotations

import functools
import math
import os
import stat
from dataclasses import dataclass
from pathlib import Path

import decord
import numpy as np
from decord._ffi.base import DECORDError

from grounding_agent.errors import (
    CorruptVideoError,
    EmptyVideoError,
    NotAVideoError,
    TruncatedVideoError,
    UnsupportedCodecError,
    VideoNotFoundError,
)
from grounding_agent.media.containers import REENCODE, TRUNCATION_SLACK_S, check_container, first_line
from grounding_agent.types import Video

__all__ = [
    "DECORD_ERRORS",
    "FileKey",
    "TimeOrigin",
    "VideoIndex",
    "decord_reader",
    "frame_times",
    "open_video",
    "path_of",
    "time_origin",
]

# decord's bundled ffmpeg otherwise prints its own log lines to stderr; its failures become typed errors.
decord.logging.set_level(decord.logging.QUIET)

# decord raises both (DECORDError is a plain Exception, not a RuntimeError).
DECORD_ERRORS = (DECORDError, RuntimeError)

# decord's time for a frame without a timestamp is about -9.2e15 s (INT64_MIN ticks): below this.
_NO_PTS_S = -1e12

# (resolved path, mtime ns, size): changes whenever the file does.
FileKey = tuple[str, int, int]


@dataclass(frozen=True)
class VideoIndex:
    """What decord knows about a file without decoding it."""

    video: Video
    starts_s: np.ndarray  # (N,) float64, each frame's presentation time, non-decreasing
    key_starts_s: np.ndarray  # (K,) float64, presentation times of keyframes, sorted
    tol_s: float  # two times closer than this are the same frame (decord stores float32 seconds)
    quarter_turns: int = 0  # display rotation, counterclockwise quarter turns (np.rot90's k)
    first: int = 0  # decord's index of the first presented frame (its frames before it are pre-roll)
    zero_s: float = 0.0  # decord's time of the first presented frame (its times count from the stream start)
    origin: TimeOrigin | None = None


@dataclass(frozen=True)
class TimeOrigin:
    """Where time zero (the first presented frame) lies on the clocks other tools count on.

    Attributes:
        stream_s: on the stream's clock, as PyAV's frame times minus the stream's start_time read it.
        container_s: on the container's clock (PyAV's frame.time; audio frames share it).
        ffmpeg_s: as the ffmpeg command line reads times (`-ss`, trim filters): from the container's
            start_time.
        pre_roll_s: how long the pictures before it last that an edit list hides (decoded only to reach
            it); a stream copy of the start would show them.
    """

    stream_s: float = 0.0
    container_s: float = 0.0
    ffmpeg_s: float = 0.0
    pre_roll_s: float = 0.0


def open_video(path: str | os.PathLike) -> Video:
    """Read a video's metadata (duration, frame count, fps, size) without decoding frames.

    Raises:
        VideoError: a subclass saying what is wrong with the file (missing, empty, not a video,
            truncated, no video stream, undecodable codec, corrupt).
    """
    return _load_index(_file_key(path)).video


def path_of(video_or_path: Video | str | os.PathLike) -> str | os.PathLike:
    return video_or_path.path if isinstance(video_or_path, Video) else video_or_path


def frame_times(video_or_path: Video | str | os.PathLike) -> tuple[np.ndarray, np.ndarray]:
    """(every frame's presentation time, the keyframes' times), seconds, sorted: the decoder's own index.

    Editing snaps cuts to these (a frame boundary, or a keyframe for stream copy).
    """
    index = _load_index(_file_key(path_of(video_or_path)))
    return index.starts_s.copy(), index.key_starts_s.copy()


def time_origin(video_or_path: Video | str | os.PathLike) -> TimeOrigin:
    """Where the video's time zero (its first presented frame) lies on the stream's, the container's and
    the ffmpeg command line's clocks: add it to a video time to seek or trim with those tools."""
    origin = _load_index(_file_key(path_of(video_or_path))).origin
    return origin if origin is not None else TimeOrigin()


def _file_key(path: str | os.PathLike) -> FileKey:
    """The cache key of a regular, non-empty file; typed errors for anything else."""
    if not isinstance(path, (str, os.PathLike)) or isinstance(path, bytes):
        raise VideoNotFoundError(path, f"a video path must be a str or path, got {type(path).__name__}")
    if "\0" in os.fspath(path):
        raise VideoNotFoundError(repr(os.fspath(path)), "the path contains a NUL byte; check the path")
    p = Path(path).expanduser()
    st = _stat(path, p)
    if stat.S_ISDIR(st.st_mode):
        raise VideoNotFoundError(p, "is a directory, not a video file; pass the path of a video file")
    if not stat.S_ISREG(st.st_mode):
        # A pipe or device has no size and cannot be seeked: it would read as "empty" or never end.
        raise NotAVideoError(
            p, f"is a {_file_kind(st.st_mode)}, not a regular file; save the video to a file"
        )
    if st.st_size == 0:
        raise EmptyVideoError(p, "the file is empty (0 bytes); copy or download it again")
    resolved = str(p.resolve())
    try:  # the decoders take the (resolved) name as UTF-8 text; a name in another encoding cannot reach them
        resolved.encode("utf-8")
    except UnicodeEncodeError:
        raise NotAVideoError(ascii(str(p)), "the file name is not valid UTF-8; rename the file") from None
    return (resolved, st.st_mtime_ns, st.st_size)


def _stat(path: str | os.PathLike, p: Path) -> os.stat_result:
    try:
        return p.stat()
    except FileNotFoundError:
        if "://" in os.fspath(path):  # name it as typed: Path() would fold "http://" into "http:/"
            raise VideoNotFoundError(
                os.fspath(path), "is a URL; download the video and pass the file"
            ) from None
        raise VideoNotFoundError(p, "no such file; check the path") from None
    except OSError as exc:
        raise VideoNotFoundError(
            p, f"cannot be read ({exc.strerror}); check the path and its permissions"
        ) from None


def _file_kind(mode: int) -> str:
    kinds = (
        (stat.S_ISFIFO, "FIFO (named pipe)"),
        (stat.S_ISCHR, "character device"),
        (stat.S_ISBLK, "block device"),
        (stat.S_ISSOCK, "socket"),
    )
    return next((name for test, name in kinds if test(mode)), "special file")


@functools.lru_cache(maxsize=64)
def _load_index(key: FileKey) -> VideoIndex:
    path = Path(key[0])
    info = check_container(path)
    width, height = info.width, info.height
    if info.quarter_turns % 2:  # Video reports the displayed size: a phone's portrait clip is portrait
        width, height = height, width
    reader = decord_reader(path)
    n = len(reader)
    if n == 0:
        raise CorruptVideoError(path, "the video stream has no decodable frames")
    # decord keeps float32 seconds: round to the microsecond so 1.001 does not print as 1.00100004673.
    ts = np.round(reader.get_frame_timestamp(np.arange(n)).astype(np.float64), 6)
    first = _first_presented(path, ts[:, 0])
    zero_s = float(ts[first, 0])
    timed = ts[:first, 0][ts[:first, 0] > _NO_PTS_S]  # pre-roll with real (negative) times: an edit list
    pre_roll_s = zero_s - float(timed[0]) if len(timed) else 0.0
    ts, n = ts[first:] - zero_s, n - first
    starts, stops = ts[:, 0], ts[:, 1]
    avg_fps = float(reader.get_avg_fps())
    if not math.isfinite(avg_fps) or avg_fps <= 0:
        avg_fps = (n - 1) / starts[-1] if n > 1 and starts[-1] > 0 else 1.0
    # Some containers store no packet durations: fall back to one average frame.
    last_stop = stops[-1] if stops[-1] > starts[-1] else starts[-1] + 1.0 / avg_fps
    keys = np.asarray(reader.get_key_indices(), dtype=np.int64) - first
    keys = keys[(keys >= 0) & (keys < n)]
    key_starts = np.unique(np.concatenate([[starts[0]], starts[keys]]))
    del reader
    video = Video(
        path=path, duration_s=float(last_stop), avg_fps=avg_fps, num_frames=n, width=width, height=height
    )
    _check_frames_reach(video, info.declared_s)
    tol_s = 1e-4 + float(last_stop) * 2.0**-22
    zero = info.stream_start_s + zero_s
    origin = TimeOrigin(zero_s, zero, zero - info.container_start_s, pre_roll_s)
    return VideoIndex(video, starts, key_starts, tol_s, info.quarter_turns, first, zero_s, origin)


def _first_presented(path: Path, starts: np.ndarray) -> int:
    """decord's index of the first frame shown: it lists an edit list's pre-roll (frames decoded only to
    reach the first shown one) at negative times, and frames without a timestamp at about -9.2e15 s."""
    shown = np.flatnonzero(starts >= 0)
    if len(shown) == 0:
        raise CorruptVideoError(path, "no frame has a presentation time; re-encode it with ffmpeg")
    return int(shown[0])


def _check_frames_reach(video: Video, declared_s: float | None) -> None:
    """decord's frames must reach the declared end too (its index can be shorter than the packets)."""
    if declared_s is not None and declared_s - video.duration_s > max(
        TRUNCATION_SLACK_S, 3.0 / video.avg_fps
    ):
        raise TruncatedVideoError(
            video.path,
            f"the container says {declared_s:.2f} s but frames end at {video.duration_s:.2f} s; "
            "the file was cut off (interrupted copy or download?): get a complete copy",
        )


def decord_reader(path: Path, width: int = -1, height: int = -1) -> decord.VideoReader:
    """A decord reader (frames scaled to width x height when given); decord's failures as typed errors."""
    try:
        return decord.VideoReader(str(path), width=width, height=height, num_threads=0)
    except DECORD_ERRORS as exc:
        msg = str(exc)
        if "partial file" in msg:
            raise TruncatedVideoError(
                path, "the file ends mid-stream (cut off download or copy?): get a complete copy"
            ) from None
        if "cannot find video stream" in msg:
            raise UnsupportedCodecError(
                path, f"the video stream's codec cannot be decoded; re-encode it, e.g. {REENCODE}"
            ) from None
        raise CorruptVideoError(
            path, f"cannot be indexed ({first_line(msg)}); re-encode it with ffmpeg"
        ) from None
