"""Which embedded store for the library's frame vectors: SQLite + sqlite-vec vs LanceDB (IVF-PQ), measured.

Engines: `sqlite:float`, `sqlite:int8`, `sqlite:bit` (sqlite-vec vec0 tables, brute force; `bit` is sign bits
alone, no rescoring), `lancedb`, and `store` — the library's own `Store` (schema 3): sign-bit Hamming
pre-filter in numpy keeping `--prefilter` frames, reranked by the float query against their bits (0: no
rerank), exact cosine rescoring of the best `--rescore` frames in SQLite, written one
3,600-frame "video" per transaction, vectors generated in chunks so 3.6M fit in memory.

Per size (synthetic 512-d unit vectors, clustered like frame embeddings of many videos): index size on disk,
insert rate, query latency p50/p95 (k=10), recall@10 against exact search; then, on the smallest size,
two reader processes querying while a writer inserts (errors counted) and a writer killed with SIGKILL in
the middle of inserting (is the store readable, are only whole batches there?).

    .venv/bin/python bench/library_store.py --sizes 10000 100000 --out bench/results/library_store.json
"""

from __future__ import annotations

import argparse
import json
import multiprocessing as mp
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from bench._common import machine, now  # noqa: E402

DIM, K, QUERIES, BATCH, VIDEO_FRAMES = 512, 10, 30, 2000, 3600


def vector_chunks(
    n: int, seed: int = 0, clusters: int = 256, chunk: int = 100_000, noise_seed: int | None = None
):
    """Unit vectors around `clusters` centres (videos' shots are alike), `chunk` rows at a time; the centres
    come from `seed`, the draws around them from `noise_seed` when given (queries near the same centres)."""
    rng = np.random.default_rng(seed)
    centres = rng.standard_normal((clusters, DIM)).astype(np.float32)
    rng = rng if noise_seed is None else np.random.default_rng(noise_seed)
    for i in range(0, n, chunk):
        m = min(chunk, n - i)
        out = (centres[rng.integers(0, clusters, m)] + 0.6 * rng.standard_normal((m, DIM))).astype(np.float32)
        yield out / np.linalg.norm(out, axis=1, keepdims=True)


def vectors(n: int, seed: int = 0, clusters: int = 256) -> np.ndarray:
    """All of `vector_chunks` at once: harder for ANN than for brute force."""
    return np.concatenate(list(vector_chunks(n, seed, clusters)))


def queries(kind: str) -> np.ndarray:
    """`in`: queries near the data's own centres (a query that matches some frames); `off`: the first runs'
    queries, around other centres (`seed=1`), i.e. directions unrelated to every cluster, whose exact top 10
    is a near-tie among noise (cosines ~0.1) — the rows before `store` were measured with these."""
    return (
        vectors(QUERIES, seed=1)
        if kind == "off"
        else np.concatenate(list(vector_chunks(QUERIES, noise_seed=1)))
    )


def exact(data: np.ndarray, queries: np.ndarray) -> list[set[int]]:
    return [set(np.argsort(-(data @ q))[:K].tolist()) for q in queries]


def size_of(path: Path) -> int:
    return (
        sum(f.stat().st_size for f in path.rglob("*") if f.is_file())
        if path.is_dir()
        else path.stat().st_size
    )


# --- sqlite-vec --------------------------------------------------------------------------------------


def sqlite_open(path: Path, kind: str = "float"):
    from grounding_agent.library.store import connect

    conn = connect(path)
    metric = "" if kind == "bit" else " distance_metric=cosine"  # bit vectors: Hamming
    conn.execute(f"CREATE VIRTUAL TABLE IF NOT EXISTS v USING vec0(e {kind}[{DIM}]{metric})")
    if kind == "bit":
        conn.execute("CREATE TEMP TABLE is_bit(x)")
    return conn


def _wrap(data: np.ndarray, bits: bool = False) -> str:
    return "vec_int8(?)" if data.dtype == np.int8 else "vec_quantize_binary(?)" if bits else "?"


def _is_bit(conn) -> bool:
    return conn.execute("SELECT 1 FROM temp.sqlite_master WHERE name = 'is_bit'").fetchone() is not None


def sqlite_insert(conn, data: np.ndarray, start: int = 0) -> None:
    for i in range(0, len(data), BATCH):
        conn.execute("BEGIN IMMEDIATE")
        conn.executemany(
            f"INSERT INTO v(rowid, e) VALUES (?, {_wrap(data, _is_bit(conn))})",
            ((start + i + j + 1, row.tobytes()) for j, row in enumerate(data[i : i + BATCH])),
        )
        conn.execute("COMMIT")


def sqlite_query(conn, q: np.ndarray) -> list[int]:
    sql = f"SELECT rowid FROM v WHERE e MATCH {_wrap(q, _is_bit(conn))} AND k = ?"
    rows = conn.execute(sql, (q.tobytes(), K)).fetchall()
    return [r[0] - 1 for r in rows]


# --- LanceDB ---------------------------------------------------------------------------------------


def lance_table(path: Path, data: np.ndarray):
    import lancedb
    import pyarrow as pa

    db = lancedb.connect(str(path))
    schema = pa.schema([pa.field("id", pa.int64()), pa.field("vector", pa.list_(pa.float32(), DIM))])
    table = db.create_table("v", schema=schema, mode="overwrite")
    for i in range(0, len(data), 50_000):
        chunk = data[i : i + 50_000]
        vec = pa.FixedSizeListArray.from_arrays(pa.array(chunk.reshape(-1)), DIM)
        table.add(pa.table({"id": pa.array(np.arange(i, i + len(chunk))), "vector": vec}))
    return table


def lance_index(table, n: int) -> None:
    if n >= 10_000:
        parts = max(16, int(np.sqrt(n)))
        table.create_index(
            metric="cosine", num_partitions=parts, num_sub_vectors=64, vector_column_name="vector"
        )


def lance_query(table, q: np.ndarray) -> list[int]:
    res = table.search(q).metric("cosine").nprobes(20).refine_factor(10).limit(K).to_arrow()
    return res["id"].to_pylist()


# --- runs ------------------------------------------------------------------------------------------


def latency(fn, queries: np.ndarray) -> tuple[list[float], list[list[int]]]:
    fn(queries[0])  # warm
    times, found = [], []
    for q in queries:
        t0 = time.perf_counter()
        found.append(fn(q))
        times.append(time.perf_counter() - t0)
    return times, found


def row(engine: str, n: int, insert_s: float, index_s: float, size: int, times, found, truth) -> dict:
    recall = float(np.mean([len(set(f) & t) / K for f, t in zip(found, truth)]))
    ms = np.array(times) * 1000
    out = {"engine": engine, "vectors": n, "insert_per_s": round(n / insert_s), "index_build_s": round(index_s, 2),
           "size_mb": round(size / 1e6, 1), "p50_ms": round(float(np.percentile(ms, 50)), 2),
           "p95_ms": round(float(np.percentile(ms, 95)), 2), "recall_at_10": round(recall, 4)}  # fmt: skip
    print(json.dumps(out), flush=True)
    return out


def run_store(
    n: int, work: Path, rescores: list[int], query_kind: str = "in", prefilters: list[int] = (0,)
) -> list[dict]:
    """The library's `Store`: insert `n` frames as 3,600-frame videos, then KNN per rescoring depth."""
    from grounding_agent.library.store import Store

    qs, folder = queries(query_kind), work / f"store{n}"
    store = Store.open(folder, create=True)
    best, best_ids, done, insert_s = np.full((QUERIES, K), -np.inf), np.zeros((QUERIES, K), np.int64), 0, 0.0
    for chunk in vector_chunks(n):
        sims = np.concatenate([best, qs @ chunk.T], axis=1)  # exact top-K kept chunk by chunk
        ids = np.concatenate(
            [best_ids, np.broadcast_to(np.arange(done, done + len(chunk)), (QUERIES, len(chunk)))], 1
        )
        top = np.argpartition(-sims, K, axis=1)[:, :K]
        best, best_ids = np.take_along_axis(sims, top, 1), np.take_along_axis(ids, top, 1)
        t0 = time.perf_counter()
        start = done  # frame index i is video i // 3600 + 1 at time_s i % 3600 (a video may span two chunks)
        while start < done + len(chunk):
            end = min((start // VIDEO_FRAMES + 1) * VIDEO_FRAMES, done + len(chunk))
            with store.transaction() as c:
                first = start % VIDEO_FRAMES
                times = range(first, first + end - start)
                store.insert_frames(c, start // VIDEO_FRAMES + 1, times, chunk[start - done : end - done])
            start = end
        insert_s += time.perf_counter() - t0
        done += len(chunk)
    truth = [set(t.tolist()) for t in best_ids]
    store.query("PRAGMA wal_checkpoint(TRUNCATE)")
    t0 = time.perf_counter()
    store.codes()  # read every frame's bits out of SQLite, write the side file
    build_s = time.perf_counter() - t0
    store.close()
    t0 = time.perf_counter()
    store = Store.open(folder)
    store.codes()  # what a fresh `search` process pays: open + map the side file
    open_s = time.perf_counter() - t0
    rows = []
    for m, r in [(m, r) for m in prefilters for r in rescores]:
        fn = lambda q, m=m, r=r: [  # noqa: E731
            (v - 1) * VIDEO_FRAMES + int(t) for v, t, _ in store.knn(q, K, rescore=r, prefilter=m)
        ]
        times, found = latency(fn, qs)
        name = f"store bits {m} > asym > rescore {r}" if m > r else f"store bits+rescore {r}"
        out = row(name, n, insert_s, build_s, size_of(folder), times, found, truth)
        rows.append({**out, "codes_open_s": round(open_s, 3), "queries": query_kind})
    store.close()
    shutil.rmtree(folder)
    return rows


def run_size(
    n: int, work: Path, engines: list[str], rescores=(1000,), query_kind: str = "in", prefilters=(0,)
) -> list[dict]:
    rows = run_store(n, work, rescores, query_kind, prefilters) if "store" in engines else []
    if not any(e.startswith(("sqlite", "lancedb")) for e in engines):
        return rows
    data, qset = vectors(n), queries(query_kind)
    truth = exact(data, qset)
    for kind in [e.split(":")[1] for e in engines if e.startswith("sqlite")]:
        path = work / f"s{n}-{kind}.sqlite"
        conn = sqlite_open(path, kind)
        stored = (
            data if kind in ("float", "bit") else np.clip(np.round(data * 127 * 4), -127, 127).astype(np.int8)
        )
        t0 = time.perf_counter()
        sqlite_insert(conn, stored)
        ins = time.perf_counter() - t0
        qs = (
            qset if kind in ("float", "bit") else np.clip(np.round(qset * 127 * 4), -127, 127).astype(np.int8)
        )
        times, found = latency(lambda q, c=conn: sqlite_query(c, q), qs)
        conn.close()
        out = row(f"sqlite-vec {kind}", n, ins, 0.0, size_of(path), times, found, truth)
        rows.append({**out, "queries": query_kind})
        path.unlink()
    if "lancedb" in engines:
        path = work / f"l{n}"
        t0 = time.perf_counter()
        table = lance_table(path, data)
        ins = time.perf_counter() - t0
        t0 = time.perf_counter()
        lance_index(table, n)
        idx = time.perf_counter() - t0
        times, found = latency(lambda q: lance_query(table, q), qset)
        rows.append(row("lancedb ivf-pq", n, ins, idx, size_of(path), times, found, truth))
        shutil.rmtree(path)
    return rows


def _reader(path: str, seconds: float, queue) -> None:
    from grounding_agent.library.store import connect

    conn, errors, done, q = connect(Path(path)), 0, 0, vectors(1, seed=3)[0]
    end = time.time() + seconds
    while time.time() < end:
        try:
            sqlite_query(conn, q)
            done += 1
        except Exception:  # noqa: BLE001 - counted: the point is whether any happen
            errors += 1
    queue.put((done, errors))


def concurrency(work: Path, n: int) -> dict:
    """Two reader processes query while this process inserts `n` more vectors in batches."""
    path = work / "conc.sqlite"
    conn = sqlite_open(path)
    sqlite_insert(conn, vectors(n))
    queue = mp.get_context("spawn").Queue()
    readers = [
        mp.get_context("spawn").Process(target=_reader, args=(str(path), 8.0, queue)) for _ in range(2)
    ]
    for p in readers:
        p.start()
    time.sleep(2.0)
    sqlite_insert(conn, vectors(n, seed=5), start=n)
    for p in readers:
        p.join()
    results = [queue.get() for _ in readers]
    return {"readers": 2, "queries": sum(r[0] for r in results), "errors": sum(r[1] for r in results)}


def crash(work: Path, engine: str) -> dict:
    """SIGKILL a writer inserting batches of BATCH rows; reopen and check the store."""
    path = work / f"crash-{engine}"
    code = (
        f"import sys; sys.path.insert(0, {str(Path(__file__).resolve().parents[1])!r}); from bench.library_store import *; import numpy as np\n"
        "data = vectors(200_000)\n"
        f"if {engine!r} == 'sqlite':\n    c = sqlite_open(Path({str(path)!r})); sqlite_insert(c, data)\n"
        f"else:\n    lance_table(Path({str(path)!r}), data)\n"
    )
    proc = subprocess.Popen([sys.executable, "-c", code])
    time.sleep(12.0)
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    try:
        if engine == "sqlite":
            conn = sqlite_open(path)
            ok = conn.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
            count = conn.execute("SELECT count(*) FROM v").fetchone()[0]
        else:
            import lancedb

            count = lancedb.connect(str(path)).open_table("v").count_rows()
            ok = True
        whole = count % (BATCH if engine == "sqlite" else 50_000) == 0
        return {"engine": engine, "readable": ok, "rows_after_kill": count, "whole_batches_only": whole}
    except Exception as exc:  # noqa: BLE001 - a store that does not reopen is the finding
        return {"engine": engine, "readable": False, "error": str(exc)[:200]}


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--sizes", type=int, nargs="*", default=[10_000, 100_000])
    ap.add_argument("--engines", nargs="+", default=["sqlite:float", "sqlite:int8", "lancedb"])
    ap.add_argument("--rescore", type=int, nargs="+", default=[200, 1000], help="`store` rescoring depths")
    ap.add_argument(
        "--prefilter",
        type=int,
        nargs="+",
        default=[20_000],
        help="`store` Hamming depths (0: no asym rerank)",
    )
    ap.add_argument("--queries", choices=["in", "off"], default="in", help="query set (see `queries`)")
    ap.add_argument("--no-extras", action="store_true", help="skip the concurrency and crash checks")
    ap.add_argument("--out", default="bench/results/library_store.json")
    ap.add_argument("--append", action="store_true", help="add these rows (and checks) to the --out file's")
    args = ap.parse_args(argv)
    with tempfile.TemporaryDirectory(dir=os.environ.get("BENCH_TMP")) as tmp:
        work = Path(tmp)
        rows = [
            r
            for n in args.sizes
            for r in run_size(n, work, args.engines, args.rescore, args.queries, args.prefilter)
        ]
        extras = {} if args.no_extras else {
            "concurrent_readers": concurrency(work, 20_000),
            "crash": [crash(work, "sqlite"), crash(work, "lancedb")],
        }  # fmt: skip
    if args.append and Path(args.out).is_file():
        before = json.loads(Path(args.out).read_text(encoding="utf-8"))
        rows, extras = (
            before["rows"] + rows,
            {**{k: before[k] for k in ("concurrent_readers", "crash") if k in before}, **extras},
        )
    result = {
        "bench": "library_store",
        "when": now(),
        "machine": machine(),
        "dim": DIM,
        "k": K,
        "rows": rows,
        **extras,
    }
    Path(args.out).write_text(json.dumps(result, indent=2) + "\n", encoding="utf-8")
    print(json.dumps(extras, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
