"""Model-free signals over a video's time: visual motion and scene novelty (loudness: `media.audio`).

Everything here is a `Curve` (one value per timestamp), the shape every saliency-like signal takes in
this package (CLIP similarity in `clip`, fusion in `windows`; window features in `agent.rerank_features`).
Frames are streamed through `media.video.iter_frame_chunks` in time chunks so memory stays bounded.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from grounding_agent.defaults import MEDIA, SAMPLING
from grounding_agent.media.decode import iter_frame_chunks
from grounding_agent.types import Curve

# Motion and histograms need little resolution: decode at about 160x90.
SIGNAL_MAX_PIXELS = 160 * 90
HIST_BINS = 16


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
    chunk_s: float = MEDIA.decode_chunk_s,
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
