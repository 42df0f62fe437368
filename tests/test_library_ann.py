"""The visual channel's ANN index (`library.ann`, faiss) and `Store.knn`: exact when small, IVF-SQ8 above,
a side file that follows appends and deletions, survives damage, and a reader while a writer appends."""

from __future__ import annotations

import dataclasses
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

from grounding_agent.defaults import LIBRARY
from grounding_agent.library import ann
from grounding_agent.library.ann import AnnIndex
from grounding_agent.library.store import DB_NAME, MIGRATIONS, Store, _executescript, connect

ROOT = Path(__file__).resolve().parents[1]


def _clustered(n: int, seed: int = 0, dim: int = 512, clusters: int = 16) -> np.ndarray:
    """Unit vectors around a few centres (frames of a few kinds of shot), like bench/library_store.py's."""
    rng = np.random.default_rng(seed)
    centres = np.random.default_rng(99).standard_normal((clusters, dim))
    x = (centres[rng.integers(0, clusters, n)] + 0.6 * rng.standard_normal((n, dim))).astype(np.float32)
    return x / np.linalg.norm(x, axis=1, keepdims=True)


def _store_with(folder, vectors: np.ndarray, per_video: int = 100, first_video: int = 1) -> Store:
    store = Store.open(folder, create=True)
    _append(store, vectors, per_video, first_video)
    return store


def _append(store: Store, vectors: np.ndarray, per_video: int = 100, first_video: int = 1) -> None:
    for v in range(0, len(vectors), per_video):
        with store.transaction() as c:
            part = vectors[v : v + per_video]
            store.insert_frames(c, first_video + v // per_video, range(len(part)), part)


def _index(hit: tuple[int, float, float], per_video: int = 100) -> int:
    return (hit[0] - 1) * per_video + int(hit[1])


def _recall(store: Store, x: np.ndarray, queries: np.ndarray) -> float:
    found = []
    for q in queries:
        truth = set(np.argsort(-(x @ q))[:10].tolist())
        found.append(len(truth & {_index(h) for h in store.knn(q, 10)}) / 10)
    return float(np.mean(found))


@pytest.fixture
def small_ivf(monkeypatch):
    """Library settings that put a few thousand frames on the IVF path (the real code, smaller thresholds)."""
    monkeypatch.setattr(
        ann, "LIBRARY", dataclasses.replace(LIBRARY, visual_exact_frames=500, visual_ann_probes=8)
    )


def _sides(folder: Path) -> list[Path]:
    return sorted(folder.glob(DB_NAME + ".ann-*.faiss"))


def test_small_library_is_searched_exactly(tmp_path):
    x = _clustered(1500)
    store = _store_with(tmp_path / "lib", x)
    q = x[42] + 0.05 * _clustered(1, seed=3)[0]
    hits = store.knn(q, 10)
    assert [_index(h) for h in hits] == np.argsort(-(x @ q))[:10].tolist()
    assert abs(hits[0][2] - float(x[42] @ q / np.linalg.norm(q))) < 1e-4  # exact cosine from the store
    assert store.ann().meta.exact and len(store.ann()) == 1500


def test_large_library_uses_ivf_with_high_recall(tmp_path, small_ivf):
    x = _clustered(4000)
    store = _store_with(tmp_path / "lib", x)
    index = store.ann()
    assert not index.meta.exact and index.meta.trained_n == 4000 and len(index) == 4000
    assert index.lists == ann.lists_for(4000) == 64
    assert _recall(store, x, _clustered(20, seed=7)) >= 0.9
    hit = store.knn(x[123], 1)[0]
    assert _index(hit) == 123 and hit[2] == pytest.approx(1.0, abs=1e-5)


def test_side_file_follows_appends_deletions_and_growth(tmp_path, small_ivf):
    folder = tmp_path / "lib"
    x = _clustered(3000, seed=1)
    store = _store_with(folder, x[:600])
    first = store.ann().meta
    assert first.trained_n == 600 and len(_sides(folder)) == 1
    _append(store, x[600:1200], first_video=7)
    meta = store.ann().meta
    assert (meta.ntotal, meta.trained_n, meta.epoch) == (1200, 600, first.epoch)  # appended, not retrained
    assert len(_sides(folder)) == 1 and store.knn(x[1100], 1)[0][:2] == (12, 0.0)
    reopened = Store.open(folder)  # another process: maps the side file, rebuilds nothing
    assert reopened.ann().meta == meta and reopened.ann().mapped
    with store.transaction():
        store._delete_rows(1)
    meta = reopened.ann().meta  # a new epoch: every row re-added to the trained lists
    assert (meta.ntotal, meta.trained_n, meta.epoch) == (1100, 600, first.epoch + 1)
    assert all(h[0] != 1 for h in reopened.knn(x[5], 50))
    _append(store, x[1200:], first_video=13)  # 2,900 frames >= 4 x 600: trained again
    meta = reopened.ann().meta
    assert (meta.ntotal, meta.trained_n) == (2900, 2900) and len(_sides(folder)) == 1


@pytest.mark.parametrize("damage", ["truncate", "garbage", "zeroed body", "other store"])
def test_damaged_side_file_is_rebuilt(tmp_path, small_ivf, damage):
    folder = tmp_path / "lib"
    x = _clustered(1000, seed=2)
    _store_with(folder, x).ann()
    (side,) = _sides(folder)
    data = side.read_bytes()
    if damage == "truncate":
        side.write_bytes(data[: len(data) // 2])
    elif damage == "garbage":
        side.write_bytes(np.random.default_rng(0).bytes(len(data)))
    elif damage == "zeroed body":  # a trailer that matches, an index faiss cannot read
        side.write_bytes(bytes(len(data) - 400) + data[-400:])
    else:  # a side file copied from another library: its trailer names another store
        other = _store_with(tmp_path / "other", x[:600])
        other.ann()
        side.write_bytes(_sides(tmp_path / "other")[0].read_bytes())
    store = Store.open(folder)
    assert store.knn(x[77], 1)[0][:2] == (1, 77.0)
    assert len(store.ann()) == 1000
    (rebuilt,) = _sides(folder)
    assert ann.read(rebuilt, mmap=True) is not None


def test_the_api_takes_row_batches_from_any_store(tmp_path, small_ivf):
    """What a PostgreSQL store calls: batches of (ids, vectors), no sampler (training reads them twice)."""
    x = _clustered(2000, seed=4)
    ids = np.arange(2000, dtype=np.int64) * 10 + 5

    def rows_after(after_id: int):
        keep = ids > after_id
        for i in range(0, int(keep.sum()), 300):
            yield ids[keep][i : i + 300], x[keep][i : i + 300]

    index = AnnIndex(tmp_path / "team", "pg-1")
    index.sync(rows_after, 0, 1, count=lambda: 2000)
    found, scores = index.search(x[321], 5)
    assert found[0] == ids[321] and scores[0] == pytest.approx(1.0, abs=0.02)
    assert index.path(0, 1).is_file() and not index.meta.exact


WRITER = """
import sys, time, numpy as np
sys.path.insert(0, {root!r})
from grounding_agent.library.store import Store
from tests.test_library_ann import _clustered
x = _clustered(3000, seed=5)
store = Store.open({folder!r})
for v in range(10, 30):
    with store.transaction() as c:
        store.insert_frames(c, v + 1, range(100), x[v * 100 : (v + 1) * 100])
    time.sleep(0.05)
"""


@pytest.mark.slow
def test_a_reader_keeps_searching_while_a_writer_appends(tmp_path, small_ivf):
    folder = tmp_path / "lib"
    x = _clustered(3000, seed=5)
    store = _store_with(folder, x[:1000])
    writer = subprocess.Popen(
        [sys.executable, "-c", WRITER.format(root=str(ROOT), folder=str(folder))], cwd=ROOT
    )
    seen = set()
    deadline = time.time() + 120
    while writer.poll() is None and time.time() < deadline:
        top = store.knn(x[17], 5)
        assert top[0][:2] == (1, 17.0) and top[0][2] == pytest.approx(1.0, abs=1e-5)
        seen.add(len(store.ann()))
    assert writer.wait(timeout=60) == 0
    assert len(store.ann()) == 3000 and store.knn(x[2999], 1)[0][:2] == (30, 99.0)
    assert len(seen) > 1  # the reader did see the library grow while searching
    assert len(_sides(folder)) == 1


def test_schema_2_vectors_are_backfilled(tmp_path):
    folder = tmp_path / "old"
    folder.mkdir()
    conn = connect(folder / DB_NAME)
    for script in MIGRATIONS[:2]:
        _executescript(conn, script)
    conn.execute("INSERT INTO meta VALUES ('tool', 'grounding-agent-library'), ('schema_version', '2')")
    conn.execute("CREATE VIRTUAL TABLE frame_vecs USING vec0(embedding float[512] distance_metric=cosine)")
    x = _clustered(50)
    for i, vec in enumerate(x):
        conn.execute("INSERT INTO frames(video_id, time_s) VALUES (1, ?)", (float(i),))
        conn.execute("INSERT INTO frame_vecs(rowid, embedding) VALUES (?, ?)", (i + 1, vec.tobytes()))
    conn.close()
    (folder / f"{DB_NAME}.codes-abc-0-3.npy").write_bytes(b"old sign bits")  # schema 3's side file
    store = Store.open(folder)
    assert store.meta("schema_version") == str(len(MIGRATIONS))
    assert store.query("SELECT count(*) FROM frame_vectors") == [(50,)]
    assert store.query("SELECT 1 FROM sqlite_master WHERE name = 'frame_bits'") == []
    assert not list(folder.glob("*.codes-*"))
    assert store.knn(x[9], 1)[0][:2] == (1, 9.0)
