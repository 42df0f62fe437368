"""The frame grid an edit is cut on: the decoder's real frame times, keyframes, the nominal rate, timecodes.

Every edit boundary is a frame boundary: frame i covers [starts_s[i], starts_s[i + 1]) and the last one
ends at the video's duration, so a boundary is an index 0..N into `bounds_s`. Times from a grounder, the
audio or a user ("0:05") are snapped to the nearest boundary. Timecodes are SMPTE (HH:MM:SS:FF, and
HH:MM:SS;FF drop-frame at 29.97 / 59.94) through OpenTimelineIO.
"""

from __future__ import annotations

from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path

import numpy as np

from grounding_agent.types import Video

# Nominal rates editors use; a measured average within 0.05 % of one of them is that rate.
STANDARD_RATES = (
    Fraction(24000, 1001), Fraction(24), Fraction(25), Fraction(30000, 1001), Fraction(30),
    Fraction(48), Fraction(50), Fraction(60000, 1001), Fraction(60),
)  # fmt: skip
DROP_FRAME_RATES = (Fraction(30000, 1001), Fraction(60000, 1001))


def nominal_rate(avg_fps: float) -> Fraction:
    """The standard rate `avg_fps` measures (29.97002997 -> 30000/1001), else the value itself."""
    for rate in STANDARD_RATES:
        if abs(avg_fps - float(rate)) <= 5e-4 * float(rate):
            return rate
    return Fraction(avg_fps).limit_denominator(1001)


def is_smpte_rate(rate: Fraction) -> bool:
    return rate in STANDARD_RATES


@dataclass(frozen=True)
class SourceAudio:
    """The source's first audio stream, as exports describe it (FCPXML's asset, the EDL's channels)."""

    channels: int
    sample_rate: int
    layout: str  # FFmpeg's name: "mono", "stereo", "5.1(side)", ...


def source_audio(path: str | Path) -> SourceAudio | None:
    """The first audio stream of `path` (PyAV), or None when it has none: exports then stay picture-only."""
    from grounding_agent.media.audio import open_container

    with open_container(path) as container:
        if not container.streams.audio:
            return None
        stream = container.streams.audio[0]
        layout = stream.layout.name if stream.layout is not None else ""
        return SourceAudio(int(stream.channels or 0), int(stream.sample_rate or 0), layout)


@dataclass(frozen=True, eq=False)
class FrameGrid:
    """A video's frame boundaries.

    Attributes:
        starts_s: (N,) each frame's presentation time (the decoder's index), increasing.
        duration_s: where the last frame ends.
        rate: the nominal frame rate (timecodes, exports).
        keyframes: sorted frame indices of keyframes (frame 0 included).
    """

    starts_s: np.ndarray
    duration_s: float
    rate: Fraction
    keyframes: np.ndarray

    @classmethod
    def from_video(cls, video: Video) -> FrameGrid:
        from grounding_agent.media.video import frame_times

        starts, key_starts = frame_times(video)
        keys = np.unique(np.clip(np.searchsorted(starts, key_starts - 1e-4), 0, len(starts) - 1))
        return cls(starts, float(video.duration_s), nominal_rate(video.avg_fps), keys.astype(np.int64))

    @property
    def num_frames(self) -> int:
        return len(self.starts_s)

    @property
    def bounds_s(self) -> np.ndarray:
        """(N + 1,) boundary times: each frame's start, then the video's end."""
        return np.concatenate([self.starts_s, [self.duration_s]])

    @property
    def drop_frame(self) -> bool:
        return self.rate in DROP_FRAME_RATES

    def time_s(self, boundary: int) -> float:
        """The time of boundary `boundary` (0..N)."""
        return float(self.bounds_s[int(boundary)])

    def snap(self, time_s: float) -> int:
        """The boundary nearest `time_s` (clamped to the video)."""
        bounds = self.bounds_s
        i = int(np.clip(np.searchsorted(bounds, time_s), 1, len(bounds) - 1))
        return i if abs(bounds[i] - time_s) < abs(time_s - bounds[i - 1]) else i - 1

    def frames(self, start_s: float, end_s: float) -> tuple[int, int]:
        """[start, end) seconds -> [first frame, end boundary), each snapped to the nearest boundary."""
        return self.snap(start_s), self.snap(end_s)

    def keyframe_at_or_before(self, boundary: int) -> int:
        i = int(np.searchsorted(self.keyframes, boundary, side="right")) - 1
        return int(self.keyframes[max(i, 0)])

    def keyframe_at_or_after(self, boundary: int) -> int:
        """The first keyframe at or after `boundary`, else N (the end of the video)."""
        i = int(np.searchsorted(self.keyframes, boundary, side="left"))
        return int(self.keyframes[i]) if i < len(self.keyframes) else self.num_frames

    def timecode(self, frames: int) -> str:
        """SMPTE timecode of a frame count at the nominal rate (drop-frame at 29.97 / 59.94)."""
        return timecode(frames, self.rate)


def timecode(frames: int, rate: Fraction | float) -> str:
    """SMPTE timecode of `frames` at `rate`: HH:MM:SS:FF, or HH:MM:SS;FF drop-frame at 29.97 / 59.94.

    Non-SMPTE rates (10 fps, variable) get HH:MM:SS.mmm instead (no frame field means anything there).
    """
    from opentimelineio.opentime import RationalTime, to_timecode

    rate = Fraction(rate).limit_denominator(1001)
    if not is_smpte_rate(rate):
        total_ms = round(frames / float(rate) * 1000)
        h, rest = divmod(total_ms, 3_600_000)
        m, rest = divmod(rest, 60_000)
        return f"{h:02d}:{m:02d}:{rest // 1000:02d}.{rest % 1000:03d}"
    return to_timecode(RationalTime(int(frames), float(rate)), float(rate), rate in DROP_FRAME_RATES)


def clock(seconds: float) -> str:
    """12.5 -> '0:12.50'; 3725 -> '1:02:05.00' (human-readable source times)."""
    m, s = divmod(max(0.0, seconds), 60.0)
    h, m = divmod(int(m), 60)
    return f"{h}:{m:02d}:{s:05.2f}" if h else f"{m}:{s:05.2f}"
