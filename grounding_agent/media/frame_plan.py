"""Which frames a sampling takes: target times start + k / rate, each to its nearest frame (or keyframe),
checked and sized, without decoding anything.

    plan = plan_frames("clip.mp4", fps=1.0, max_frames=64, max_pixels=448 * 448)
"""

from __future__ import annotations

import math
import os
from dataclasses import dataclass

import numpy as np

from grounding_agent.defaults import LIMITS
from grounding_agent.errors import SamplingError
from grounding_agent.media.video import VideoIndex, _file_key, _load_index, path_of
from grounding_agent.types import Video

__all__ = ["FramePlan", "fit_max_pixels", "plan_frames", "positive_int"]


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
    index = _load_index(_file_key(path_of(video_or_path)))
    return plan_from_index(index, fps, max_frames, start_s, end_s, max_pixels, keyframes_only)


def plan_from_index(
    index: VideoIndex, fps, max_frames, start_s, end_s, max_pixels, keyframes_only=False
) -> FramePlan:
    """Target times start + k/rate -> the nearest frame (or keyframe) to each, deduplicated."""
    video = index.video
    _check_counts(video.path, fps, max_frames, max_pixels)
    start, end = _window(video, start_s, end_s)
    length = end - start
    rate = float(fps) if fps is not None else max_frames / length
    count = max(1, math.ceil(length * rate - 1e-9))
    if max_frames is not None and count > max_frames:
        count, rate = int(max_frames), max_frames / length
    # Before any array is made: a week of video at 240 fps would be 145 M targets.
    LIMITS.check_count(count, "the frames this sampling takes (fps x window seconds)", LIMITS.max_frames)
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


def _check_counts(path, fps, max_frames, max_pixels) -> None:
    if fps is None and max_frames is None:
        raise SamplingError(path, "give fps and/or max_frames to say how many frames to sample")
    if fps is not None and (not _is_number(fps) or not math.isfinite(fps) or fps <= 0):
        raise SamplingError(path, f"fps must be a positive number, got {fps!r}")
    if max_frames is not None and not positive_int(max_frames):
        raise SamplingError(path, f"max_frames must be a positive integer, got {max_frames!r}")
    if fps is not None:
        LIMITS.check_fps(float(fps))
    if max_frames is not None:
        LIMITS.check_count(int(max_frames), "max_frames", LIMITS.max_frames)
    if max_pixels is not None and not positive_int(max_pixels):
        raise SamplingError(path, f"max_pixels must be a positive integer, got {max_pixels!r}")


def _window(video: Video, start_s, end_s) -> tuple[float, float]:
    """The window [start, end) in seconds; an end past the video means its end."""
    path = video.path
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
    return start, min(end, video.duration_s)


def _nearest_keyframes(index: VideoIndex, targets: np.ndarray, start: float, end: float) -> np.ndarray:
    """The keyframe nearest each target, among the window's keyframes (else the one nearest the window)."""
    key_frames = np.searchsorted(index.starts_s, index.key_starts_s - index.tol_s)
    inside = key_frames[
        (index.starts_s[key_frames] >= start - index.tol_s) & (index.starts_s[key_frames] < end)
    ]
    if len(inside) == 0:
        inside = key_frames[_nearest_frames(index.starts_s[key_frames], np.array([start]))]
    return np.unique(inside[_nearest_frames(index.starts_s[inside], targets)]).astype(np.int64)


def _is_number(value: object) -> bool:
    return isinstance(value, (int, float, np.integer, np.floating)) and not isinstance(
        value, (bool, np.bool_)
    )


def positive_int(value: object) -> bool:
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
