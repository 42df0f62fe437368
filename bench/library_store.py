"""Which store for the library's frame vectors: the library's `Store` (SQLite + a faiss IVF-SQ8 side file)
vs sqlite-vec brute force vs LanceDB (IVF-PQ), measured.

Engines: `store` — the library's own `Store`: frames written one 3,600-frame "video" per transaction, the
ANN index (`grounding_agent/library/ann.py`) built from the store (random training sample, then every row),
`Store.knn(q, LIBRARY.visual_candidates)` as the library asks it (faiss candidates, exact cosine rescoring of
`--rescore` of them in SQLite); `sqlite:float` / `sqlite:int8` / `sqlite:bit` (sqlite-vec vec0 tables, brute
force, k = 10); `lancedb` or `lancedb:ivf_pq` (IVF-PQ), `lancedb:ivf_sq` (IVF-SQ8, like `store`'s), k = 10.

Per size (synthetic 512-d unit vectors around 256 centres, like frame embeddings of many videos; 200 queries
near the same centres): insert rate, index build time, store + index size on disk, p50/p95 latency,
recall@10 against exact brute force (numpy), RSS of the build and of a fresh reading process (anonymous vs
file-backed, i.e. the memory-mapped index), and the time a reader takes to absorb one more appended video.
The 1-min load average is recorded per row: the machine is shared. Then, unless `--no-extras`, two reader
processes querying while a writer inserts and a writer killed with SIGKILL mid-insert (sqlite-vec, LanceDB).

`--real-vectors N` measures only `store` on N real vectors instead (Whisper base's encoder states over speech:
bench/_real_vectors.py): recall@10 and recall@200 of `Store.knn` against brute force for held-out vectors and
for vectors of unseen sentences, at each `--probes` (then doubled until recall@10 >= 0.9), into the --out
file's `real_vectors` key (the file's other keys kept). Below `visual_exact_frames` the IVF index is forced.

    .venv/bin/python bench/library_store.py --sizes 10000 100000 --out bench/results/library_store.json
    .venv/bin/python bench/library_store.py --sizes 3600000 --engines store --no-extras --append
    .venv/bin/python bench/library_store.py --real-vectors 200000 --probes 0 8 16 64
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
from bench._common import latency, machine, now  # noqa: E402

DIM, K, QUERIES, BATCH, VIDEO_FRAMES = 512, 10, 200, 2000, 3600


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


def lance_index(table, n: int, kind: str = "IVF_PQ") -> None:
    if n >= 10_000:
        parts = max(16, int(np.sqrt(n)))
        subs = {"num_sub_vectors": 64} if kind == "IVF_PQ" else {}
        table.create_index(
            metric="cosine", num_partitions=parts, vector_column_name="vector", index_type=kind, **subs
        )


def lance_query(table, q: np.ndarray) -> list[int]:
    res = table.search(q).metric("cosine").nprobes(20).refine_factor(10).limit(K).to_arrow()
    return res["id"].to_pylist()


# --- runs ------------------------------------------------------------------------------------------


def row(engine: str, n: int, insert_s: float, index_s: float, size: int, times, found, truth) -> dict:
    recall = float(np.mean([len(set(f) & t) / K for f, t in zip(found, truth)]))
    ms = np.array(times) * 1000
    out = {"engine": engine, "vectors": n, "insert_per_s": round(n / insert_s), "index_build_s": round(index_s, 2),
           "size_mb": round(size / 1e6, 1), "p50_ms": round(float(np.percentile(ms, 50)), 2),
           "p95_ms": round(float(np.percentile(ms, 95)), 2), "recall_at_10": round(recall, 4)}  # fmt: skip
    print(json.dumps(out), flush=True)
    return out


def _status(*fields: str) -> dict[str, float]:
    """Fields of /proc/self/status in MB (VmHWM: the peak since `_reset_peak`)."""
    out = {}
    for line in Path("/proc/self/status").read_text().splitlines():
        key, _, value = line.partition(":")
        if key in fields:
            out[key] = round(int(value.split()[0]) / 1024, 1)
    return out


def _reset_peak() -> None:
    Path("/proc/self/clear_refs").write_text("5")  # Linux: VmHWM starts again from the current RSS


def _insert_store(store, n: int, qs: np.ndarray) -> tuple[float, list[set[int]]]:
    """Insert `n` frames as 3,600-frame videos; the exact top K of each query, kept chunk by chunk."""
    best, best_ids, done, insert_s = np.full((len(qs), K), -np.inf), np.zeros((len(qs), K), np.int64), 0, 0.0
    for chunk in vector_chunks(n):
        sims = np.concatenate([best, qs @ chunk.T], axis=1)
        ids = np.concatenate(
            [best_ids, np.broadcast_to(np.arange(done, done + len(chunk)), (len(qs), len(chunk)))], 1
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
    return insert_s, [set(t.tolist()) for t in best_ids]


def run_store(n: int, work: Path, rescores: list[int], query_kind: str = "in", probes=(0,)) -> list[dict]:
    """The library's `Store`: insert, build the ANN index, open it as a fresh reader would, query."""
    import dataclasses

    from grounding_agent.defaults import LIBRARY
    from grounding_agent.library import ann
    from grounding_agent.library.store import DB_NAME, Store

    qs, folder = queries(query_kind), work / f"store{n}"
    store = Store.open(folder, create=True)
    insert_s, truth = _insert_store(store, n, qs)
    store.query("PRAGMA wal_checkpoint(TRUNCATE)")
    _reset_peak()
    before = _status("VmRSS")["VmRSS"]
    t0 = time.perf_counter()
    index = store.ann()  # sample, train, add every row, write the side file
    build_s = time.perf_counter() - t0
    build = {"build_peak_rss_mb": _status("VmHWM")["VmHWM"], "rss_before_build_mb": before}
    lists, exact = index.lists, index.meta.exact
    store.close()
    side = next(folder.glob(DB_NAME + ".ann-*.faiss"))
    sizes = {
        "store_mb": round(size_of(folder / DB_NAME) / 1e6, 1),
        "index_mb": round(side.stat().st_size / 1e6, 1),
    }
    t0 = time.perf_counter()
    store = Store.open(folder)
    store.ann()  # what a fresh `search` process pays: open + map the side file
    open_s = time.perf_counter() - t0
    rows = []
    k = LIBRARY.visual_candidates
    for probe, r in [(p, r) for p in (probes[:1] if exact else probes) for r in rescores]:  # nprobe: IVF only
        ann.LIBRARY = dataclasses.replace(LIBRARY, visual_ann_probes=probe or LIBRARY.visual_ann_probes)

        def fn(q, r=r):
            return [(v - 1) * VIDEO_FRAMES + int(t) for v, t, _ in store.knn(q, k, rescore=r)[:K]]

        times, found = latency(fn, qs)
        name = (
            "store exact (flat)" if exact else f"store ivf{lists}-sq8 nprobe {ann.LIBRARY.visual_ann_probes}"
        )
        out = row(f"{name} > rescore {max(r, k)}", n, insert_s, build_s, size_of(folder), times, found, truth)
        rss = _status("RssAnon", "RssFile")
        rows.append({**out, **sizes, **build, "open_s": round(open_s, 3), "k": k, "queries": query_kind,
                     "reader_rss_anon_mb": rss.get("RssAnon"), "reader_rss_file_mb": rss.get("RssFile"),
                     "load_avg_1m": round(os.getloadavg()[0], 2)})  # fmt: skip
    ann.LIBRARY = LIBRARY
    rows[-1]["append_one_video_s"] = _append_one(store, n)
    store.close()
    shutil.rmtree(folder)
    return rows


def _append_one(store, n: int) -> float:
    """Seconds a reader takes to absorb one more 3,600-frame video into its index (append + rewrite)."""
    with store.transaction() as c:
        store.insert_frames(c, n // VIDEO_FRAMES + 2, range(VIDEO_FRAMES), vectors(VIDEO_FRAMES, seed=9))
    t0 = time.perf_counter()
    store.ann()
    return round(time.perf_counter() - t0, 2)


def run_size(
    n: int, work: Path, engines: list[str], rescores=(1000,), query_kind: str = "in", probes=(0,)
) -> list[dict]:
    rows = run_store(n, work, rescores, query_kind, probes) if "store" in engines else []
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
        rows.append({**out, "k": K, "queries": query_kind, "load_avg_1m": round(os.getloadavg()[0], 2)})
        path.unlink()
    for kind in [(e.split(":") + ["ivf_pq"])[1].upper() for e in engines if e.startswith("lancedb")]:
        path = work / f"l{n}"
        t0 = time.perf_counter()
        table = lance_table(path, data)
        ins = time.perf_counter() - t0
        t0 = time.perf_counter()
        lance_index(table, n, kind)
        idx = time.perf_counter() - t0
        times, found = latency(lambda q, t=table: lance_query(t, q), qset)
        out = row(
            f"lancedb {kind.lower().replace('_', '-')}", n, ins, idx, size_of(path), times, found, truth
        )
        rows.append({**out, "k": K, "queries": query_kind, "load_avg_1m": round(os.getloadavg()[0], 2)})
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
    ap.add_argument("--engines", nargs="+", default=["store", "sqlite:float", "lancedb"])
    ap.add_argument("--rescore", type=int, nargs="+", default=[200, 1000], help="`store` rescoring depths")
    ap.add_argument("--probes", type=int, nargs="+", default=[0], help="`store` IVF nprobe (0: the default)")
    ap.add_argument("--queries", choices=["in", "off"], default="in", help="query set (see `queries`)")
    ap.add_argument("--no-extras", action="store_true", help="skip the concurrency and crash checks")
    ap.add_argument("--out", default="bench/results/library_store.json")
    ap.add_argument("--append", action="store_true", help="add these rows (and checks) to the --out file's")
    ap.add_argument(
        "--real-vectors",
        type=int,
        metavar="N",
        help="only N real vectors (Whisper encoder states) "
        "in `store`: recall at --probes, into the --out file's `real_vectors` (other keys kept)",
    )
    ap.add_argument(
        "--real-lists",
        type=int,
        default=0,
        help="IVF lists of the --real-vectors index (0: "
        "the shipped lists_for(N)); results under `real_vectors_ivf<L>`",
    )
    args = ap.parse_args(argv)
    if args.real_vectors:
        from bench._real_vectors import run_real

        with tempfile.TemporaryDirectory(dir=os.environ.get("BENCH_TMP")) as tmp:
            real = run_real(args.real_vectors, Path(tmp), args.probes, args.real_lists)
        key = f"real_vectors_ivf{args.real_lists}" if args.real_lists else "real_vectors"
        return _write(args.out, [], {key: real}, append=True)
    with tempfile.TemporaryDirectory(dir=os.environ.get("BENCH_TMP")) as tmp:
        work = Path(tmp)
        rows = [
            r
            for n in args.sizes
            for r in run_size(n, work, args.engines, args.rescore, args.queries, args.probes)
        ]
        extras = {} if args.no_extras else {
            "concurrent_readers": concurrency(work, 20_000),
            "crash": [crash(work, "sqlite"), crash(work, "lancedb")],
        }  # fmt: skip
    return _write(args.out, rows, extras, append=args.append)


def _write(out: str, rows: list[dict], extras: dict, *, append: bool) -> int:
    """The results file; with `append`, the earlier file's rows and other keys are kept (new keys win)."""
    if append and Path(out).is_file():
        before = json.loads(Path(out).read_text(encoding="utf-8"))
        kept = {k: v for k, v in before.items() if k not in ("bench", "when", "machine", "dim", "k", "rows")}
        rows, extras = before["rows"] + rows, {**kept, **extras}  # notes, earlier rows, checks: kept
    result = {
        "bench": "library_store",
        "when": now(),
        "machine": machine(),
        "dim": DIM,
        "k": K,
        "rows": rows,
        **extras,
    }
    Path(out).write_text(json.dumps(result, indent=2) + "\n", encoding="utf-8")
    print(json.dumps(extras, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
