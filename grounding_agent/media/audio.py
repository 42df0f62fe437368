"""Audio in a media file: whether it has a stream, decoding it resampled (streamed in blocks), and its
loudness as a `Curve`."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import av
import numpy as np

from grounding_agent.errors import ConfigError, CorruptVideoError, NotAVideoError, VideoNotFoundError
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
    start_s: float | None = None
    with open_container(path) as container:
        if not container.streams.audio:
            return None
        resampler = av.AudioResampler(format="flt", layout="mono", rate=sample_rate)
        try:
            for frame in decoded_then_flushed(container, container.streams.audio[0], resampler):
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
        resampler = av.AudioResampler(format="flt", layout="mono", rate=sample_rate)
        try:
            for frame in decoded_then_flushed(container, container.streams.audio[0], resampler):
                pending.append(frame.to_ndarray().reshape(-1))
                size += pending[-1].size
                if size >= block:
                    yield np.concatenate(pending).astype(np.float32, copy=False)
                    pending, size = [], 0
        except av.error.FFmpegError as exc:
            raise CorruptVideoError(path, f"audio stream fails to decode ({exc.strerror or exc})") from exc
    if pending:
        yield np.concatenate(pending).astype(np.float32, copy=False)


def decoded_then_flushed(container, stream, resampler) -> Iterator[av.AudioFrame]:
    for frame in container.decode(stream):
        yield from resampler.resample(frame)
    yield from resampler.resample(None)
