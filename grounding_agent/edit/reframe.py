"""Reframe an edit to another aspect ratio (9:16, 1:1, 4:5) by following faces.

The detector is dlib's HOG + linear-SVM frontal face detector (`dlib.get_frontal_face_detector()`): its
model is compiled into the `dlib-bin` wheel, so nothing is downloaded at run time. (OpenCV 5's wheels ship
neither the Haar cascades nor a YuNet model file; see docs/editing.md.)

1. Frames are sampled at `SHORT_FORM.reframe_fps`, shrunk to `reframe_max_pixels`, streamed in chunks.
2. The crop keeps the full height (or width) and pans along the other axis; its wanted centre at a sample
   is the middle of the faces found there (the largest one when they do not all fit), else the frame's
   centre (a centred crop where no face is found).
3. A moving median steadies it, a maximum pan speed (`reframe_pan` crop widths per second) smooths it, and
   then every face found at a sample is put back inside the window (a face never leaves the crop for
   smoothness), clamped to the frame.
4. Rendering maps each output frame to its source time through the plan and sends `crop x` (or `y`)
   commands to ffmpeg's `crop` filter with `sendcmd`.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from grounding_agent.defaults import ASPECTS, SHORT_FORM
from grounding_agent.edit.plan import EditPlan
from grounding_agent.errors import EditError
from grounding_agent.types import Video
from grounding_agent.utils.extras import require

# Faces are kept this share of their size away from the crop's edge (frames between samples move a little).
_FACE_MARGIN = 0.15


def parse_aspect(text: str) -> tuple[int, int]:
    """'9:16' -> (9, 16); one of `ASPECTS`."""
    if text not in ASPECTS:
        raise EditError(f"--aspect {text!r}: choose one of {', '.join(ASPECTS)}")
    w, h = text.split(":")
    return int(w), int(h)


def crop_size(width: int, height: int, aspect: tuple[int, int]) -> tuple[int, int, str]:
    """(crop width, crop height, the axis it pans along: "x" or "y"), even sizes, as large as fits."""
    a = aspect[0] / aspect[1]
    if width / height > a:
        return max(2, int(height * a) // 2 * 2), height // 2 * 2, "x"
    return width // 2 * 2, max(2, int(width / a) // 2 * 2), "y"


@dataclass(frozen=True)
class FaceTrack:
    """Where the crop is over the source: its size and its top-left offset along `axis` at `times_s`."""

    width: int
    height: int
    axis: str
    times_s: np.ndarray
    offsets: np.ndarray
    faces: tuple[tuple[tuple[float, float, float, float], ...], ...]  # per sample, in source pixels

    def offset_at(self, time_s: float | np.ndarray) -> np.ndarray:
        """The crop's offset (pixels, along `axis`) at source time(s), linearly between samples."""
        return np.interp(time_s, self.times_s, self.offsets)

    def window_at(self, time_s: float) -> tuple[float, float, float, float]:
        """(x0, y0, x1, y1) of the crop in source pixels at `time_s`."""
        off = float(self.offset_at(time_s))
        if self.axis == "x":
            return off, 0.0, off + self.width, float(self.height)
        return 0.0, off, float(self.width), off + self.height


def detector():
    """A callable RGB uint8 (H, W, 3) -> face boxes (x0, y0, x1, y1) in its pixels."""
    require("reframe", "dlib", feature="--aspect (face-following reframe)")
    import dlib

    hog = dlib.get_frontal_face_detector()

    def detect(pixels: np.ndarray) -> list[tuple[float, float, float, float]]:
        found = hog(np.ascontiguousarray(pixels), 1)  # upsampled once: faces down to ~40 px
        return [(r.left(), r.top(), r.right(), r.bottom()) for r in found]

    return detect


def detect_faces(video: Video, *, fps: float = SHORT_FORM.reframe_fps):
    """(times_s, faces per sample in source pixels), sampled at `fps` over the whole video."""
    from grounding_agent.media.decode import iter_frame_chunks

    detect = detector()
    times, faces = [], []
    for chunk in iter_frame_chunks(video.path, fps=fps, max_pixels=SHORT_FORM.reframe_max_pixels):
        scale = video.width / chunk.pixels.shape[2]
        for t, pixels in zip(chunk.timestamps_s, chunk.pixels, strict=True):
            times.append(float(t))
            faces.append(tuple(tuple(float(v) * scale for v in box) for box in detect(pixels)))
    return np.asarray(times), tuple(faces)


def track_faces(video: Video, aspect: tuple[int, int], *, fps: float = SHORT_FORM.reframe_fps) -> FaceTrack:
    """The smoothed crop over `video` for `aspect` (see the module docstring)."""
    width, height, axis = crop_size(video.width, video.height, aspect)
    times, faces = detect_faces(video, fps=fps)
    if len(times) == 0:
        times, faces = np.asarray([0.0]), ((),)
    size, crop = (video.width, width) if axis == "x" else (video.height, height)
    offsets = smooth_offsets(times, faces, axis, size, crop)
    return FaceTrack(width, height, axis, times, offsets, faces)


def smooth_offsets(times, faces, axis: str, size: int, crop: int) -> np.ndarray:
    """Crop offsets along `axis` (frame `size` pixels, crop `crop` pixels) following `faces` per sample."""
    lo_i, hi_i = (0, 2) if axis == "x" else (1, 3)
    wanted, low, high = [], [], []
    for boxes in _held(np.asarray(times, dtype=np.float64), faces, SHORT_FORM.reframe_hold_s):
        lo, hi = _fitting(boxes, lo_i, hi_i, crop)
        wanted.append(size / 2 if lo is None else (lo + hi) / 2)
        # Offsets that keep the faces (with a margin) inside: [hi - crop, lo].
        low.append(-np.inf if lo is None else hi - crop)
        high.append(np.inf if lo is None else lo)
    half = crop / 2
    bounds = (np.asarray(low) + half, np.asarray(high) + half)  # where the centre keeps the faces inside
    centre = _median(np.asarray(wanted), SHORT_FORM.reframe_median)
    centre = _limit_speed(np.asarray(times, dtype=np.float64), centre, SHORT_FORM.reframe_pan * crop, bounds)
    return np.clip(centre - half, 0, size - crop)


def _held(times: np.ndarray, faces, hold_s: float) -> list[tuple]:
    """Each sample's faces plus those of the nearest samples before and after it that have faces, within
    `hold_s`: the detector misses a face on some frames, and frames between samples move."""
    seen = [i for i, boxes in enumerate(faces) if boxes]
    out = []
    for i, boxes in enumerate(faces):
        k = int(np.searchsorted(seen, i))
        near = [j for j in (seen[k - 1] if k else None, seen[k + 1] if k + 1 < len(seen) and seen[k] == i else
                            seen[k] if k < len(seen) and seen[k] != i else None)
                if j is not None and abs(times[j] - times[i]) <= hold_s]  # fmt: skip
        out.append(tuple(boxes) + tuple(b for j in near for b in faces[j]))
    return out


def _fitting(boxes, lo_i: int, hi_i: int, crop: int) -> tuple[float | None, float | None]:
    """The span along the axis the crop must hold: every face (with margins) if they fit, else the largest."""
    if not boxes:
        return None, None
    spans = []
    for box in sorted(boxes, key=lambda b: -(b[2] - b[0]) * (b[3] - b[1])):
        pad = _FACE_MARGIN * (box[hi_i] - box[lo_i])
        spans.append((box[lo_i] - pad, box[hi_i] + pad))
    lo, hi = min(a for a, _ in spans), max(b for _, b in spans)
    if hi - lo > crop:
        lo, hi = spans[0]
        if hi - lo > crop:  # a face larger than the crop: hold its middle
            mid = (lo + hi) / 2
            lo, hi = mid - crop / 2, mid + crop / 2
    return lo, hi


def _median(values: np.ndarray, width: int) -> np.ndarray:
    """A centred moving median (edges use the samples they have)."""
    half = max(0, width // 2)
    return np.asarray([np.median(values[max(0, i - half) : i + half + 1]) for i in range(len(values))])


def _limit_speed(times: np.ndarray, values: np.ndarray, max_per_s: float, bounds) -> np.ndarray:
    """Follow `values` at most `max_per_s` per second, always inside `bounds` (low, high) per sample: a
    forward pass, then a backward one so the crop starts moving before a face forces a jump."""
    low, high = bounds
    out = np.clip(values.astype(np.float64), low, high)
    for order in (range(1, len(out)), range(len(out) - 2, -1, -1)):
        for i in order:
            j = i - 1 if order.step == 1 else i + 1
            step = max_per_s * abs(times[i] - times[j])
            out[i] = np.clip(np.clip(out[i], out[j] - step, out[j] + step), low[i], high[i])  # faces first
    return out


def crop_commands(plan: EditPlan, track: FaceTrack, path: str | Path) -> Path:
    """A sendcmd file: at each output frame's time, the crop's offset for the source frame it shows."""
    grid = plan.grid
    lines = []
    t_out = 0.0
    for seg in plan.kept:
        starts = grid.starts_s[seg.start_frame : seg.end_frame]
        offsets = track.offset_at(starts)
        for source_t, off in zip(starts, offsets, strict=True):
            lines.append(f"{t_out + (source_t - seg.start_s):.6f} crop {track.axis} {int(round(off))};")
        t_out += seg.duration_s
    Path(path).write_text("\n".join(lines) + "\n", encoding="utf-8")
    return Path(path)


def crop_filter(plan: EditPlan, track: FaceTrack, commands: Path) -> str:
    """The filter chain that reframes the concatenated edit (start offset: the first command's)."""
    from grounding_agent.edit.captions import filter_path

    first = int(round(float(track.offset_at(plan.kept[0].start_s)))) if plan.kept else 0
    x, y = (first, 0) if track.axis == "x" else (0, first)
    return f"sendcmd=f={filter_path(commands)},crop=w={track.width}:h={track.height}:x={x}:y={y}:exact=1"
