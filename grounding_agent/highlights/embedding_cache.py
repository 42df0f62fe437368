"""The on-disk cache of CLIP embeddings: one .npz per key, keys from content fingerprints.

Frame embeddings are keyed by (file content, sampling, model, backend), text embeddings by (text, model);
`model_fingerprint` says which weights a key belongs to. The default folder is
`utils.cache.cache_folder("embeddings")`.
"""

from __future__ import annotations

import hashlib
import json
import logging
import zipfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from grounding_agent.io import atomic_path
from grounding_agent.utils.cache import cache_folder

log = logging.getLogger(__name__)

CACHE_VERSION = (
    2  # bump when the stored layout or the meaning of a key changes (2: time zero = first presented frame)
)


def model_fingerprint(model: Any, id_or_path: str) -> str:
    """What identifies the weights: a hub id plus its commit, or a local folder plus its files' size/mtime."""
    path = Path(id_or_path)
    if path.is_dir():
        files = sorted(p for p in path.iterdir() if p.is_file())
        parts = [str(path.resolve())] + [f"{p.name}:{p.stat().st_size}:{p.stat().st_mtime_ns}" for p in files]
    else:
        parts = [id_or_path, str(getattr(model.config, "_commit_hash", None))]
    return hashlib.sha256("\n".join(parts).encode()).hexdigest()[:16]


def cache_key(**parts: Any) -> str:
    blob = json.dumps({"version": CACHE_VERSION, **parts}, sort_keys=True, default=str)
    return hashlib.sha256(blob.encode()).hexdigest()[:32]


@dataclass
class CacheStats:
    """Counters a caller (or a test) can read: frame-embedding cache hits/misses, frames actually
    encoded, and texts actually encoded (a text found in memory or on disk is not)."""

    hits: int = 0
    misses: int = 0
    frames_encoded: int = 0
    texts_encoded: int = 0


class EmbeddingCache:
    """Arrays stored as one .npz per key; writes are atomic (temp file + os.replace)."""

    def __init__(self, root: str | Path | None = None):
        self.root = Path(root) if root is not None else cache_folder("embeddings")

    def path(self, key: str) -> Path:
        return self.root / f"{key}.npz"

    def load(self, key: str) -> dict[str, np.ndarray] | None:
        path = self.path(key)
        if not path.is_file():
            return None
        try:
            with np.load(path, allow_pickle=False) as data:
                return {k: data[k] for k in data.files}
        # A damaged entry (cut-off write by another tool, disk error) is a miss, and gets rewritten.
        except (OSError, ValueError, EOFError, KeyError, zipfile.BadZipFile) as exc:
            log.warning("ignoring unreadable cache entry %s (%s)", path, exc)
            return None

    def save(self, key: str, arrays: dict[str, np.ndarray]) -> Path:
        with atomic_path(self.path(key)) as tmp, open(tmp, "wb") as f:
            np.savez(f, **arrays)
        return self.path(key)
