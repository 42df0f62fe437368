"""Decoded frames kept in memory within a byte budget, shared by later samplings of the same file."""

from __future__ import annotations

import threading
from collections.abc import Hashable

import numpy as np

from grounding_agent.utils.cache import BoundedCache

__all__ = ["DEFAULT_FRAME_CACHE", "FrameCache"]


class FrameCache:
    """Thread-safe LRU of decoded frames within a byte budget.

    Keys are (file key, output size, frame index), so any later sampling of the same file at the same
    resolution reuses every frame it shares with earlier ones (another window, another fps).

    Args:
        max_bytes: budget for the pixel data held; least recently used frames are dropped first.
    """

    def __init__(self, max_bytes: int = 1 << 30):
        if max_bytes < 0:
            raise ValueError(f"max_bytes must be >= 0, got {max_bytes}")
        self.max_bytes = max_bytes
        self.nbytes = 0
        self.hits = 0
        self.misses = 0
        self._lock = threading.Lock()  # guards the counters; the cache has its own
        self._frames: BoundedCache[Hashable, np.ndarray] = BoundedCache(
            max_bytes, getsizeof=lambda frame: frame.nbytes, on_evict=self._dropped
        )

    def __len__(self) -> int:
        return len(self._frames)

    def get(self, key: Hashable) -> np.ndarray | None:
        frame = self._frames.get(key)
        with self._lock:
            if frame is None:
                self.misses += 1
            else:
                self.hits += 1
        return frame

    def put(self, key: Hashable, frame: np.ndarray) -> None:
        if frame.nbytes > self.max_bytes:
            return
        frame = frame.copy()
        frame.setflags(write=False)  # shared between callers: nobody may edit it in place
        old = self._frames.pop(key)
        with self._lock:
            self.nbytes += frame.nbytes - (0 if old is None else old.nbytes)
        self._frames.set(key, frame)

    def clear(self) -> None:
        self._frames.clear()
        with self._lock:
            self.nbytes = self.hits = self.misses = 0

    def _dropped(self, key: Hashable, frame: np.ndarray) -> None:
        with self._lock:
            self.nbytes -= frame.nbytes


DEFAULT_FRAME_CACHE = FrameCache()
