"""Model-free baselines that set the floor: they read only the video's duration, never pixels or the query.

- `prior`: a blind prior learned from training moments (normalised to [0, 1]): the top-k windows of a
  grid chosen greedily to cover the most training moments (IoU >= 0.3/0.5/0.7, averaged): what a grounder
  gets from the dataset's position bias alone, without looking.
- `uniform`: the video tiled into `num_windows` equal windows, in temporal order.
- `random`: seeded random windows; the draw depends on (seed, video, query) only, so it is the same
  whatever the order or concurrency of a run.

Every baseline takes `delay_s`, a simulated per-query latency (sleep) for resume and throughput tests.
"""

from __future__ import annotations

import asyncio
import time
import zlib
from collections.abc import Callable, Sequence
from pathlib import Path

import numpy as np

from grounding_agent.defaults import COMMANDS
from grounding_agent.errors import ConfigError
from grounding_agent.grounders.base import BaseGrounder, Grounding, at_least, check_request, frame_interval_s
from grounding_agent.types import Frames, Moment, Video
from grounding_agent.utils.temporal import tiou_matrix

PRIOR_THRESHOLDS = (0.3, 0.5, 0.7)


class _ModelFreeGrounder(BaseGrounder):
    """Shared by the baselines: windows in [0, 1] scaled by the duration; optional simulated latency."""

    needs_pixels = False

    def __init__(self, delay_s: float = 0.0):
        if (
            isinstance(delay_s, bool)
            or not isinstance(delay_s, (int, float))
            or not 0 <= delay_s < float("inf")
        ):
            raise ConfigError(f"delay_s must be a number of seconds >= 0, got {delay_s!r}")
        self.delay_s = delay_s

    def windows(self, video: Video, query: str, top_k: int) -> list[tuple[float, float, float]]:
        """Normalised (start, end, score) rows, best first."""
        raise NotImplementedError

    def _grounding(
        self, video: Video, query: str, top_k: int, frames: Frames | None, elapsed_s: float
    ) -> Grounding:
        if video.duration_s <= 0:
            raise ConfigError(f"{video.path}: duration must be > 0 s for a baseline, got {video.duration_s}")
        min_length_s = frame_interval_s(frames)
        moments = [
            at_least(
                Moment(s * video.duration_s, e * video.duration_s, float(score)),
                min_length_s,
                video.duration_s,
            )
            for s, e, score in self.windows(video, query, top_k)[:top_k]
        ]
        return Grounding(
            moments=moments,
            timings_s={"model": elapsed_s},
            info={"grounder": self.name},
            duration_s=video.duration_s,
        )

    def ground(
        self, video: Video | str | Path, query: str, *, top_k: int = 1, frames: Frames | None = None
    ) -> Grounding:
        video = check_request(video, top_k, query)
        t0 = time.perf_counter()
        if self.delay_s:
            time.sleep(self.delay_s)
        return self._grounding(video, query, top_k, frames, time.perf_counter() - t0)

    async def aground(
        self, video: Video | str | Path, query: str, *, top_k: int = 1, frames: Frames | None = None
    ) -> Grounding:
        video = check_request(video, top_k, query)
        t0 = time.perf_counter()
        if self.delay_s:
            await asyncio.sleep(self.delay_s)
        return self._grounding(video, query, top_k, frames, time.perf_counter() - t0)


def _prior_row(row: Sequence[float]) -> tuple[float, float, float]:
    """A prior window as finite (start, end, score), its ends clipped to [0, 1] (fractions of the video:
    a window past the end would be returned past the end of every video)."""
    try:
        start, end, score = (float(v) for v in row)
    except (TypeError, ValueError):
        raise ConfigError(
            f"a prior window is [start, end, score] (fractions of the duration), got {row!r}"
        ) from None
    if not all(np.isfinite((start, end, score))):
        raise ConfigError(f"a prior window must hold finite numbers, got {row!r}")
    start, end = min(max(start, 0.0), 1.0), min(max(end, 0.0), 1.0)
    if end <= start:
        raise ConfigError(f"a prior window must end after it starts within [0, 1], got {row!r}")
    return start, end, score


class BlindPriorGrounder(_ModelFreeGrounder):
    """The same top-k normalised windows for every query, learned from training moments."""

    name = "prior"

    def __init__(self, windows: Sequence[Sequence[float]], delay_s: float = 0.0):
        """Args: windows: (K, 3) normalised [start, end, score] rows, best first."""
        super().__init__(delay_s)
        self._windows = [_prior_row(w) for w in windows]
        if not self._windows:
            raise ConfigError("a blind prior needs at least one window")

    @classmethod
    def fit(
        cls, moments_norm: np.ndarray, k: int = 10, grid: int = 40, delay_s: float = 0.0
    ) -> BlindPriorGrounder:
        """Greedy max-coverage windows on a `grid` x `grid` lattice of normalised windows.

        Args:
            moments_norm: (N, 2) training moments as fractions of their video's duration.
            k: how many windows to keep (the most a query can get).
            grid: lattice resolution (1/grid of the duration).
        """
        moments_norm = np.asarray(moments_norm, dtype=np.float64).reshape(-1, 2)
        if len(moments_norm) == 0:
            raise ConfigError("cannot fit a prior on zero training moments")
        ticks = np.round(np.linspace(0.0, 1.0, grid + 1), 6)
        s, e = np.meshgrid(ticks, ticks, indexing="ij")
        cand = np.stack([s.ravel(), e.ravel()], axis=1)
        cand = cand[cand[:, 1] > cand[:, 0]]
        ious = tiou_matrix(cand, moments_norm).astype(np.float32)  # (C, N)
        hits = [ious >= t for t in PRIOR_THRESHOLDS]
        covered = [np.zeros(len(moments_norm), dtype=bool) for _ in PRIOR_THRESHOLDS]
        rows = []
        for _ in range(min(k, len(cand))):
            gain = sum((h & ~c).sum(axis=1) for h, c in zip(hits, covered)) / (
                len(PRIOR_THRESHOLDS) * len(moments_norm)
            )
            best = int(np.argmax(gain))
            rows.append((cand[best, 0], cand[best, 1], float(gain[best])))
            covered = [c | h[best] for h, c in zip(hits, covered)]
        return cls(rows, delay_s=delay_s)

    @classmethod
    def from_annotations(cls, annotations, **kwargs) -> BlindPriorGrounder:
        """Fit on `datasets.Annotation`s (every GT window, normalised by the stated duration)."""
        norm = [
            (s / a.duration_s, e / a.duration_s)
            for a in annotations
            for s, e in a.windows_s
            if a.duration_s > 0
        ]
        return cls.fit(np.clip(np.asarray(norm), 0.0, 1.0), **kwargs)

    def windows(self, video: Video, query: str, top_k: int) -> list[tuple[float, float, float]]:
        return self._windows


class UniformGrounder(_ModelFreeGrounder):
    """`num_windows` equal windows tiling the video, earliest first."""

    name = "uniform"

    def __init__(self, num_windows: int = 5, delay_s: float = 0.0):
        super().__init__(delay_s)
        if isinstance(num_windows, bool) or not isinstance(num_windows, int) or num_windows < 1:
            raise ConfigError(f"num_windows must be >= 1, got {num_windows}")
        self.num_windows = num_windows

    def windows(self, video: Video, query: str, top_k: int) -> list[tuple[float, float, float]]:
        n = self.num_windows
        return [(i / n, (i + 1) / n, 1.0 - i / n) for i in range(n)]


class RandomGrounder(_ModelFreeGrounder):
    """Uniformly random windows (sorted endpoint pairs), reproducible per (seed, video, query)."""

    name = "random"

    def __init__(self, seed: int = COMMANDS.seed, delay_s: float = 0.0):
        super().__init__(delay_s)
        if isinstance(seed, bool) or not isinstance(seed, int) or seed < 0:
            raise ConfigError(f"seed must be a whole number >= 0, got {seed!r}")
        self.seed = seed

    def windows(self, video: Video, query: str, top_k: int) -> list[tuple[float, float, float]]:
        key = zlib.crc32(f"{Path(video.path).stem}\x00{query}".encode())  # stem: same draw for any extension
        ends = np.sort(np.random.default_rng([self.seed, key]).random((top_k, 2)), axis=1)
        return [(float(s), float(e), 1.0 - i / top_k) for i, (s, e) in enumerate(ends)]


def build_prior(
    train_gt: str | Path | None = None, dataset: str = "charades-sta", **kwargs
) -> BlindPriorGrounder:
    """A prior fitted on a training annotation file (`datasets.load_dataset(dataset, train_gt)`)."""
    from grounding_agent.benchmarks.datasets import load_dataset

    if train_gt is None:
        raise ConfigError(
            "the 'prior' baseline needs training annotations: pass train_gt (e.g. charades_sta_train.txt)"
        )
    return BlindPriorGrounder.from_annotations(load_dataset(dataset, train_gt).annotations, **kwargs)


# name -> factory(**options); merged into the grounder registry (`grounders.GROUNDERS`).
BASELINES: dict[str, Callable[..., BaseGrounder]] = {
    "prior": build_prior,
    "uniform": UniformGrounder,
    "random": RandomGrounder,
}
