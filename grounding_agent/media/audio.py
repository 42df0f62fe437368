"""Audio in a media file: whether it has a stream, decoding it resampled (streamed in blocks), and its
loudness as a `Curve`.

Times are the video's: sample 0 is at time zero, the first presented video frame (`video.time_origin`),
so audio that starts later is led by silence and audio that starts earlier (an edit list's pre-roll, a
negative timestamp offset) loses what precedes it. An audio-only file counts from its container's start.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import av
import numpy as np

from grounding_agent.errors import (
    ConfigError,
    CorruptVideoError,
    NotAVideoError,
    VideoError,
    VideoNotFoundError,
)
from grounding_agent.media.video import time_origin
from grounding_agent.types import Curve

# dBFS floor for silence, so log(0) never happens and digital silence does not dominate the range.
SILENCE_DB = -80.0


def has_audio(path: str | Path) -> bool:
    """Whether the container has an audio stream."""
    with open_container(path) as container:
        return bool(container.streams.audio)


def open_container(path: str | Path) -> av.container.InputContainer:
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
    with open_container(path) as container:
        if not container.streams.audio:
            return None
        try:
            for samples in aligned_samples(path, container, sample_rate):
                pending = np.concatenate([pending, samples.astype(np.float64)])
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
    return Curve("audio", np.asarray(centres) / sample_rate, db)


def iter_audio(path: str | Path, block_s: float = 30.0, sample_rate: int = 16000) -> Iterator[np.ndarray]:
    """The first audio stream as mono float32 blocks of about `block_s` seconds at `sample_rate` (PyAV).

    Yields nothing if the file has no audio stream.

    Raises:
        VideoNotFoundError, NotAVideoError: the file is missing or not media.
        CorruptVideoError: the audio stream fails to decode.
    """
    block = int(block_s * sample_rate)
    pending: list[np.ndarray] = []
    size = 0
    with open_container(path) as container:
        if not container.streams.audio:
            return
        try:
            for samples in aligned_samples(path, container, sample_rate):
                pending.append(samples)
                size += samples.size
                if size >= block:
                    yield np.concatenate(pending).astype(np.float32, copy=False)
                    pending, size = [], 0
        except av.error.FFmpegError as exc:
            raise CorruptVideoError(path, f"audio stream fails to decode ({exc.strerror or exc})") from exc
    if pending:
        yield np.concatenate(pending).astype(np.float32, copy=False)


def aligned_samples(
    path: str | Path, container: av.container.InputContainer, sample_rate: int
) -> Iterator[np.ndarray]:
    """The first audio stream as mono float32 arrays at `sample_rate`, sample 0 at the video's time zero."""
    zero_s = _zero_s(path, container)
    resampler = av.AudioResampler(format="flt", layout="mono", rate=sample_rate)
    skip = None  # samples before time zero still to drop (None: the first frame's time not seen yet)
    for frame in decoded_then_flushed(container, container.streams.audio[0], resampler):
        samples = frame.to_ndarray().reshape(-1)
        if skip is None:
            lead = round(((frame.time if frame.time is not None else zero_s) - zero_s) * sample_rate)
            if lead > 0:  # the audio starts after the first frame: silence until it does
                yield np.zeros(lead, dtype=np.float32)
            skip = max(0, -lead)
        if skip:
            samples, skip = samples[skip:], max(0, skip - samples.size)
        if samples.size:
            yield samples


def _zero_s(path: str | Path, container: av.container.InputContainer) -> float:
    """Time zero on the container's clock (PyAV's frame.time): the first presented video frame's, else
    (audio only, or a video stream decord cannot index) the container's start."""
    start_s = (container.start_time or 0) / av.time_base
    if not [s for s in container.streams.video if not s.disposition & av.stream.Disposition.attached_pic]:
        return start_s
    try:
        return time_origin(path).container_s
    except VideoError:  # its picture is unreadable: the sound still counts from the container's start
        return start_s


def decoded_then_flushed(container, stream, resampler) -> Iterator[av.AudioFrame]:
    for frame in container.decode(stream):
        yield from resampler.resample(frame)
    yield from resampler.resample(None)
