"""Caches: the on-disk cache folder with content fingerprints, and one bounded in-memory cache type.

    path = cache_folder("transcripts") / f"{file_fingerprint(video_path)}.json"
    sessions = BoundedCache(maxsize=32, ttl_s=600)      # LRU, optionally expiring, thread-safe

Content (not the path) keys the disk caches, so a copied or renamed video still hits them and an edited one
never returns stale results. `BoundedCache` wraps `cachetools` so every in-memory LRU/TTL in the library
behaves (and evicts) the same way.
"""

from __future__ import annotations

import hashlib
import threading
import time
from collections.abc import Callable, Hashable, Iterator
from pathlib import Path
from typing import Any, Generic, TypeVar

import cachetools

from grounding_agent.defaults import cache_dir
from grounding_agent.errors import VideoNotFoundError

K = TypeVar("K", bound=Hashable)
V = TypeVar("V")

_file_digests: dict[tuple[str, int, int], str] = {}


def cache_folder(kind: str) -> Path:
    """The folder for cached `kind` ("embeddings", "transcripts", "ocr", "onnx"); see `defaults.cache_dir`."""
    return cache_dir(kind)


def file_fingerprint(path: str | Path) -> str:
    """sha256 of the file's bytes, memoised per (path, size, mtime) so a file is hashed once per process.

    Raises:
        VideoNotFoundError: the path is not a file.
    """
    path = Path(path)
    if not path.is_file():
        raise VideoNotFoundError(path, "no such file; check the path")
    st = path.stat()
    memo = (str(path.resolve()), st.st_size, st.st_mtime_ns)
    if memo not in _file_digests:
        with open(path, "rb") as f:
            _file_digests[memo] = hashlib.file_digest(f, "sha256").hexdigest()
    return _file_digests[memo]


class BoundedCache(Generic[K, V]):
    """A thread-safe LRU cache of at most `maxsize` (total `getsizeof`) whose entries may expire.

    Args:
        maxsize: the bound: entries, or the sum of `getsizeof(value)` when that is given.
        ttl_s: entries older than this many seconds (since last `set`/`touch`) are gone; None: never.
        getsizeof: the size of one value (e.g. bytes of an array); default 1 per entry.
        on_evict: called with (key, value) for every entry evicted or expired (e.g. to delete files).
        timer: the clock `ttl_s` is counted on (tests pass a fake one).
    """

    def __init__(
        self,
        maxsize: float,
        *,
        ttl_s: float | None = None,
        getsizeof: Callable[[V], float] | None = None,
        on_evict: Callable[[K, V], None] | None = None,
        timer: Callable[[], float] = time.monotonic,
    ) -> None:
        self._lock = threading.RLock()
        self._on_evict = on_evict
        self._evicted: list[tuple[K, V]] = []
        self._data: cachetools.Cache = (
            _EvictingTTL(self._evicted, maxsize, ttl_s, timer, getsizeof=getsizeof)
            if ttl_s is not None
            else _EvictingLRU(self._evicted, maxsize, getsizeof=getsizeof)
        )

    def get(self, key: K, default: Any = None) -> V | Any:
        with self._lock:
            self._expire()
            found = self._data.get(key, default)
        self._flush()
        return found

    def set(self, key: K, value: V) -> None:
        """Store (or refresh) `key`; a value larger than the whole bound is simply not kept."""
        with self._lock:
            try:
                self._data[key] = value
            except ValueError:  # cachetools: value too large for the cache
                self._data.pop(key, None)
        self._flush()

    def touch(self, key: K) -> None:
        """Restart `key`'s time to live (e.g. at the end of a session's turn)."""
        with self._lock:
            if key in self._data:
                self._data[key] = self._data[key]

    def pop(self, key: K, default: Any = None) -> V | Any:
        with self._lock:
            return self._data.pop(key, default)

    def clear(self) -> None:
        with self._lock:
            items = list(self._data.items())
            self._data.clear()
        self._evicted.extend(items)
        self._flush()

    def __contains__(self, key: object) -> bool:
        with self._lock:
            self._expire()
            return key in self._data

    def __len__(self) -> int:
        with self._lock:
            self._expire()
            return len(self._data)

    def keys(self) -> list[K]:
        with self._lock:
            self._expire()
            keys = list(self._data.keys())
        self._flush()
        return keys

    def __iter__(self) -> Iterator[K]:
        return iter(self.keys())

    def _expire(self) -> None:
        if isinstance(self._data, cachetools.TTLCache):
            self._data.expire()

    def _flush(self) -> None:
        # Evicted entries are handed to `on_evict` outside the lock: it may do slow work (delete files).
        while self._evicted:
            key, value = self._evicted.pop()
            if self._on_evict is not None:
                self._on_evict(key, value)


class _EvictingLRU(cachetools.LRUCache):
    def __init__(self, sink: list, maxsize: float, getsizeof=None) -> None:
        super().__init__(maxsize, getsizeof=getsizeof)
        self._sink = sink

    def popitem(self):
        item = super().popitem()
        self._sink.append(item)
        return item


class _EvictingTTL(cachetools.TTLCache):
    def __init__(
        self, sink: list, maxsize: float, ttl_s: float, timer=time.monotonic, getsizeof=None
    ) -> None:
        super().__init__(maxsize, ttl_s, timer=timer, getsizeof=getsizeof)
        self._sink = sink

    def popitem(self):
        item = super().popitem()
        self._sink.append(item)
        return item

    def expire(self, time=None):
        expired = super().expire(time)
        self._sink.extend(expired)
        return expired
