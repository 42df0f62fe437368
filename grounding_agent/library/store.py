"""The library's store: one SQLite file with frame vectors (float32 + sign bits) and FTS5 (speech, on-screen text).

    store = Store.open(folder, create=True)   # folder/library.sqlite, WAL: readers never wait for the writer
    store.write(record)                       # one video in one transaction: all of it or none of it
    store.knn(vector, k); store.text_search(["price"], "speech", limit)

Why SQLite + sqlite-vec: measured against LanceDB in `bench/library_store.py` (docs/library.md). One file, no
server, WAL mode gives concurrent readers while `index` writes, and a transaction per video makes a kill -9
leave every video either fully there or absent. Frame vectors are float32 rows of a plain table: `knn` asks
a faiss IVF-SQ8 index kept beside the file (`ann`, a rebuildable cache) for candidates, then rescores the best
`LIBRARY.visual_rescore` exactly with sqlite-vec's `vec_distance_cosine` (vec0's brute-force KNN took ~1 s
at 1M vectors; recall and latency vs size in docs/library.md). `schema_version` in `meta` drives
`MIGRATIONS`; a newer or foreign file is refused with a one-line `LibraryError`, a damaged or locked one
with `LibraryStoreError` (`index --repair` moves a damaged file aside and salvages what it can).
"""

from __future__ import annotations

import json
import threading
import uuid
from collections.abc import Callable, Iterator, Sequence
from contextlib import AbstractContextManager, contextmanager
from pathlib import Path
from typing import Any

import numpy as np

from grounding_agent.defaults import LIBRARY
from grounding_agent.errors import LibraryError, LibraryStoreError
from grounding_agent.library.ann import AnnIndex, random_ids, vector_rows
from grounding_agent.library.lock import writer_lock
from grounding_agent.library.records import VideoRecord
from grounding_agent.library.store_api import VIDEO_COLUMNS, checked_schema, video_values

TOOL = "grounding-agent-library"
DB_NAME = "library.sqlite"
PAGE_SIZE = 16384
ANN_BATCH = 50_000  # frame vectors read per batch when the ANN index is built (100 MB at 512-d)
REPAIR = "run `grounding-agent index --repair --library {folder}`"


def _migrate_v3(conn: Any) -> None:
    """3: frame vectors out of the vec0 table into plain rows (float32 + sign bits, rescoring by id is a B-tree
    lookup; vec0's were ~130 us each) and a store id that names the codes' side files; existing rows backfilled."""
    _executescript(conn, FRAME_TABLES)
    conn.execute("INSERT OR REPLACE INTO meta VALUES ('store_id', ?)", (uuid.uuid4().hex,))
    if conn.execute("SELECT 1 FROM sqlite_master WHERE name = 'frame_vecs'").fetchone() is None:
        return
    cur = conn.execute("SELECT rowid, embedding FROM frame_vecs ORDER BY rowid")
    while rows := cur.fetchmany(10_000):
        dim = len(rows[0][1]) // 4
        vectors = np.frombuffer(b"".join(r[1] for r in rows), np.float32).reshape(len(rows), dim)
        _insert_vectors(conn, [r[0] for r in rows], vectors)
    conn.execute("DROP TABLE frame_vecs")


def _migrate_v4(conn: Any) -> None:
    """4: the sign bits go (the ANN index in `ann` replaced their pre-filter), with their side files."""
    conn.execute("DROP TABLE IF EXISTS frame_bits")
    db = Path(conn.execute("PRAGMA database_list").fetchone()[2] or ".")
    for old in db.parent.glob(f"{db.name}.codes-*.npy"):
        old.unlink(missing_ok=True)


FRAME_TABLES = """
    CREATE TABLE frame_vectors(id INTEGER PRIMARY KEY, embedding BLOB NOT NULL);
    CREATE TABLE frame_bits(id INTEGER PRIMARY KEY, bits BLOB NOT NULL);
"""

# MIGRATIONS[i] takes a store from schema version i to i + 1 (SQL, or a function of the connection for a
# backfill); append, never edit a shipped one.
MIGRATIONS: tuple[str | Callable[[Any], None], ...] = (
    """
    CREATE TABLE meta(key TEXT PRIMARY KEY, value TEXT NOT NULL);
    CREATE TABLE videos(
        id INTEGER PRIMARY KEY, path TEXT UNIQUE NOT NULL, fingerprint TEXT NOT NULL,
        size_bytes INTEGER NOT NULL, mtime_ns INTEGER NOT NULL, duration_s REAL NOT NULL,
        avg_fps REAL NOT NULL, num_frames INTEGER NOT NULL, width INTEGER NOT NULL, height INTEGER NOT NULL,
        channels TEXT NOT NULL, models TEXT NOT NULL, indexed_at REAL NOT NULL);
    CREATE INDEX videos_fingerprint ON videos(fingerprint);
    CREATE TABLE frames(id INTEGER PRIMARY KEY, video_id INTEGER NOT NULL, time_s REAL NOT NULL);
    CREATE INDEX frames_video ON frames(video_id);
    CREATE TABLE texts(id INTEGER PRIMARY KEY, video_id INTEGER NOT NULL, kind TEXT NOT NULL,
        start_s REAL NOT NULL, end_s REAL NOT NULL, text TEXT NOT NULL);
    CREATE INDEX texts_video ON texts(video_id);
    CREATE VIRTUAL TABLE texts_fts USING fts5(text, content='', contentless_delete=1,
        tokenize='porter unicode61 remove_diacritics 2');
    CREATE TABLE documents(video_id INTEGER NOT NULL, kind TEXT NOT NULL, body TEXT NOT NULL,
        PRIMARY KEY(video_id, kind));
    """,
    # 2: shots, cut where consecutive frame embeddings differ (visual spans snap to them).
    """
    CREATE TABLE shots(video_id INTEGER NOT NULL, start_s REAL NOT NULL, end_s REAL NOT NULL);
    CREATE INDEX shots_video ON shots(video_id);
    """,
    # 3: frame vectors as float32 + sign-bit rows (binary pre-filter, exact rescoring); see `_migrate_v3`.
    _migrate_v3,
    # 4: no sign bits (the faiss index beside the file pre-filters); see `_migrate_v4`.
    _migrate_v4,
)
SCHEMA_VERSION = len(MIGRATIONS)


def _sqlite() -> Any:
    # Python's own sqlite3 here cannot load extensions; pysqlite3 is the same DB-API with SQLite 3.51.
    from pysqlite3 import dbapi2

    return dbapi2


def connect(db_path: Path, *, timeout_s: float = LIBRARY.busy_timeout_s) -> Any:
    """A connection with sqlite-vec loaded, WAL on, foreign writers waited for up to `timeout_s`."""
    import sqlite_vec

    sqlite3 = _sqlite()
    conn = sqlite3.connect(str(db_path), timeout=timeout_s, isolation_level=None, check_same_thread=False)
    conn.enable_load_extension(True)
    sqlite_vec.load(conn)
    conn.enable_load_extension(False)
    # A new file only: 2 KB vector rows fill 16 KB pages to ~88 % (one a 4 KB page: half of it empty).
    conn.execute(f"PRAGMA page_size={PAGE_SIZE}")
    conn.execute("PRAGMA journal_mode=WAL")
    conn.execute("PRAGMA synchronous=NORMAL")  # WAL + NORMAL: a crashed process never corrupts the file
    return conn


class Store:
    """The open store of one library folder (thread-safe: one connection behind a lock)."""

    def __init__(self, folder: Path, conn: Any):
        self.folder, self.conn = folder, conn
        self.location = str(folder)  # for messages (`store_api.LibraryStore`)
        self._lock = threading.RLock()
        self._ann: AnnIndex | None = None

    # --- opening ---------------------------------------------------------------------------------

    @classmethod
    def open(cls, folder: str | Path, *, create: bool = False) -> Store:
        """Open (or with `create`, make) the store in `folder`.

        Raises:
            LibraryError: no library there (and not `create`), another tool's file, a newer schema.
            LibraryStoreError: the file is damaged or locked.
        """
        folder = Path(folder).expanduser()
        db = folder / DB_NAME
        if not db.is_file():
            _check_new_folder(folder, create)
            folder.mkdir(parents=True, exist_ok=True)
        with _store_errors(folder):
            store = cls(folder, connect(db))
            store._migrate()
            return store

    def _migrate(self) -> None:
        """Bring the store to `SCHEMA_VERSION`, one migration a transaction; the version is read inside it,
        so two processes opening a new store at once never both migrate it."""
        while self._version() < SCHEMA_VERSION:
            with self.transaction():
                version = self._version()
                if version < SCHEMA_VERSION:
                    step = MIGRATIONS[version]
                    _executescript(self.conn, step) if isinstance(step, str) else step(self.conn)
                    self._set_meta("tool", TOOL)
                    self._set_meta("schema_version", str(version + 1))

    def _version(self) -> int:
        """The store's schema version (0: empty). Raises: LibraryError: another tool's file, a newer schema."""
        tables = {r[0] for r in self.conn.execute("SELECT name FROM sqlite_master WHERE type='table'")}
        if not tables:
            return 0
        meta = dict(self.conn.execute("SELECT key, value FROM meta")) if "meta" in tables else {}
        where = str(self.folder / DB_NAME)
        return checked_schema(
            meta, tool=TOOL, latest=SCHEMA_VERSION, where=where, fix="another --library folder"
        )

    def close(self) -> None:
        with self._lock:
            self.conn.close()

    def writer(self) -> AbstractContextManager[None]:
        return writer_lock(self.folder)  # one `index` at a time per folder, for its whole run

    # --- writing -----------------------------------------------------------------------------------

    @contextmanager
    def transaction(self) -> Iterator[Any]:
        """BEGIN IMMEDIATE ... COMMIT (ROLLBACK on any error): a kill -9 inside leaves nothing of it."""
        with self._lock, _store_errors(self.folder):
            self.conn.execute("BEGIN IMMEDIATE")
            try:
                yield self.conn
            except BaseException:
                self.conn.execute("ROLLBACK")
                raise
            self.conn.execute("COMMIT")

    def _set_meta(self, key: str, value: str) -> None:
        self.conn.execute("INSERT OR REPLACE INTO meta(key, value) VALUES (?, ?)", (key, value))

    def meta(self, key: str) -> str | None:
        with self._lock, _store_errors(self.folder):
            row = self.conn.execute("SELECT value FROM meta WHERE key = ?", (key,)).fetchone()
        return row[0] if row else None

    def write(self, record: VideoRecord) -> int:
        """Replace whatever the store holds for `record.path` with `record`, in one transaction."""
        with self.transaction() as c:
            old = c.execute("SELECT id FROM videos WHERE path = ?", (str(record.path),)).fetchone()
            if old:
                self._delete_rows(old[0])
            video_id = self._insert_video(c, record)
            self._insert_frames(c, video_id, record)
            c.executemany(
                "INSERT INTO shots(video_id, start_s, end_s) VALUES (?, ?, ?)",
                [(video_id, a, b) for a, b in record.shots],
            )
            for kind, rows in (("speech", speech_rows(record)), ("ocr", ocr_rows(record))):
                for start_s, end_s, text in rows:
                    cur = c.execute(
                        "INSERT INTO texts(video_id, kind, start_s, end_s, text) VALUES (?, ?, ?, ?, ?)",
                        (video_id, kind, start_s, end_s, text),
                    )
                    c.execute("INSERT INTO texts_fts(rowid, text) VALUES (?, ?)", (cur.lastrowid, text))
            for kind, doc in (("speech", record.transcript), ("ocr", record.screen)):
                if doc is not None:
                    body = json.dumps(doc.to_dict(), ensure_ascii=False)
                    c.execute("INSERT INTO documents VALUES (?, ?, ?)", (video_id, kind, body))
            return video_id

    def _insert_video(self, c: Any, r: VideoRecord) -> int:
        marks = ",".join(["?"] * len(VIDEO_COLUMNS.split(",")))
        cur = c.execute(f"INSERT INTO videos({VIDEO_COLUMNS}) VALUES ({marks})", video_values(r))
        return int(cur.lastrowid)

    def _insert_frames(self, c: Any, video_id: int, r: VideoRecord) -> None:
        if len(r.frame_times_s):
            vectors = np.ascontiguousarray(r.frame_vectors, dtype=np.float32)
            self._ensure_vectors(c, vectors.shape[1], r.model.get("visual", ""))
            self.insert_frames(c, video_id, r.frame_times_s, vectors)

    def insert_frames(self, c: Any, video_id: int, times_s: Any, vectors: np.ndarray) -> None:
        """Frame rows and their float32 vectors, inside the caller's transaction `c`."""
        ids = []
        for t in times_s:
            ids.append(
                c.execute(
                    "INSERT INTO frames(video_id, time_s) VALUES (?, ?)", (video_id, float(t))
                ).lastrowid
            )
        _insert_vectors(c, ids, vectors)
        self._bump(c, "codes_version")

    def _bump(self, c: Any, key: str) -> None:
        c.execute("INSERT OR IGNORE INTO meta VALUES (?, '0')", (key,))
        c.execute("UPDATE meta SET value = CAST(value AS INTEGER) + 1 WHERE key = ?", (key,))

    def _ensure_vectors(self, c: Any, dim: int, model: str) -> None:
        """The first vectors fix the library's model and dimension; later ones must match them."""
        have = dict(c.execute("SELECT key, value FROM meta WHERE key IN ('visual_dim', 'visual_model')"))
        if not have:
            self._set_meta("visual_dim", str(dim))
            self._set_meta("visual_model", model)
        elif int(have["visual_dim"]) != dim or have.get("visual_model") != model:
            raise LibraryError(
                f"library {self.folder} holds frame vectors of {have.get('visual_model')!r} "
                f"({have['visual_dim']}-d); index with that --saliency-model or into another --library"
            )

    def delete(self, video_id: int) -> None:
        with self.transaction():
            self._delete_rows(video_id)

    def _delete_rows(self, video_id: int) -> None:
        c = self.conn
        sql = "DELETE FROM frame_vectors WHERE id IN (SELECT id FROM frames WHERE video_id = ?)"
        if c.execute(sql, (video_id,)).rowcount:  # ids below the ANN index's newest are gone: a new epoch
            self._bump(c, "codes_epoch")
        c.execute(
            "DELETE FROM texts_fts WHERE rowid IN (SELECT id FROM texts WHERE video_id = ?)", (video_id,)
        )
        for table in ("frames", "texts", "shots", "documents"):
            c.execute(f"DELETE FROM {table} WHERE video_id = ?", (video_id,))
        c.execute("DELETE FROM videos WHERE id = ?", (video_id,))

    def _has_table(self, name: str) -> bool:
        row = self.conn.execute("SELECT 1 FROM sqlite_master WHERE name = ?", (name,)).fetchone()
        return row is not None

    # --- reading -----------------------------------------------------------------------------------

    def query(self, sql: str, params: tuple = ()) -> list[tuple]:
        with self._lock, _store_errors(self.folder):
            return self.conn.execute(sql, params).fetchall()

    def videos(self) -> list[dict[str, Any]]:
        cols = "id, path, fingerprint, size_bytes, mtime_ns, duration_s, channels, models"
        keys = cols.split(", ")
        return [dict(zip(keys, row)) for row in self.query(f"SELECT {cols} FROM videos ORDER BY id")]

    def knn(
        self, vector: np.ndarray, k: int, *, rescore: int = LIBRARY.visual_rescore
    ) -> list[tuple[int, float, float]]:
        """The `k` frames nearest `vector` (cosine): (video_id, time_s, similarity), nearest first.

        The ANN index (`ann`) proposes `max(rescore, k)` frames, rescored exactly from the stored vectors:
        exact for a library of at most `LIBRARY.visual_exact_frames` frames, approximate above (recall in
        docs/library.md); frames deleted since the index was written are never returned."""
        query = np.ascontiguousarray(vector, dtype=np.float32).reshape(-1)
        with self._lock, _store_errors(self.folder):
            self.conn.execute("BEGIN")  # one snapshot for the index's stamp and the rows it points at
            try:
                ids, _ = self.ann().search(query, max(int(rescore), int(k)))
                rows = self.conn.execute(
                    "SELECT f.video_id, f.time_s, vec_distance_cosine(v.embedding, ?) AS d "
                    "FROM frame_vectors v JOIN frames f ON f.id = v.id "
                    "WHERE v.id IN (SELECT value FROM json_each(?)) ORDER BY d, f.id LIMIT ?",
                    (query.tobytes(), json.dumps(ids.tolist()), int(k)),
                ).fetchall()
            finally:
                self.conn.execute("COMMIT")
        return [(int(a), float(t), 1.0 - float(d)) for a, t, d in rows]

    def ann(self) -> AnnIndex:
        """The visual ANN index as of this read: in memory, its side file, or (re)built from the store.

        Stamped by the store id, `codes_epoch` (bumped by deletions) and `codes_version` (bumped by writes of
        frames), both written in the writing transaction; read inside one snapshot with the rows."""
        with self._lock, _store_errors(self.folder):
            own = not self.conn.in_transaction
            if own:
                self.conn.execute("BEGIN")
            try:
                meta = dict(
                    self.conn.execute(
                        "SELECT key, value FROM meta WHERE key LIKE 'codes_%' OR key = 'store_id'"
                    )
                )
                store_id = meta.get("store_id", "none")
                if self._ann is None or self._ann.store_id != store_id:
                    self._ann = AnnIndex(self.folder / DB_NAME, store_id)
                epoch, version = int(meta.get("codes_epoch", 0)), int(meta.get("codes_version", 0))
                self._ann.sync(self._rows_after, epoch, version, count=self._frame_count, sample=self._sample)
            finally:
                if own:
                    self.conn.execute("COMMIT")
            return self._ann

    def prepare_search(self) -> None:
        """Build or catch up the ANN index and its side file now (see `LibraryStore.prepare_search`)."""
        self.ann()

    def _frame_count(self) -> int:
        return int(self.conn.execute("SELECT count(*) FROM frames").fetchone()[0])

    def _rows_after(self, after_id: int) -> Iterator[tuple[np.ndarray, np.ndarray]]:
        """(ids, float32 vectors) of the frames above `after_id`, ascending, in batches."""
        cur = self.conn.execute(
            "SELECT id, embedding FROM frame_vectors WHERE id > ? ORDER BY id", (after_id,)
        )
        while rows := cur.fetchmany(ANN_BATCH):
            yield np.fromiter((r[0] for r in rows), np.int64, len(rows)), vector_rows([r[1] for r in rows])

    def _sample(self, m: int) -> np.ndarray:
        """About `m` frame vectors at random ids (rowid lookups: no full scan to train the index)."""
        lo, hi = self.conn.execute("SELECT min(id), max(id) FROM frame_vectors").fetchone()
        sql = "SELECT embedding FROM frame_vectors WHERE id IN (SELECT value FROM json_each(?))"
        return vector_rows([r[0] for r in self.conn.execute(sql, (json.dumps(random_ids(lo, hi, m)),))])

    def text_search(
        self, words: Sequence[str], kind: str, limit: int
    ) -> list[tuple[int, float, float, str, float]]:
        """FTS5 BM25 over `kind` ("speech"/"ocr") rows holding any of `words`: (video_id, start_s, end_s, text,
        -bm25), best first. Each word is quoted, so no FTS5 syntax gets through."""
        match = " OR ".join('"' + w.replace('"', '""') + '"' for w in words)
        return [
            (int(v), float(a), float(b), str(t), -float(s))
            for v, a, b, t, s in self.query(
                "SELECT t.video_id, t.start_s, t.end_s, t.text, bm25(texts_fts) AS s FROM texts_fts "
                "JOIN texts t ON t.id = texts_fts.rowid WHERE texts_fts MATCH ? AND t.kind = ? "
                "ORDER BY s LIMIT ?",
                (match, kind, limit),
            )
        ]

    def document(self, video_id: int, kind: str) -> dict[str, Any] | None:
        rows = self.query("SELECT body FROM documents WHERE video_id = ? AND kind = ?", (video_id, kind))
        return json.loads(rows[0][0]) if rows else None

    def shots(self, video_id: int) -> list[tuple[float, float]]:
        return self.query("SELECT start_s, end_s FROM shots WHERE video_id = ? ORDER BY start_s", (video_id,))

    def check(self) -> None:
        """Raise `LibraryStoreError` unless SQLite's integrity check passes."""
        rows = self.query("PRAGMA integrity_check")
        if [r[0] for r in rows] != ["ok"]:
            raise LibraryStoreError(
                f"library store in {self.folder} is damaged; {REPAIR.format(folder=self.folder)}"
            )


def speech_rows(record: VideoRecord) -> list[tuple[float, float, str]]:
    """One text row per transcript segment."""
    t = record.transcript
    return [(s.start_s, s.end_s, s.text.strip()) for s in t.segments if s.text.strip()] if t else []


def ocr_rows(record: VideoRecord) -> list[tuple[float, float, str]]:
    """One text row per run of sampled frames that show the same text: [first frame, next frame read)."""
    screen = record.screen
    if screen is None:
        return []
    rows: list[tuple[float, float, str]] = []
    frames = screen.frames
    for i, f in enumerate(frames):
        end = frames[i + 1].time_s if i + 1 < len(frames) else max(f.time_s, screen.duration_s)
        text = f.text.strip()
        if rows and rows[-1][2] == text and text:
            rows[-1] = (rows[-1][0], end, text)
        elif text:
            rows.append((f.time_s, end, text))
    return rows


def _check_new_folder(folder: Path, create: bool) -> None:
    if folder.exists() and not folder.is_dir():
        raise LibraryError(f"--library {folder} is a file, not a folder; give a folder")
    # Ours: the writer lock, a damaged store kept aside by `--repair`, SQLite's side files.
    foreign = (
        [p for p in folder.iterdir() if not p.name.startswith((DB_NAME, "index.lock"))]
        if folder.is_dir()
        else []
    )
    if foreign:
        raise LibraryError(
            f"{folder} is not a grounding-agent library (no {DB_NAME}); give an empty or new --library folder"
        )
    if not create:
        raise LibraryError(
            f"no library at {folder}; run `grounding-agent index VIDEOS --library {folder}` first"
        )


def _insert_vectors(c: Any, ids: list[int], vectors: np.ndarray) -> None:
    vectors = np.ascontiguousarray(vectors, dtype=np.float32)
    c.executemany("INSERT INTO frame_vectors(id, embedding) VALUES (?, ?)", zip(ids, map(bytes, vectors)))


def _executescript(conn: Any, script: str) -> None:
    # executescript would COMMIT the open transaction first: run the statements one by one instead.
    for statement in (s.strip() for s in script.split(";")):
        if statement:
            conn.execute(statement)


@contextmanager
def _store_errors(folder: Path) -> Iterator[None]:
    """SQLite's errors as one-line typed errors that say what to do."""
    sqlite3 = _sqlite()
    try:
        yield
    except sqlite3.OperationalError as exc:
        if "locked" in str(exc) or "busy" in str(exc):
            raise LibraryStoreError(
                f"library {folder} is locked by another process (an `index` writing?); wait for it, "
                f"or if none runs, {REPAIR.format(folder=folder)}"
            ) from None
        raise LibraryStoreError(
            f"library store in {folder} failed ({exc}); {REPAIR.format(folder=folder)}"
        ) from None
    except sqlite3.DatabaseError as exc:
        raise LibraryStoreError(
            f"library store in {folder} is damaged ({exc}); {REPAIR.format(folder=folder)}"
        ) from None
