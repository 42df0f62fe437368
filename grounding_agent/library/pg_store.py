"""A library a team shares: the store on a PostgreSQL server (15 or newer; no extension needed).

    store = PgStore.open("postgresql://me@db.lan:5432/rushes", create=True)   # or Library(URL, create=True)
    store.write(record)              # one video in one transaction: all of it or none of it
    store.knn(vector, k); store.text_search(["price"], "speech", limit)

Why a server: the default store is one SQLite file in WAL mode, which needs shared memory on one host; on
a network share two machines would corrupt it. Several machines (or Ray nodes) index into one database
here and search it at the same time. Debian ships PostgreSQL 15 but no pgvector, so vectors are plain
`bytea` (float32) and each reader searches its own local copy of them (below).

Schema (`MIGRATIONS`, its version in `meta` as in the SQLite store; a newer schema or a database holding
another tool's tables is refused with a one-line `LibraryError`): videos, frames (time_s, vector), texts
(speech and on-screen text, a generated `tsvector` with a GIN index), documents (the transcript and screen
text as JSON), shots. Full text: `to_tsvector('english')` and `ts_rank_cd` (cover density) stand in for
FTS5's BM25 — the candidates are the same words, their order among themselves may differ; the fuzzy
phrase matcher that places quotes and titles (`library.search`) is the same code on both stores.

Concurrency: writers share the database (no global lock): each video is one transaction that first takes
an advisory lock on its path (two writers of one file serialize, the second replaces the first: never two
rows). Frame ids are drawn only while holding the `codes_version` row of `meta` (bumped in the same
transaction), so ids become visible in ascending order: a reader that has every frame up to id N can
sync by `rows_after(N)` and never miss a row a slower writer commits later. Deleting frames bumps
`codes_epoch` (the reader rebuilds). A killed writer's transaction is rolled back by the server.

Vector search: each reader keeps its own ANN index of the frame vectors (`ann.AnnIndex`, faiss: exact up
to `LIBRARY.visual_exact_frames`, IVF above) in a local cache folder (`$GROUNDING_AGENT_CACHE/library-pg/
<hash of host, port, database, user>-<store id>/`, never keyed by the password), synced from the database
by `rows_after` inside one snapshot with the stamp, and rescores its candidates exactly from the database.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import re
import threading
import uuid
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import numpy as np

from grounding_agent.defaults import LIBRARY
from grounding_agent.defaults.core import cache_dir
from grounding_agent.errors import LibraryError, LibraryStoreError
from grounding_agent.library.ann import AnnIndex
from grounding_agent.library.records import VideoRecord
from grounding_agent.library.store import TOOL, ocr_rows, speech_rows
from grounding_agent.library.store_api import (
    VIDEO_COLUMNS,
    TextRow,
    checked_schema,
    redact,
    secrets_in,
    video_values,
)
from grounding_agent.utils.extras import TEAM, require_spec

# Advisory lock namespaces (the first of the two int4 keys): schema changes, and one lock per video path.
MIGRATE_LOCK, PATH_LOCK = 0x6761_0001, 0x6761_0002
_WORD = re.compile(r"\w+", re.UNICODE)
_LIBPQ_PREFIX = re.compile(r"^connection to server (at|on) .*? failed: (FATAL: )?")

# MIGRATIONS[i] takes a database from schema version i to i + 1; append, never edit a shipped one.
MIGRATIONS: tuple[str, ...] = (
    """
    CREATE TABLE meta(key text PRIMARY KEY, value text NOT NULL);
    CREATE TABLE videos(
        id bigserial PRIMARY KEY, path text UNIQUE NOT NULL, fingerprint text NOT NULL,
        size_bytes bigint NOT NULL, mtime_ns bigint NOT NULL, duration_s double precision NOT NULL,
        avg_fps double precision NOT NULL, num_frames bigint NOT NULL, width integer NOT NULL,
        height integer NOT NULL, channels text NOT NULL, models text NOT NULL,
        indexed_at double precision NOT NULL);
    CREATE INDEX videos_fingerprint ON videos(fingerprint);
    CREATE TABLE frames(id bigserial PRIMARY KEY,
        video_id bigint NOT NULL REFERENCES videos(id) ON DELETE CASCADE,
        time_s double precision NOT NULL, vector bytea NOT NULL);
    CREATE INDEX frames_video ON frames(video_id);
    CREATE TABLE texts(id bigserial PRIMARY KEY,
        video_id bigint NOT NULL REFERENCES videos(id) ON DELETE CASCADE, kind text NOT NULL,
        start_s double precision NOT NULL, end_s double precision NOT NULL, text text NOT NULL,
        tsv tsvector GENERATED ALWAYS AS (to_tsvector('english', text)) STORED);
    CREATE INDEX texts_video ON texts(video_id);
    CREATE INDEX texts_tsv ON texts USING gin(tsv);
    CREATE TABLE documents(video_id bigint NOT NULL REFERENCES videos(id) ON DELETE CASCADE,
        kind text NOT NULL, body text NOT NULL, PRIMARY KEY(video_id, kind));
    CREATE TABLE shots(video_id bigint NOT NULL REFERENCES videos(id) ON DELETE CASCADE,
        start_s double precision NOT NULL, end_s double precision NOT NULL);
    CREATE INDEX shots_video ON shots(video_id);
    """,
)
SCHEMA_VERSION = len(MIGRATIONS)


class PgStore:
    """The open store of one PostgreSQL library (thread-safe: one connection behind a lock)."""

    def __init__(self, url: str, conn: Any):
        self._url, self._conn = url, conn
        self._lock = threading.RLock()
        self._ann: AnnIndex | None = None

    @property
    def location(self) -> str:
        return redact(self._url)

    # --- opening ---------------------------------------------------------------------------------

    @classmethod
    def open(cls, url: str, *, create: bool = False) -> PgStore:
        """Connect to the database `url` names; with `create`, make the schema in an empty database.

        Raises:
            LibraryError: a malformed URL, no such database, a refused login, another tool's tables, a newer
                schema, no library there (and not `create`).
            LibraryStoreError: the server cannot be reached.
        """
        require_spec(TEAM, feature="a PostgreSQL --library")
        import psycopg

        _check_url(url)
        try:
            conn = psycopg.connect(
                url,
                autocommit=True,
                connect_timeout=max(1, round(LIBRARY.pg_connect_timeout_s)),
                application_name="grounding-agent",
            )
        except psycopg.Error as exc:
            raise _connect_error(exc, url) from None
        store = cls(url, conn)
        try:
            store._migrate(create)
        except BaseException:
            conn.close()
            raise
        return store

    def _migrate(self, create: bool) -> None:
        """Bring the schema to `SCHEMA_VERSION` in one transaction, under an advisory lock: two processes
        opening a new database at once never both create it."""
        with self._tx() as c:
            version = self._version()
            if version == SCHEMA_VERSION:
                return
            if version == 0 and not create:
                raise LibraryError(
                    f"no library in {self.location}; run `grounding-agent index VIDEOS --library URL` first"
                )
            c.execute("SELECT pg_advisory_xact_lock(%s)", (MIGRATE_LOCK,))
            version = self._version()
            for step in range(version, SCHEMA_VERSION):
                c.execute(MIGRATIONS[step])
                if step == 0:
                    c.execute(
                        "INSERT INTO meta VALUES ('tool', %s), ('store_id', %s), ('codes_epoch', '0'), "
                        "('codes_version', '0'), ('schema_version', '0')",
                        (TOOL, uuid.uuid4().hex),
                    )
                c.execute("UPDATE meta SET value = %s WHERE key = 'schema_version'", (str(step + 1),))

    def _version(self) -> int:
        """The schema version (0: an empty database). Raises: LibraryError: another tool's, a newer schema."""
        import psycopg

        tables = {r[0] for r in self._conn.execute(
            "SELECT table_name FROM information_schema.tables WHERE table_schema = current_schema()"
        )}  # fmt: skip
        if not tables:
            return 0
        meta: dict[str, str] = {}
        if "meta" in tables:
            with contextlib.suppress(psycopg.Error), self._conn.transaction():  # a savepoint
                meta = dict(self._conn.execute("SELECT key, value FROM meta").fetchall())
        return checked_schema(
            meta, tool=TOOL, latest=SCHEMA_VERSION, where=f"database {self.location}", fix="an empty database"
        )

    def close(self) -> None:
        with self._lock:
            self._conn.close()

    # --- writing -----------------------------------------------------------------------------------

    def writer(self) -> contextlib.AbstractContextManager[None]:
        """Nothing to hold: writers share the database (each video locks its own path)."""
        return contextlib.nullcontext()

    @contextlib.contextmanager
    def _tx(self) -> Iterator[Any]:
        """A transaction (rolled back on any error, or by the server if this process dies inside it)."""
        with self._lock, _errors(self._url), self._conn.transaction():
            yield self._conn

    def write(self, record: VideoRecord) -> int:
        """Replace whatever the database holds for `record.path` with `record`, in one transaction."""
        path = str(record.path)
        with self._tx() as c:
            c.execute("SELECT pg_advisory_xact_lock(%s, hashtext(%s))", (PATH_LOCK, path))
            old = c.execute("SELECT id FROM videos WHERE path = %s", (path,)).fetchone()
            if old:
                _delete_rows(c, old[0])
            video_id = _insert_video(c, record)
            with c.cursor() as cur:
                cur.executemany(
                    "INSERT INTO shots(video_id, start_s, end_s) VALUES (%s, %s, %s)",
                    [(video_id, a, b) for a, b in record.shots],
                )
                cur.executemany(
                    "INSERT INTO texts(video_id, kind, start_s, end_s, text) VALUES (%s, %s, %s, %s, %s)",
                    [(video_id, kind, a, b, text)
                     for kind, rows in (("speech", speech_rows(record)), ("ocr", ocr_rows(record)))
                     for a, b, text in rows],
                )  # fmt: skip
            for kind, doc in (("speech", record.transcript), ("ocr", record.screen)):
                if doc is not None:
                    body = json.dumps(doc.to_dict(), ensure_ascii=False)
                    c.execute("INSERT INTO documents VALUES (%s, %s, %s)", (video_id, kind, body))
            if len(record.frame_times_s):  # last: the frame-id lock is held from here to COMMIT only
                self._insert_frames(c, video_id, record)
            return video_id

    def _insert_frames(self, c: Any, video_id: int, record: VideoRecord) -> None:
        vectors = np.ascontiguousarray(record.frame_vectors, dtype=np.float32)
        self._ensure_vectors(c, vectors.shape[1], record.model.get("visual", ""))
        # The row lock on codes_version, held to COMMIT, orders the ids by commit (see the module doc).
        c.execute("UPDATE meta SET value = (value::bigint + 1)::text WHERE key = 'codes_version'")
        with c.cursor().copy("COPY frames(video_id, time_s, vector) FROM STDIN") as copy:
            for t, v in zip(record.frame_times_s, vectors, strict=True):
                copy.write_row((video_id, float(t), v.tobytes()))

    def _ensure_vectors(self, c: Any, dim: int, model: str) -> None:
        """The first vectors fix the library's model and dimension; later ones must match them."""
        c.execute(
            "INSERT INTO meta VALUES ('visual_dim', %s), ('visual_model', %s) ON CONFLICT DO NOTHING",
            (str(dim), model),
        )
        have = dict(c.execute("SELECT key, value FROM meta WHERE key IN ('visual_dim', 'visual_model')"))
        if int(have["visual_dim"]) != dim or have["visual_model"] != model:
            raise LibraryError(
                f"library {self.location} holds frame vectors of {have['visual_model']!r} "
                f"({have['visual_dim']}-d); index with that --saliency-model or into another --library"
            )

    def delete(self, video_id: int) -> None:
        with self._tx() as c:
            _delete_rows(c, video_id)

    # --- reading -----------------------------------------------------------------------------------

    def _read(self, sql: str, params: tuple = ()) -> list[tuple]:
        with self._lock, _errors(self._url):
            return self._conn.execute(sql, params).fetchall()

    def meta(self, key: str) -> str | None:
        rows = self._read("SELECT value FROM meta WHERE key = %s", (key,))
        return rows[0][0] if rows else None

    def videos(self) -> list[dict[str, Any]]:
        cols = "id, path, fingerprint, size_bytes, mtime_ns, duration_s, channels, models"
        keys = cols.split(", ")
        return [dict(zip(keys, row)) for row in self._read(f"SELECT {cols} FROM videos ORDER BY id")]

    def text_search(self, words: Sequence[str], kind: str, limit: int) -> list[TextRow]:
        """Full text over `kind` rows: any of `words` (English stemming), ranked by `ts_rank_cd`, best first."""
        terms = [w for w in words if _WORD.fullmatch(w)]
        if not terms:
            return []
        rows = self._read(
            "SELECT video_id, start_s, end_s, text, ts_rank_cd(tsv, q) AS s "
            "FROM texts, to_tsquery('english', %s) q WHERE tsv @@ q AND kind = %s ORDER BY s DESC, id LIMIT %s",
            (" | ".join(f"'{w}'" for w in terms), kind, limit),
        )
        return [(int(v), float(a), float(b), str(t), float(s)) for v, a, b, t, s in rows]

    def document(self, video_id: int, kind: str) -> dict[str, Any] | None:
        rows = self._read("SELECT body FROM documents WHERE video_id = %s AND kind = %s", (video_id, kind))
        return json.loads(rows[0][0]) if rows else None

    def shots(self, video_id: int) -> list[tuple[float, float]]:
        rows = self._read(
            "SELECT start_s, end_s FROM shots WHERE video_id = %s ORDER BY start_s", (video_id,)
        )
        return [(float(a), float(b)) for a, b in rows]

    def check(self) -> None:
        """Raise `LibraryStoreError` unless the server answers and the schema is this version's."""
        if self.meta("schema_version") != str(SCHEMA_VERSION):
            raise LibraryStoreError(
                f"library {self.location} lost its schema version; was it changed by hand?"
            )

    # --- frame vectors -----------------------------------------------------------------------------

    def knn(
        self, vector: np.ndarray, k: int, *, rescore: int = LIBRARY.visual_rescore
    ) -> list[tuple[int, float, float]]:
        """The `k` frames nearest `vector` (cosine): (video_id, time_s, similarity), nearest first.

        As the SQLite store's: this reader's ANN index (`ann`) proposes `max(rescore, k)` frames, rescored
        exactly from their float32 vectors (ties: lower id first); exact for a library of at most
        `LIBRARY.visual_exact_frames` frames."""
        query = np.ascontiguousarray(vector, dtype=np.float32).reshape(-1)
        with self._lock, _errors(self._url), self._snapshot():
            ids, _ = self._synced_ann().search(query, max(int(rescore), int(k)))
            rows = self._conn.execute(
                "SELECT id, video_id, time_s, vector FROM frames WHERE id = ANY(%s)", (ids.tolist(),)
            ).fetchall()
        if not rows:
            return []
        vectors = np.frombuffer(b"".join(r[3] for r in rows), np.float32).reshape(len(rows), -1)
        norms = np.linalg.norm(vectors, axis=1) * (float(np.linalg.norm(query)) or 1.0)
        sims = (vectors @ query) / np.where(norms > 0, norms, 1.0)
        order = np.lexsort(([r[0] for r in rows], -sims))[: int(k)]
        return [(int(rows[i][1]), float(rows[i][2]), float(sims[i])) for i in order]

    def prepare_search(self) -> None:
        """Catch this reader's ANN index up with the database now (see `LibraryStore.prepare_search`)."""
        with self._lock, _errors(self._url), self._snapshot():
            self._synced_ann()

    @contextlib.contextmanager
    def _snapshot(self) -> Iterator[None]:
        """A read-only REPEATABLE READ transaction: the stamp and the rows it counts seen at one instant."""
        from psycopg import IsolationLevel

        self._conn.isolation_level, self._conn.read_only = IsolationLevel.REPEATABLE_READ, True
        try:
            with self._conn.transaction():
                yield
        finally:
            self._conn.isolation_level, self._conn.read_only = None, None

    def _synced_ann(self) -> AnnIndex:
        """This reader's ANN index brought to the stamp of the current snapshot (see `ann.AnnIndex.sync`)."""
        store_id, epoch, version = self.vector_stamp()
        if self._ann is None or self._ann.store_id != store_id:
            folder = self.cache_folder(store_id)
            with contextlib.suppress(OSError):  # unwritable: the index lives in memory only
                folder.mkdir(parents=True, exist_ok=True)
            self._ann = AnnIndex(folder / "frames", store_id)
        self._ann.sync(self.rows_after, epoch, version, count=self._frame_count, sample=self._sample)
        return self._ann

    def vector_stamp(self) -> tuple[str, int, int]:
        """(store id, epoch, version): a new version only appends frame rows, a new epoch deleted some."""
        keys = "('store_id', 'codes_epoch', 'codes_version')"
        meta = dict(self._read(f"SELECT key, value FROM meta WHERE key IN {keys}"))
        return meta["store_id"], int(meta["codes_epoch"]), int(meta["codes_version"])

    def rows_after(self, after_id: int) -> Iterator[tuple[np.ndarray, np.ndarray]]:
        """(ids int64, vectors float32 (n, dim)) batches of the frames with ids above `after_id`, ascending."""
        while rows := self._read(
            "SELECT id, vector FROM frames WHERE id > %s ORDER BY id LIMIT %s",
            (after_id, LIBRARY.pg_sync_rows),
        ):
            ids = np.fromiter((r[0] for r in rows), np.int64, len(rows))
            yield ids, np.frombuffer(b"".join(r[1] for r in rows), np.float32).reshape(len(rows), -1)
            after_id = int(ids[-1])

    def _frame_count(self) -> int:
        return int(self._read("SELECT count(*) FROM frames")[0][0])

    def _sample(self, m: int) -> np.ndarray:
        """About `m` frame vectors at random ids (index lookups: no full scan to train the index)."""
        lo, hi = self._read("SELECT min(id), max(id) FROM frames")[0]
        if lo is None:
            return np.zeros((0, 0), np.float32)
        span = hi - lo + 1
        ids = lo + np.random.default_rng(0).choice(span, size=min(span, m), replace=False)
        rows = self._read("SELECT vector FROM frames WHERE id = ANY(%s)", (np.sort(ids).tolist(),))
        return np.frombuffer(b"".join(r[0] for r in rows), np.float32).reshape(len(rows), -1)

    def cache_folder(self, store_id: str) -> Path:
        """This reader's local ANN cache: keyed by server, database, user and store id (never the password)."""
        info = self._conn.info
        server = hashlib.sha256(f"{info.host}|{info.port}|{info.dbname}|{info.user}".encode()).hexdigest()[
            :16
        ]
        return cache_dir("library-pg") / f"{server}-{store_id}"


def _insert_video(c: Any, r: VideoRecord) -> int:
    marks = ",".join(["%s"] * len(VIDEO_COLUMNS.split(",")))
    row = c.execute(
        f"INSERT INTO videos({VIDEO_COLUMNS}) VALUES ({marks}) RETURNING id", video_values(r)
    ).fetchone()
    return int(row[0])


def _delete_rows(c: Any, video_id: int) -> None:
    """The video and (by cascade) all its rows; frames gone: a new epoch (readers rebuild their copy)."""
    if c.execute("SELECT 1 FROM frames WHERE video_id = %s LIMIT 1", (video_id,)).fetchone():
        c.execute("UPDATE meta SET value = (value::bigint + 1)::text WHERE key = 'codes_epoch'")
    c.execute("DELETE FROM videos WHERE id = %s", (video_id,))


# --- errors: one line, the password never in it -------------------------------------------------------


def _check_url(url: str) -> None:
    """Raises: LibraryError: `url` cannot be a PostgreSQL URL (port, host, database)."""
    from psycopg import ProgrammingError
    from psycopg.conninfo import conninfo_to_dict

    how = "write postgresql://USER@HOST:PORT/DATABASE"
    try:
        parts = urlsplit(url)
        parts.port  # noqa: B018 -- raises ValueError for a port that is not a number
        conninfo_to_dict(url)
    except (ValueError, ProgrammingError) as exc:
        raise LibraryError(
            f"--library {redact(url)} is not a valid PostgreSQL URL ({_scrub(exc, url)}); {how}"
        ) from None
    if not parts.path.strip("/"):
        raise LibraryError(f"--library {redact(url)} names no database; {how}")


def _connect_error(exc: Exception, url: str) -> LibraryError:
    reason, where = _scrub(exc, url), redact(url)
    if "password" in reason or "authentication" in reason:
        return LibraryError(
            f"library server {where} refused the login ({reason}); check the user and password "
            "(in the URL, PGPASSWORD or ~/.pgpass)"
        )
    if "does not exist" in reason and "database" in reason:
        return LibraryError(f"{reason} on {where}; create it first (createdb) or give another --library")
    return LibraryStoreError(
        f"cannot reach the library server {where} ({reason}); is PostgreSQL running there?"
    )


def _scrub(exc: Exception | str, url: str) -> str:
    """The first meaningful line of `exc`, without the URL or any password it may hold."""
    text = " ".join(str(exc).split())
    text = text.removeprefix("connection failed: ").replace(url, redact(url))
    text = _LIBPQ_PREFIX.sub("", text)  # the URL already says where
    for secret in secrets_in(url):
        text = text.replace(secret, "***")
    if env := os.environ.get("PGPASSWORD"):
        text = text.replace(env, "***")
    return text[:300]


@contextlib.contextmanager
def _errors(url: str) -> Iterator[None]:
    """psycopg's errors as one-line typed errors."""
    import psycopg

    try:
        yield
    except psycopg.OperationalError as exc:
        raise LibraryStoreError(
            f"library server {redact(url)} failed ({_scrub(exc, url)}); is it still running and reachable?"
        ) from None
    except psycopg.Error as exc:
        raise LibraryStoreError(f"library {redact(url)} failed ({_scrub(exc, url)})") from None
