"""Shots: where a video cuts (PySceneDetect's `ContentDetector`), on our own decoder's frames.

The detector reads frames our own decoder samples (`media.decode.iter_frame_chunks`, `detect_fps` a
second, small), so a 10-minute video is not decoded at full rate; each cut it finds between two samples is
then placed on the exact frame by decoding that short stretch at full rate (the biggest picture change).
Shots shorter than `min_shot_s` join their neighbour (a flash is not a shot); long ones are split later,
where the highlight signals change (`segment`). The colour histograms of the frames read are kept: a
shot's feature is their mean (the diversity term of `importance`). Cached on disk by the file's content.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from grounding_agent.defaults import SUMMARY
from grounding_agent.errors import ConfigError, VideoError
from grounding_agent.highlights.embedding_cache import EmbeddingCache, cache_key
from grounding_agent.media.decode import iter_frame_chunks, sample_frames
from grounding_agent.media.video import open_video
from grounding_agent.utils.cache import cache_folder, file_fingerprint

# Cuts need little resolution: HSV deltas of a 192x108 picture find them (PySceneDetect downscales too).
DETECT_MAX_PIXELS = 192 * 108
CACHE_VERSION = 1  # bump when what is stored, or how it is computed, changes


@dataclass(frozen=True)
class Shots:
    """A video's shots as the detector cut them (short ones merged, long ones not yet split).

    Attributes:
        bounds_s: (n + 1,) boundaries, 0 first and the video's duration last; shot i is [bounds_s[i],
            bounds_s[i + 1]).
        sample_times_s: (T,) times of the frames the detector read.
        sample_hists: (T, 3 * bins) their colour histograms (each channel sums to 1).
        cuts: cuts the detector found (before short shots were merged).
        source: how they were found, for notes and evidence.
    """

    bounds_s: np.ndarray
    sample_times_s: np.ndarray
    sample_hists: np.ndarray
    cuts: int
    source: str

    def __len__(self) -> int:
        return len(self.bounds_s) - 1

    def features(self, bounds_s: np.ndarray) -> np.ndarray:
        """Each span's mean colour histogram over the frames read inside it (the nearest frame for a span
        with none)."""
        times, hists = self.sample_times_s, self.sample_hists
        out = np.zeros((len(bounds_s) - 1, hists.shape[1]))
        if len(times) == 0:
            return out
        for i, (a, b) in enumerate(zip(bounds_s[:-1], bounds_s[1:], strict=True)):
            inside = (times >= a) & (times < b)
            out[i] = (
                hists[inside].mean(axis=0) if inside.any() else hists[np.argmin(np.abs(times - (a + b) / 2))]
            )
        return out


def detect_shots(
    path: str | Path,
    *,
    threshold: float = SUMMARY.scene_threshold,
    min_shot_s: float = SUMMARY.min_shot_s,
    detect_fps: float = SUMMARY.detect_fps,
    hist_bins: int = SUMMARY.hist_bins,
    cache: bool = True,
) -> Shots:
    """The shots of the video at `path` (see the module docstring); cached by content and settings.

    Raises:
        ConfigError: min_shot_s or detect_fps not > 0.
        VideoError: the video cannot be read.
    """
    if not (0 < min_shot_s < math.inf and 0 < detect_fps < math.inf):
        raise ConfigError(f"shots need min_shot_s > 0 and detect_fps > 0, got {min_shot_s}, {detect_fps}")
    settings = {"threshold": threshold, "min": min_shot_s, "fps": detect_fps}
    store = EmbeddingCache(cache_folder("summaries")) if cache else None
    key = cache_key(kind="shots", video=file_fingerprint(path), v=CACHE_VERSION, bins=hist_bins, **settings)
    if store is not None and (hit := store.load(key)) is not None:
        return Shots(hit["bounds_s"], hit["times"], hit["hists"], int(hit["cuts"]), str(hit["source"]))
    shots = _detect(Path(path), threshold, min_shot_s, detect_fps, hist_bins)
    if store is not None:
        arrays = {"bounds_s": shots.bounds_s, "times": shots.sample_times_s, "hists": shots.sample_hists}
        store.save(key, {**arrays, "cuts": np.asarray(shots.cuts), "source": np.asarray(shots.source)})
    return shots


def _detect(path: Path, threshold: float, min_s: float, fps: float, bins: int) -> Shots:
    from scenedetect import ContentDetector, FrameTimecode

    duration = open_video(path).duration_s
    detector = ContentDetector(threshold=threshold, min_scene_len=max(1, round(min_s * fps)))
    times: list[float] = []
    hists, found = [], []
    for frames in iter_frame_chunks(path, fps=fps, max_pixels=DETECT_MAX_PIXELS):
        for i, img in enumerate(frames.pixels):  # PySceneDetect reads BGR, our decoder gives RGB
            timecode = FrameTimecode(len(times) + i, fps)
            found += detector.process_frame(timecode, np.ascontiguousarray(img[..., ::-1]))
        times += frames.timestamps_s.tolist()
        hists.append(histograms(frames.pixels, bins))
    found += detector.post_process(FrameTimecode(len(times), fps))
    samples = np.asarray(times)
    cuts = sorted(
        {_exact_cut(path, samples, tc.frame_num) for tc in found if 0 < tc.frame_num < len(samples)}
    )
    bounds = merged([0.0, *cuts, duration], min_s)
    source = f"PySceneDetect ContentDetector (threshold {threshold:g}): {len(cuts)} cut(s)"
    all_hists = np.concatenate(hists) if hists else np.zeros((0, 3 * bins))
    return Shots(bounds, samples, all_hists, len(cuts), source)


def _exact_cut(path: Path, samples: np.ndarray, k: int) -> float:
    """The cut between samples k - 1 and k, on the frame where the picture changes most (full rate)."""
    lo, hi = float(samples[k - 1]), float(samples[k])
    try:
        rate = max(open_video(path).avg_fps, 1.0)
        frames = sample_frames(path, fps=2 * rate, start_s=lo, end_s=hi + 1e-3, max_pixels=DETECT_MAX_PIXELS)
    except VideoError:  # a stretch that cannot be decoded: the later sample's time will do
        return hi
    if len(frames.timestamps_s) < 2:
        return hi
    px = frames.pixels.astype(np.float32)
    change = np.abs(np.diff(px, axis=0)).mean(axis=(1, 2, 3))
    return float(frames.timestamps_s[int(np.argmax(change)) + 1])


def merged(bounds: list[float], min_s: float) -> np.ndarray:
    """Boundaries with every shot shorter than `min_s` merged into a neighbour (a short last one into the
    one before)."""
    out = [bounds[0]]
    for b in bounds[1:-1]:
        if b - out[-1] >= min_s:
            out.append(b)
    end = bounds[-1]
    if len(out) > 1 and end - out[-1] < min_s:
        out.pop()
    out.append(end)
    return np.asarray(out)


def histograms(pixels: np.ndarray, bins: int) -> np.ndarray:
    """(T, H, W, 3) uint8 -> (T, 3 * bins) per-channel colour histograms, each channel summing to 1."""
    t = pixels.shape[0]
    binned = (pixels.reshape(t, -1, 3).astype(np.int64) * bins) // 256
    offsets = np.arange(3) * bins + np.arange(t)[:, None, None] * 3 * bins
    counts = np.bincount((binned + offsets).ravel(), minlength=t * 3 * bins).reshape(t, 3 * bins)
    return counts / max(1, binned.shape[1])
