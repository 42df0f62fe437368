"""The visual channel's sign-bit pre-filter and exact rescoring (library store schema 3)."""

from __future__ import annotations

import numpy as np

from grounding_agent.library.codes import Codes, pack
from grounding_agent.library.store import DB_NAME, MIGRATIONS, Store, _executescript, connect


def _unit(n: int, seed: int = 0, dim: int = 512) -> np.ndarray:
    x = np.random.default_rng(seed).standard_normal((n, dim)).astype(np.float32)
    return x / np.linalg.norm(x, axis=1, keepdims=True)


def _store_with(folder, vectors: np.ndarray, per_video: int = 100) -> Store:
    store = Store.open(folder, create=True)
    for v in range(0, len(vectors), per_video):
        with store.transaction() as c:
            part = vectors[v : v + per_video]
            store.insert_frames(c, v // per_video + 1, range(len(part)), part)
    return store


def _index(hit: tuple[int, float, float], per_video: int = 100) -> int:
    return (hit[0] - 1) * per_video + int(hit[1])


def test_nearest_by_hamming_matches_brute_force():
    x = _unit(3000)
    codes = Codes(("t", 0, 0), np.arange(3000), np.ascontiguousarray(pack(x).T))
    q = pack(x[7])[0]
    bits = np.unpackbits(pack(x).view(np.uint8), axis=1) != np.unpackbits(pack(x[7]).view(np.uint8), axis=1)
    dist = bits.sum(axis=1)
    found = codes.nearest(q, 50)
    assert len(found) == 50 and found.tolist().count(7) == 1
    assert dist[found].max() <= np.sort(dist)[49]  # no frame outside is nearer than one inside


def test_knn_is_exact_up_to_the_rescoring_depth_and_approximate_beyond(tmp_path):
    x = _unit(1500)
    store = _store_with(tmp_path / "lib", x)
    q = x[42] + 0.05 * _unit(1, seed=3)[0]
    truth = np.argsort(-(x @ q))[:10].tolist()
    exact = store.knn(q, 10, rescore=5000)
    assert [_index(h) for h in exact] == truth
    assert abs(exact[0][2] - float(x[42] @ q / np.linalg.norm(q))) < 1e-4  # exact cosine, not Hamming
    approx = store.knn(q, 10, rescore=100)
    assert _index(approx[0]) == 42 and len(approx) == 10


def test_codes_side_file_follows_writes_and_deletes(tmp_path):
    x = _unit(400)
    store = _store_with(tmp_path / "lib", x[:300])
    assert len(store.codes()) == 300
    sides = list((tmp_path / "lib").glob(DB_NAME + ".codes-*.npy"))
    assert len(sides) == 1
    with store.transaction() as c:
        store.insert_frames(c, 4, range(100), x[300:])
    assert len(store.codes()) == 400  # appended, not rebuilt
    with store.transaction():
        store._delete_rows(1)
    reopened = Store.open(tmp_path / "lib")  # another process: reads the new side file
    assert len(reopened.codes()) == 300
    assert all(h[0] != 1 for h in reopened.knn(x[5], 50, rescore=10))
    assert len(list((tmp_path / "lib").glob(DB_NAME + ".codes-*.npy"))) == 1


def test_schema_2_vectors_are_backfilled(tmp_path):
    folder = tmp_path / "old"
    folder.mkdir()
    conn = connect(folder / DB_NAME)
    for script in MIGRATIONS[:2]:
        _executescript(conn, script)
    conn.execute("INSERT INTO meta VALUES ('tool', 'grounding-agent-library'), ('schema_version', '2')")
    conn.execute("CREATE VIRTUAL TABLE frame_vecs USING vec0(embedding float[512] distance_metric=cosine)")
    x = _unit(50)
    for i, vec in enumerate(x):
        conn.execute("INSERT INTO frames(video_id, time_s) VALUES (1, ?)", (float(i),))
        conn.execute("INSERT INTO frame_vecs(rowid, embedding) VALUES (?, ?)", (i + 1, vec.tobytes()))
    conn.close()
    store = Store.open(folder)
    assert store.meta("schema_version") == "3"
    assert store.query("SELECT count(*) FROM frame_bits") == [(50,)]
    assert store.knn(x[9], 1)[0][:2] == (1, 9.0)
