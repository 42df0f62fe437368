"""What `Library` needs of a store, and how a library location names one.

Two stores satisfy `LibraryStore`: `store.Store` (a folder with one SQLite file: embedded, one machine, the
default) and `pg_store.PgStore` (a PostgreSQL database a team shares: several machines or Ray nodes index
into it and search it at once). A location that starts with `postgresql://` or `postgres://` names a
database (`is_server_url`); anything else is a folder.

May import: the core modules (`errors`, `defaults`) and `library.records`; never a store module (both import
this one).
"""

from __future__ import annotations

import json
import time
from collections.abc import Sequence
from contextlib import AbstractContextManager
from typing import Any, Protocol
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

import numpy as np

from grounding_agent.errors import LibraryError
from grounding_agent.library.records import VideoRecord

SERVER_SCHEMES = ("postgresql", "postgres")

# (video_id, start_s, end_s, text, score): a full-text row, best first (a higher score is better).
TextRow = tuple[int, float, float, str, float]


class LibraryStore(Protocol):
    """The store under a `Library`: typed reads and writes, no SQL crosses this line."""

    @property
    def location(self) -> str:
        """Where the store is, for messages: a folder, or a URL without its password."""
        ...

    def writer(self) -> AbstractContextManager[None]:
        """Held around a whole `index` run: the folder's one-writer lock, or nothing where writers may share."""
        ...

    def write(self, record: VideoRecord) -> int:
        """Replace whatever the store holds for `record.video.path`, in one transaction; the video's id."""
        ...

    def delete(self, video_id: int) -> None: ...

    def videos(self) -> list[dict[str, Any]]:
        """Every video: id, path, fingerprint, size_bytes, mtime_ns, duration_s, channels, models; by id."""
        ...

    def knn(self, vector: np.ndarray, k: int) -> list[tuple[int, float, float]]:
        """The `k` frames nearest `vector` by cosine: (video_id, time_s, similarity), nearest first."""
        ...

    def prepare_search(self) -> None:
        """Bring this process's visual ANN index up to date now (`index` calls it once at its end, so the
        first search after a large run does not pay the build)."""
        ...

    def text_search(self, words: Sequence[str], kind: str, limit: int) -> list[TextRow]:
        """Rows of `kind` ("speech"/"ocr") holding any of `words` (plain words, no query syntax), best first."""
        ...

    def document(self, video_id: int, kind: str) -> dict[str, Any] | None: ...

    def shots(self, video_id: int) -> list[tuple[float, float]]: ...

    def meta(self, key: str) -> str | None: ...

    def check(self) -> None:
        """Raise `LibraryStoreError` unless the store is sound."""
        ...

    def close(self) -> None: ...


def is_server_url(location: object) -> bool:
    """True for a `postgresql://` or `postgres://` location (a database), False for a folder."""
    return (
        isinstance(location, str)
        and location.split("://", 1)[0].lower() in SERVER_SCHEMES
        and ("://" in location)
    )


def redact(url: str) -> str:
    """`url` with its password (in the user part or a `password=` parameter) replaced by `***`."""
    try:
        parts = urlsplit(url)
        netloc = parts.netloc
        if parts.password is not None:
            netloc = f"{parts.username or ''}:***@{netloc.rsplit('@', 1)[1]}"
        query = urlencode(
            [(k, "***" if k == "password" else v) for k, v in parse_qsl(parts.query, keep_blank_values=True)],
            safe="/:*",
        )
        return urlunsplit(parts._replace(netloc=netloc, query=query))
    except ValueError:
        return f"{url.split('://', 1)[0]}://***"  # unparseable: show nothing that may hold a secret


def secrets_in(url: str) -> list[str]:
    """The passwords `url` holds (to scrub from any text that might echo them)."""
    try:
        parts = urlsplit(url)
        found = [v for k, v in parse_qsl(parts.query) if k == "password"]
        return [s for s in [parts.password, *found] if s]
    except ValueError:
        return []


def checked_schema(meta: dict[str, str], *, tool: str, latest: int, where: str, fix: str) -> int:
    """The schema version a store's `meta` records (0: none yet).

    Raises:
        LibraryError: the store holds another tool's tables, or a schema newer than `latest`; `fix` says
            what to give instead ("another --library folder", "an empty database").
    """
    if meta.get("tool") != tool:
        raise LibraryError(f"{where} holds another tool's tables (no {tool} schema); give {fix}")
    version = int(meta.get("schema_version", "0"))
    if version > latest:
        raise LibraryError(
            f"library {where} has schema {version}, newer than this grounding-agent's {latest}; "
            f"upgrade grounding-agent or give {fix}"
        )
    return version


VIDEO_COLUMNS = (
    "path, fingerprint, size_bytes, mtime_ns, duration_s, avg_fps, num_frames, width, height, channels, models, "
    "indexed_at"
)


def video_values(r: VideoRecord) -> tuple[Any, ...]:
    """A record's `videos` row, in `VIDEO_COLUMNS` order (both stores write the same row)."""
    v = r.video
    return (str(v.path), r.fingerprint, r.size_bytes, r.mtime_ns, v.duration_s, v.avg_fps, v.num_frames,
            v.width, v.height, ",".join(r.channels), json.dumps(r.model, sort_keys=True), time.time())  # fmt: skip
