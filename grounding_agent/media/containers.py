"""Container checks before decord indexes a file: PyAV (which fails cleanly) says whether it is a video,
whether its stream can be decoded, its coded size, its display rotation, and whether the file was cut off.

decord mis-handles what these checks reject: it reads a cut-off file's first half silently, or fails with
a bare ffmpeg error code.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

import av

from grounding_agent.errors import (
    NotAVideoError,
    NoVideoStreamError,
    TruncatedVideoError,
    UnsupportedCodecError,
)

REENCODE = "`ffmpeg -i IN -c:v libx264 OUT.mp4`"
# A container that claims this much more video than its packets hold is truncated (rounding stays below).
TRUNCATION_SLACK_S = 1.0
_CUT_OFF = "the file was cut off (interrupted copy or download?): get a complete copy"


@dataclass(frozen=True)
class ContainerInfo:
    """What the container says about its first video stream.

    Attributes:
        declared_s: the video duration the container declares, when reliable; else None.
        width, height: the coded size (before the display rotation).
        quarter_turns: display rotation in counterclockwise quarter turns (np.rot90's k).
        stream_start_s: the stream's start_time in seconds of the container's clock (decord's times
            count from it).
        container_start_s: the container's start_time, the clock the ffmpeg command line counts from
            (its `-ss` and filter timestamps are relative to it).
    """

    declared_s: float | None
    width: int
    height: int
    quarter_turns: int
    stream_start_s: float = 0.0
    container_start_s: float = 0.0


def check_container(path: Path) -> ContainerInfo:
    """Open `path` with PyAV and check it holds a decodable, complete video stream.

    Raises:
        NotAVideoError, TruncatedVideoError, NoVideoStreamError, UnsupportedCodecError.
    """
    try:
        container = av.open(str(path), metadata_errors="ignore")
    except av.error.FFmpegError as exc:
        if _is_mp4(path):  # an mp4 ffmpeg cannot open has lost its 'moov' index: the end never got written
            raise TruncatedVideoError(path, f"the mp4 has no readable 'moov' index; {_CUT_OFF}") from None
        reason = getattr(exc, "strerror", None) or first_line(str(exc))
        raise NotAVideoError(path, f"not a video file ffmpeg can read ({reason}); check the file") from None
    with container:
        stream = _video_stream(path, container)
        info = ContainerInfo(
            _declared_s(container, stream),
            stream.codec_context.width,
            stream.codec_context.height,
            _quarter_turns(container, stream),
            float((stream.start_time or 0) * (stream.time_base or 1)),
            (container.start_time or 0) / av.time_base,
        )
        _check_complete(path, container, stream, info.declared_s)
        return info


def _is_mp4(path: Path) -> bool:
    # The one byte check left: ffmpeg's "moov atom not found" reaches its log, not the exception.
    with path.open("rb") as f:
        return f.read(8)[4:8] == b"ftyp"


def _video_stream(path: Path, container: av.container.InputContainer) -> av.VideoStream:
    streams = [s for s in container.streams.video if not s.disposition & av.stream.Disposition.attached_pic]
    if not streams:
        # An attached picture (cover art) is a still in a "video" stream, not a video: say what the file is.
        if any(s.type == "video" for s in container.streams) and container.streams.audio:
            raise NoVideoStreamError(path, "is an audio file with cover art, not a video; pass a video file")
        kinds = sorted({s.type for s in container.streams if s.type != "video"}) or ["no streams"]
        raise NoVideoStreamError(path, f"has no video stream (found: {', '.join(kinds)}); pass a video file")
    if streams[0].codec_context is None:
        raise UnsupportedCodecError(
            path, f"its video codec is unknown to ffmpeg; re-encode it, e.g. {REENCODE}"
        )
    return streams[0]


def _declared_s(container: av.container.InputContainer, stream: av.VideoStream) -> float | None:
    """The stream's duration, else its Matroska DURATION tag, else the container's when it has no audio."""
    if stream.duration and stream.time_base:
        return float(stream.duration * stream.time_base)
    tagged = _parse_clock(stream.metadata.get("DURATION", ""))
    if tagged is not None:
        return tagged
    if container.duration and not container.streams.audio:
        return container.duration / av.time_base
    return None


def _check_complete(
    path: Path, container: av.container.InputContainer, stream: av.VideoStream, declared_s: float | None
) -> None:
    """A file whose packets end well before the declared duration was cut off (one seek to the end)."""
    if declared_s is None:
        return
    end_s = _packets_end_s(container, stream, declared_s)
    rate = float(stream.average_rate or 0) or 1.0
    if end_s is None or declared_s - end_s > max(TRUNCATION_SLACK_S, 3.0 / rate):
        held = "no packets" if end_s is None else f"packets to {end_s:.2f} s"
        raise TruncatedVideoError(path, f"the container says {declared_s:.2f} s but holds {held}; {_CUT_OFF}")


def _packets_end_s(
    container: av.container.InputContainer, stream: av.VideoStream, declared_s: float
) -> float | None:
    """Where the packets of the stream's last GOP end, in seconds from its start; None if there are none."""
    time_base = float(stream.time_base or 1)
    origin = stream.start_time or 0
    end = None
    try:
        container.seek(int(declared_s / time_base) + origin, stream=stream, backward=True)
        for packet in container.demux(stream):
            if packet.pts is not None and packet.size:
                stop = (packet.pts + (packet.duration or 0) - origin) * time_base
                end = stop if end is None else max(end, stop)
    except av.error.FFmpegError:
        return end  # damaged data near the end: what was read is what there is
    return end


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


def _parse_clock(text: str) -> float | None:
    """'00:00:10.333000000' -> 10.333 (Matroska DURATION tags)."""
    parts = text.strip().split(":")
    if len(parts) != 3:
        return None
    try:
        return int(parts[0]) * 3600 + int(parts[1]) * 60 + float(parts[2])
    except ValueError:
        return None


def first_line(text: str) -> str:
    """The gist of a (multi-line, log-prefixed) library error message."""
    lines = [re.sub(r"\[\d\d:\d\d:\d\d\]\s*\S+:\d+:\s*", "", line).strip() for line in text.splitlines()]
    lines = [line for line in lines if line]
    return lines[-1][:200] if lines else "unknown error"
