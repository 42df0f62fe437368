"""The visual channel's approximate nearest-neighbour index: faiss IVF-SQ8 over a store's frame vectors.

Cosine similarity is the inner product of L2-normalised vectors. A library of at most
`LIBRARY.visual_exact_frames` frames gets an exact flat index; above, an IVF index with 8-bit scalar-quantised
codes (512 bytes a 512-d frame: 1.8 GB at 3.6M frames, memory-mapped), whose candidates the store rescores
exactly from its float32 vectors (`Store.knn`). IVF-SQ8 was measured against IVF-PQ (64 bytes a frame): PQ's
training took 20x longer and its own top 10 found 0.23 of the exact one, SQ8's 0.97 (bench/library_store.py,
docs/library.md).

The index is a cache beside the store, never the truth: one side file
`<prefix>.ann-<store id>-<epoch>-<version>.faiss` (the faiss index, then a JSON trailer saying what it holds),
written atomically (temp file + rename), memory-mapped when opened, so a `search` process opens it in
milliseconds and processes share its pages. `version` counts the store's writes of frames and `epoch` its
deletions: a newer version of the same epoch appends only the rows after the index's newest id
(`add_with_ids`); a new epoch re-adds every row to the trained lists; once the library holds
`visual_ann_retrain_growth` times the frames the lists were trained on (or outgrows the exact index), it is
trained again on a random sample. A missing, stale, truncated or garbage side file is rebuilt from the store.

Any store can use it (the SQLite `Store`, a PostgreSQL one): the public API is

    index = AnnIndex(folder / "library.sqlite", store_id)
    index.sync(rows_after, epoch, version, count=count, sample=sample)  # cheap when nothing changed
    ids, scores = index.search(query, k)  # approximate: rescore them from the store

where `rows_after(after_id)` yields `(ids int64 (m,), vectors float32 (m, dim))` batches of the rows with
ids above `after_id`, ascending, read in the same snapshot as `epoch`/`version`; `count()` says about how
many rows the store holds; `sample(m)` (optional) returns about `m` vectors drawn at random from all rows
(without it, training takes a second pass over `rows_after(-1)`; `random_ids` and `vector_rows` help write
one). The caller serialises `sync`; `search` only reads.
"""

from __future__ import annotations

import dataclasses
import json
import math
import os
import stat
import tempfile
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from grounding_agent.defaults import LIBRARY

Batches = Iterable[tuple[np.ndarray, np.ndarray]]
MAGIC = b"GAANN001"
TRAILER = 16  # bytes: the JSON's length (little-endian uint64), then MAGIC
TMP_MAX_AGE_S = 3600.0  # a temp file older than this was left by a killed process


def _faiss():
    import faiss  # the `library` extra; imported when the visual channel is searched

    return faiss


@dataclass(frozen=True)
class Meta:
    """What a side file holds (its JSON trailer)."""

    store_id: str
    epoch: int
    version: int
    ntotal: int
    max_id: int
    trained_n: int  # frames the lists were trained for (0: exact flat index)
    faiss_bytes: int

    @property
    def exact(self) -> bool:
        return self.trained_n == 0


class AnnIndex:
    """One store's ANN index: the side files next to `prefix` and the index loaded from one of them."""

    def __init__(self, prefix: Path, store_id: str):
        self.prefix, self.store_id = Path(prefix), store_id
        self.index = None  # a faiss index, None until the first sync
        self.meta: Meta | None = None
        self.mapped = False  # memory-mapped indexes are read-only: appending to one aborts the process

    def __len__(self) -> int:
        return 0 if self.meta is None else self.meta.ntotal

    @property
    def lists(self) -> int:
        """IVF lists (0: the exact flat index, or none yet)."""
        if self.index is None or self.meta is None or self.meta.exact:
            return 0
        return int(_faiss().extract_index_ivf(self.index).nlist)

    def path(self, epoch: int, version: int) -> Path:
        return self.prefix.with_name(f"{self.prefix.name}.ann-{self.store_id}-{epoch}-{version}.faiss")

    # --- searching ---------------------------------------------------------------------------------

    def search(self, query: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
        """Ids and approximate cosines of (up to) the `k` rows nearest `query`, nearest first."""
        if self.index is None or not len(self) or k <= 0:
            return np.zeros(0, np.int64), np.zeros(0, np.float32)
        faiss = _faiss()
        q = _unit(np.asarray(query, np.float32).reshape(1, -1))
        if not self.meta.exact:
            faiss.extract_index_ivf(self.index).nprobe = LIBRARY.visual_ann_probes
        # One query has nothing to share out; OpenMP's threads spinning at a barrier on a loaded machine made
        # a 10k-frame search 100 ms instead of 1.2 ms (2 cores, load 15).
        threads = faiss.omp_get_max_threads()
        faiss.omp_set_num_threads(1)
        try:
            scores, ids = self.index.search(q, int(k))
        finally:
            faiss.omp_set_num_threads(threads)
        keep = ids[0] >= 0
        return ids[0][keep], scores[0][keep]

    # --- keeping it current ------------------------------------------------------------------------

    def sync(
        self,
        rows_after: Callable[[int], Batches],
        epoch: int,
        version: int,
        *,
        count: Callable[[], int],
        sample: Callable[[int], np.ndarray] | None = None,
    ) -> None:
        """Make the index hold the store's rows as of (`epoch`, `version`): the loaded index, its side file,
        the loaded or an older side file of the same epoch plus the new rows, else a rebuild. `count()` (about
        how many rows the store holds) is asked only when the index changes."""
        if self.meta is not None and (self.meta.epoch, self.meta.version) == (epoch, version):
            return
        if self._open(self.path(epoch, version), epoch, version):
            return
        base, count = self._base((epoch, version)), count()
        fits = base is not None and base[1].exact == (count <= LIBRARY.visual_exact_frames)
        fits = fits and (base[1].exact or count < LIBRARY.visual_ann_retrain_growth * base[1].trained_n)
        if fits and base[1].epoch == epoch:  # only rows were added since: append them
            index, meta = base
            ntotal, max_id = _add(index, rows_after(meta.max_id), meta.ntotal, meta.max_id)
            self._keep(index, Meta(self.store_id, epoch, version, ntotal, max_id, meta.trained_n, 0))
            return
        self._keep(*self._build(rows_after, epoch, version, count, sample, base if fits else None))

    def _base(self, stamp: tuple[int, int]):
        """(writable index, meta) to extend or re-fill: the loaded index, else the newest side file older
        than `stamp` (a newer one, of a process ahead of this snapshot, holds rows this one must not see)."""
        if self.index is not None and self.meta is not None and (self.meta.epoch, self.meta.version) < stamp:
            if self.mapped:
                return read(self.path(self.meta.epoch, self.meta.version), mmap=False)
            return self.index, self.meta
        older = [(s, p) for s, p in self._side_files() if s < stamp]
        return read(max(older)[1], mmap=False) if older else None

    def _side_files(self) -> list[tuple[tuple[int, int], Path]]:
        """((epoch, version), path) of this store's side files."""
        head = f"{self.prefix.name}.ann-{self.store_id}-"
        out = []
        for p in self.prefix.parent.glob(head + "*.faiss"):
            parts = p.name[len(head) : -len(".faiss")].split("-")
            if len(parts) == 2 and all(x.isdigit() for x in parts):
                out.append(((int(parts[0]), int(parts[1])), p))
        return out

    def _build(self, rows_after, epoch, version, count, sample, base):
        """A new index over every row: exact when small, else IVF-SQ8, its lists those of `base` when given
        (a new epoch re-adds the rows, it does not retrain), else trained on a random sample."""
        faiss = _faiss()
        if count <= LIBRARY.visual_exact_frames:
            index, trained_n = None, 0
        elif base is not None:
            index, trained_n = faiss.clone_index(base[0]), base[1].trained_n
            index.reset()
        else:
            nlist = lists_for(count)
            wanted = nlist * LIBRARY.visual_ann_train_per_list
            data = sample(wanted) if sample is not None else _sample(rows_after, wanted)
            index, trained_n = _train(data, nlist), count
        batches = iter(rows_after(-1))
        if index is None:  # the dimension comes from the first rows
            first = next(batches, None)
            if first is None:
                return None, Meta(self.store_id, epoch, version, 0, -1, 0, 0)
            index = faiss.IndexIDMap2(faiss.IndexFlatIP(first[1].shape[1]))
            batches = _chain(first, batches)
        ntotal, max_id = _add(index, batches, 0, -1)
        return index, Meta(self.store_id, epoch, version, ntotal, max_id, trained_n, 0)

    def _keep(self, index, meta: Meta) -> None:
        """Use `index`; save it as the side file for its stamp and map that (a read-only folder: memory)."""
        self.index, self.meta, self.mapped = index, meta, False
        if index is None:
            return
        path = self.path(meta.epoch, meta.version)
        if _save(index, meta, path, _mode(self.prefix)):
            self._drop_older((meta.epoch, meta.version))
            self._open(path, meta.epoch, meta.version)

    def _open(self, path: Path, epoch: int, version: int) -> bool:
        loaded = read(path, mmap=True)
        if loaded is None or (loaded[1].store_id, loaded[1].epoch, loaded[1].version) != (
            self.store_id,
            epoch,
            version,
        ):
            return False
        self.index, self.meta = loaded
        self.mapped = True
        return True

    def _drop_older(self, stamp: tuple[int, int]) -> None:
        """Remove side files older than `stamp` (an open mapping survives the unlink), those of another store
        id (a repaired store's) and temp files a killed process left."""
        mine = {p for s, p in self._side_files() if s >= stamp}
        for p in self.prefix.parent.glob(f"{self.prefix.name}.ann-*"):
            try:
                if ".ann-tmp-" not in p.name or time.time() - p.stat().st_mtime > TMP_MAX_AGE_S:
                    if p not in mine:
                        p.unlink()
            except OSError:
                pass  # another process removed it first


def random_ids(lo: int | None, hi: int | None, m: int) -> list[int]:
    """About `m` distinct ids drawn at random from [lo, hi], ascending (a store's `sample` looks them up)."""
    if lo is None or hi is None:
        return []
    ids = lo + np.random.default_rng(0).choice(hi - lo + 1, size=min(hi - lo + 1, m), replace=False)
    return np.sort(ids).tolist()


def vector_rows(blobs: list[bytes]) -> np.ndarray:
    """float32 vector blobs as an (n, dim) matrix ((0, 0) for none)."""
    if not blobs:
        return np.zeros((0, 0), np.float32)
    return np.frombuffer(b"".join(blobs), np.float32).reshape(len(blobs), -1)


def _mode(prefix: Path) -> int:
    """The store file's permission bits (readers of a shared library read the index too), else rw-r--r--."""
    try:
        return stat.S_IMODE(prefix.stat().st_mode)
    except OSError:
        return 0o644


def lists_for(count: int) -> int:
    """IVF lists for `count` frames: `visual_ann_lists_per_sqrt` * sqrt(count), a power of two, >= 16."""
    want = max(16.0, LIBRARY.visual_ann_lists_per_sqrt * math.sqrt(max(count, 1)))
    return 1 << round(math.log2(want))


def _unit(x: np.ndarray) -> np.ndarray:
    x = np.array(x, dtype=np.float32, order="C", copy=True)
    _faiss().normalize_L2(x)
    return x


def _train(data: np.ndarray, nlist: int):
    faiss = _faiss()
    data = _unit(data)
    nlist = max(1, min(nlist, len(data) // 39))  # fewer points than faiss needs per list: fewer lists
    index = faiss.IndexIVFScalarQuantizer(
        faiss.IndexFlatIP(data.shape[1]),
        data.shape[1],
        nlist,
        faiss.ScalarQuantizer.QT_8bit,
        faiss.METRIC_INNER_PRODUCT,
    )
    index.train(data)
    return index


def _add(index, batches: Batches, ntotal: int, max_id: int) -> tuple[int, int]:
    for ids, vectors in batches:
        if len(ids):
            index.add_with_ids(_unit(vectors), np.ascontiguousarray(ids, dtype=np.int64))
            ntotal, max_id = ntotal + len(ids), max(max_id, int(np.max(ids)))
    return ntotal, max_id


def _chain(first, rest: Iterable) -> Batches:
    yield first
    yield from rest


def _sample(rows_after: Callable[[int], Batches], m: int) -> np.ndarray:
    """About `m` rows drawn uniformly from every batch of `rows_after(-1)`: the `m` smallest random keys."""
    rng = np.random.default_rng(0)
    keys, kept = np.zeros(0), None
    for _, vectors in rows_after(-1):
        keys = np.concatenate([keys, rng.random(len(vectors))])
        kept = vectors if kept is None else np.concatenate([kept, vectors])
        if len(keys) > m:
            top = np.argpartition(keys, m)[:m]
            keys, kept = keys[top], kept[top]
    return np.zeros((0, 0), np.float32) if kept is None else kept


def _save(index, meta: Meta, path: Path, mode: int = 0o644) -> bool:
    """The index and its JSON trailer, written to a temp file and renamed; False where the folder is read-only."""
    try:
        fd, tmp = tempfile.mkstemp(prefix=f"{path.name.split('.ann-')[0]}.ann-tmp-", dir=path.parent)
        os.close(fd)
        os.chmod(tmp, mode)  # mkstemp's 0600 would hide the index from other readers of a shared library
        try:
            _faiss().write_index(index, tmp)
            size = os.path.getsize(tmp)
            body = json.dumps({**dataclasses.asdict(meta), "faiss_bytes": size}).encode()
            with open(tmp, "ab") as f:
                f.write(body + len(body).to_bytes(8, "little") + MAGIC)
                f.flush()
                os.fsync(f.fileno())
            os.replace(tmp, path)
        finally:
            if os.path.exists(tmp):
                os.unlink(tmp)
        return True
    except OSError:
        return False


def read(path: Path, *, mmap: bool):
    """(index, meta) from a side file, or None if it is missing, truncated, foreign or damaged."""
    try:
        with open(path, "rb") as f:
            size = f.seek(0, os.SEEK_END)
            if size < TRAILER:
                return None
            f.seek(size - TRAILER)
            tail = f.read(TRAILER)
            length = int.from_bytes(tail[:8], "little")
            if tail[8:] != MAGIC or length > size - TRAILER:
                return None
            f.seek(size - TRAILER - length)
            meta = Meta(**json.loads(f.read(length)))
        if meta.faiss_bytes + length + TRAILER != size:
            return None
        faiss = _faiss()
        flags = (faiss.IO_FLAG_MMAP_IFC if meta.exact else faiss.IO_FLAG_MMAP) if mmap else 0
        index = faiss.read_index(str(path), flags)
    except (OSError, ValueError, TypeError, RuntimeError):  # RuntimeError: faiss could not parse it
        return None
    if index.ntotal != meta.ntotal:
        return None
    return index, meta
