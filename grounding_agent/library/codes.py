"""Sign-bit codes of the frame vectors: the visual channel's pre-filter before exact cosine rescoring.

Each frame vector is kept twice in the store, in one transaction: float32 (`frame_vectors`, for exact
scores) and 512 sign bits (`frame_bits`, 64 bytes). A query's bits are compared with every frame's by Hamming
distance in numpy (XOR + popcount over a column-major uint64 array: ~45 ms for 3.6M frames on one core here),
the nearest few hundred are rescored exactly in SQLite. sqlite-vec 0.1.9's own `bit[512]` KNN was measured
too slow for this (346 ms at 1M for k = 200, 2.8 s for k = 1000; bench/library_store.py, docs/library.md).

Reading 3.6M codes out of SQLite takes seconds, so a process keeps them in memory and in a side file
`library.sqlite.codes-<store id>-<epoch>-<version>.npy` (memory-mapped): `version` counts writes of frames,
`epoch` counts deletions, both kept in the store's `meta` in the writing transaction. A newer version with the
same epoch only appends rows (ids grow); a new epoch rebuilds. The side file is a cache: never the truth.
"""

from __future__ import annotations

import os
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

WORDS = 8  # uint64 words of a 512-bit code; other dims are padded to whole words
BLOCK = 65_536  # frames per block of the Hamming pass
_BYTE_BITS = np.unpackbits(np.arange(256, dtype=np.uint8)[:, None], axis=1, bitorder="little").astype(
    np.float32
)


def pack(vectors: np.ndarray) -> np.ndarray:
    """Sign bits of each row as uint64 words: (n, dim) floats -> (n, ceil(dim / 64)) uint64."""
    vectors = np.atleast_2d(np.asarray(vectors, dtype=np.float32))
    words = -(-vectors.shape[1] // 64)
    bits = np.zeros((len(vectors), words * 64), dtype=bool)
    bits[:, : vectors.shape[1]] = vectors > 0
    return np.packbits(bits, axis=1, bitorder="little").view("<u8")


@dataclass(frozen=True)
class Codes:
    """Frame ids (ascending) and their codes, column-major: `words[w]` is word w of every frame."""

    stamp: tuple[str, int, int]  # (store id, epoch, version)
    ids: np.ndarray  # (n,) int64
    words: np.ndarray  # (word count, n) uint64

    def __len__(self) -> int:
        return len(self.ids)

    def candidates(self, query: np.ndarray, prefilter: int, rescore: int) -> np.ndarray:
        """Ids of the `rescore` frames most likely nearest `query` (float): the `prefilter` nearest by Hamming
        distance, reranked by the float query against their sign bits (asymmetric: the query is not
        quantised, so far fewer near-ties than Hamming's; on clustered data it found 0.92 of the exact top 10
        at 1M where Hamming alone found 0.17, docs/library.md)."""
        if len(self) <= rescore:
            return self.ids
        index = self.nearest(pack(query)[0], max(prefilter, rescore))
        if len(index) <= rescore:
            return self.ids[index]
        # sum over the code's bytes of lut[byte position, byte value] == query . bits (a linear map of q . sign)
        lut = np.asarray(query, np.float32).reshape(-1, 8) @ _BYTE_BITS.T
        code_bytes = np.ascontiguousarray(self.words[:, index].T).view(np.uint8)
        scores = lut[np.arange(lut.shape[0]), code_bytes[:, : lut.shape[0]]].sum(axis=1)
        return self.ids[index[np.argpartition(-scores, rescore)[:rescore]]]

    def nearest(self, query_code: np.ndarray, n: int) -> np.ndarray:
        """Positions of (at least min(n, len)) frames nearest `query_code` by Hamming distance (ties cut anyhow)."""
        if len(self) <= n:
            return np.arange(len(self))
        q = np.asarray(query_code, np.uint64).reshape(-1)
        dist, hist = np.empty(len(self), np.uint16), np.zeros(64 * len(q) + 1, np.int64)
        tmp, cnt, acc = np.empty(BLOCK, np.uint64), np.empty(BLOCK, np.uint8), np.empty(BLOCK, np.uint16)
        for start in range(0, len(self), BLOCK):  # blocks that stay in cache: ~2x faster than whole columns
            end = min(start + BLOCK, len(self))
            m = end - start
            a = acc[:m]
            a[:] = 0
            for w, qw in enumerate(q):
                np.bitwise_xor(self.words[w, start:end], qw, out=tmp[:m])
                np.bitwise_count(tmp[:m], out=cnt[:m])
                np.add(a, cnt[:m], out=a)
            dist[start:end] = a
            hist += np.bincount(a, minlength=len(hist))
        # The n-th smallest distance from the histogram: one pass, cheaper than argpartition over millions.
        cut = int(np.searchsorted(np.cumsum(hist), n))
        index = np.flatnonzero(dist <= cut)
        near = dist[index]
        return np.concatenate([index[near < cut], index[near == cut][: n - int(np.sum(near < cut))]])


def side_file(db: Path, stamp: tuple[str, int, int]) -> Path:
    return db.with_name(f"{db.name}.codes-{stamp[0]}-{stamp[1]}-{stamp[2]}.npy")


def load(db: Path, stamp: tuple[str, int, int], have: Codes | None, rows: Any) -> Codes:
    """The codes for `stamp`: `have` if current, else the side file, else `have`/an older side file of the
    same epoch extended by `rows(after_id)` (an iterable of (id, bits blob)), saved as the new side file."""
    if have is not None and have.stamp == stamp:
        return have
    path = side_file(db, stamp)
    try:
        table = np.load(path, mmap_mode="r")
        return Codes(stamp, np.asarray(table[0]).view(np.int64), table[1:])
    except (OSError, ValueError):
        pass
    base = have if have is not None and have.stamp[:2] == stamp[:2] else _older(db, stamp)
    after = int(base.ids[-1]) if base is not None and len(base) else -1
    new = list(rows(after))
    ids = np.fromiter((r[0] for r in new), np.int64, len(new))
    words = (
        np.frombuffer(b"".join(r[1] for r in new), "<u8").reshape(len(new), -1).T
        if new
        else np.zeros((WORDS, 0), np.uint64)
    )
    if base is not None and len(base):
        ids, words = np.concatenate([base.ids, ids]), np.concatenate([base.words, words], axis=1)
    codes = Codes(stamp, ids, np.ascontiguousarray(words))
    _save(db, codes)
    return codes


def _older(db: Path, stamp: tuple[str, int, int]) -> Codes | None:
    """The newest side file of the same store and epoch (to extend rather than rebuild), or None."""
    prefix = f"{db.name}.codes-{stamp[0]}-{stamp[1]}-"
    best: tuple[int, Path] | None = None
    for p in db.parent.glob(prefix + "*.npy"):
        version = p.name[len(prefix) : -len(".npy")]
        if version.isdigit() and int(version) < stamp[2] and (best is None or int(version) > best[0]):
            best = (int(version), p)
    if best is None:
        return None
    try:
        table = np.load(best[1], mmap_mode="r")
        return Codes((stamp[0], stamp[1], best[0]), np.asarray(table[0]).view(np.int64), table[1:])
    except (OSError, ValueError):
        return None


def _save(db: Path, codes: Codes) -> None:
    """Write the side file atomically (temp file + rename) and drop older ones; a read-only folder is fine."""
    try:
        fd, tmp = tempfile.mkstemp(prefix=f"{db.name}.codes-tmp-", suffix=".npy", dir=db.parent)
        with os.fdopen(fd, "wb") as f:
            np.save(f, np.vstack([codes.ids.view(np.uint64)[None, :], codes.words]))
        path = side_file(db, codes.stamp)
        os.replace(tmp, path)
        for old in db.parent.glob(f"{db.name}.codes-*.npy"):
            if old != path and not old.name.startswith(f"{db.name}.codes-tmp-"):
                old.unlink(missing_ok=True)
    except OSError:
        pass  # the in-memory codes still serve this process
