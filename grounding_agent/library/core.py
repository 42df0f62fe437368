"""`Library`: index a folder of videos once, search them all, ground inside the best hits, open a session.

lib = Library("~/rushes-lib", create=True, saliency="DIR", transcriber=WHISPER_DIR)
report = lib.index(["~/rushes"])                   # incremental; a kill -9 loses at most the video in hand
hits = lib.search('she says "the budget is final"', k=5)
answer = lib.ground("the dog jumps", grounder=g)   # retrieve-then-ground
session = lib.session(hits[0].video_id, grounder="uniform")
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable, Sequence
from pathlib import Path
from typing import Any

from grounding_agent.defaults import LIBRARY
from grounding_agent.errors import LibraryError, VideoError
from grounding_agent.highlights.clip import ClipSaliency
from grounding_agent.library.pipeline import Models, SpeechAhead, index_one, index_transcriber
from grounding_agent.library.records import (
    CHANNELS,
    Channel,
    IndexReport,
    IndexRow,
    LibraryAnswer,
    LibraryVideo,
    SearchHit,
)
from grounding_agent.library.scan import scan
from grounding_agent.library.store import Store
from grounding_agent.library.store_api import LibraryStore, is_server_url
from grounding_agent.media.asr import Transcriber
from grounding_agent.media.ocr import ScreenText
from grounding_agent.media.transcript import Transcript
from grounding_agent.utils.cache import file_fingerprint

Progress = Callable[[IndexRow], None]


class Library:
    """A store of videos, frame vectors, transcripts, on-screen text and shots: a folder (`store`, SQLite), or
    a PostgreSQL database a team shares (`pg_store`) when `path` is a `postgresql://` URL.

    Args:
        path: the library folder (default `LIBRARY.folder`, under the cache folder), or
            `postgresql://USER@HOST:PORT/DATABASE` (the password from the URL or libpq's PGPASSWORD/~/.pgpass).
        create: make it when missing (else a missing library is a `LibraryError`).
        saliency: a `ClipSaliency` or a CLIP/SigLIP folder (the visual channel; for search, default: the
            model the library was indexed with, when that folder still exists).
        transcriber: a `Transcriber` or a Whisper folder (the speech channel when indexing).
    """

    def __init__(
        self,
        path: str | Path | None = None,
        *,
        create: bool = False,
        saliency: ClipSaliency | str | Path | None = None,
        transcriber: Transcriber | str | Path | None = None,
    ):
        self.store = open_store(path if path is not None else LIBRARY.folder, create=create)
        # A folder library's folder (None for a database); `location` names either in messages.
        self.folder: Path | None = self.store.folder if isinstance(self.store, Store) else None
        self.location = self.store.location
        self._saliency = saliency
        self._transcriber = transcriber

    def close(self) -> None:
        self.store.close()

    def __enter__(self) -> Library:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # --- models ------------------------------------------------------------------------------------

    def saliency(self) -> ClipSaliency | None:
        """The visual model: the one given, else the one the library was indexed with (if it is here)."""
        if self._saliency is None:
            indexed = self.store.meta("visual_model")
            if indexed and Path(indexed).is_dir():
                self._saliency = indexed
        if isinstance(self._saliency, (str, Path)):
            self._saliency = ClipSaliency.from_pretrained(self._saliency)
        return self._saliency

    def models(self, channels: Sequence[Channel]) -> Models:
        transcriber = self._transcriber
        if isinstance(transcriber, (str, Path)) and "speech" in channels:
            transcriber = self._transcriber = index_transcriber(transcriber)
        models = Models(
            saliency=self.saliency() if "visual" in channels else None,
            transcriber=transcriber if isinstance(transcriber, Transcriber) else None,
        )
        models.check(tuple(channels))
        return models

    # --- indexing ----------------------------------------------------------------------------------

    def index(
        self,
        paths: Iterable[str | Path],
        *,
        channels: Sequence[Channel] = CHANNELS,
        on_progress: Progress | None = None,
        models: Models | None = None,
    ) -> IndexReport:
        """Index new and changed videos under `paths`; drop videos whose file is gone.

        Each video is written in one transaction, so a killed run loses only the video it was on; the next
        run picks up from there. A folder takes one writer at a time (`LibraryStoreError` for a second one);
        a database takes several at once (each video locks its own path).
        """
        channels = tuple(dict.fromkeys(channels))
        models = models or self.models(channels)
        models.check(channels)
        started, rows = time.perf_counter(), []
        paths = list(paths)
        with self.store.writer():
            known = {r["path"]: r for r in self.store.videos()}
            by_fingerprint = {r["fingerprint"]: r["path"] for r in known.values()}
            found = list(scan(paths))
            todo = [
                f.path.resolve() for f in found if not f.skip and not is_unchanged(f.path, known, channels)
            ]
            with SpeechAhead(models, todo if "speech" in channels else []) as speech:
                for item in found:
                    row = self._index_path(
                        item.path, item.skip, channels, models, known, by_fingerprint, speech
                    )
                    rows.append(row)
                    if on_progress is not None:
                        on_progress(row)
            return self.finish_index(rows, known, paths, channels, started, on_progress)

    def finish_index(self, rows, known, paths, channels, started, on_progress) -> IndexReport:
        """An index run's end (here and on Ray), under the writer lock: drop the videos whose file is gone
        under `paths`, bring the visual ANN index up to date (the first search then pays nothing); the
        report."""
        for row in self.drop_missing(known, paths):
            rows.append(row)
            if on_progress is not None:
                on_progress(row)
        if "visual" in channels:
            self.store.prepare_search()
        return IndexReport(tuple(rows), time.perf_counter() - started)

    def _index_path(self, path, skip, channels, models, known, by_fingerprint, speech) -> IndexRow:
        t0 = time.perf_counter()
        if skip:
            return IndexRow(str(path), "skipped", skip)
        real = str(path.resolve())
        try:
            if _unchanged(path, known, channels):
                return IndexRow(real, "unchanged")
            fingerprint = file_fingerprint(path)
            twin = by_fingerprint.get(fingerprint)
            if twin and twin != real and Path(twin).is_file():
                return IndexRow(real, "skipped", f"duplicate of {twin}")
            record = index_one(path, channels, models, speech=speech.take(path))
        except VideoError as exc:
            return IndexRow(real, "skipped", str(exc).removeprefix(f"{path}: "))
        except OSError as exc:
            return IndexRow(real, "skipped", f"unreadable ({exc.strerror or exc})")
        self.store.write(record)
        by_fingerprint[record.fingerprint] = real
        known[real] = {"fingerprint": record.fingerprint, "seen": True}
        return IndexRow(real, "indexed", seconds=round(time.perf_counter() - t0, 3))

    def drop_missing(self, known: dict[str, dict[str, Any]], roots: Iterable[str | Path]) -> list[IndexRow]:
        """Delete the videos of `known` under `roots` whose file is gone. Only under the paths being indexed:
        a machine of a team that lacks another's folder (or a disk not mounted today) drops nothing of it."""
        under = [Path(r).expanduser().resolve() for r in roots]
        rows = []
        for path, row in known.items():
            inside = any(Path(path) == r or r in Path(path).parents for r in under)
            if "id" in row and inside and not Path(path).is_file():
                self.store.delete(row["id"])
                rows.append(IndexRow(path, "removed", "file no longer exists"))
        return rows

    # --- reading -----------------------------------------------------------------------------------

    def videos(self) -> list[LibraryVideo]:
        return [_video(r) for r in self.store.videos()]

    def video(self, video_id_or_path: int | str | Path) -> LibraryVideo:
        """One video by its id or path. Raises: LibraryError: not in the library."""
        for v in self.videos():
            if v.video_id == video_id_or_path or (
                not isinstance(video_id_or_path, int) and str(v.path) == str(Path(video_id_or_path).resolve())
            ):
                return v
        raise LibraryError(f"{video_id_or_path!r} is not in library {self.location}; index it first")

    def transcript(self, video_id: int) -> Transcript | None:
        doc = self.store.document(video_id, "speech")
        return Transcript.from_dict(doc, from_cache=True) if doc else None

    def screen_text(self, video_id: int) -> ScreenText | None:
        doc = self.store.document(video_id, "ocr")
        return ScreenText.from_dict(doc, from_cache=True) if doc else None

    def search(
        self, query: str, *, k: int = LIBRARY.search_k, channels: Sequence[str] | None = None
    ) -> list[SearchHit]:
        """Hybrid search (see `library.search`): the `k` best spans across videos, with per-channel evidence.

        Raises:
            ConfigError: the query is empty or reads as nothing; LibraryError: an unknown channel.
        """
        from grounding_agent.agent.planner import RulePlanner
        from grounding_agent.library.search import search

        if k < 1:
            raise LibraryError(f"k must be >= 1, got {k}")
        plan = RulePlanner().plan(query)
        wanted = tuple(channels or CHANNELS)
        saliency = self.saliency() if "visual" in wanted else None
        encode = (lambda text: saliency.embed_texts([text])[0]) if saliency is not None else None
        return search(self.store, plan, k=k, channels=wanted, encode_text=encode)

    def ground(
        self,
        query: str,
        *,
        grounder: Any,
        k_videos: int = LIBRARY.ground_videos,
        call_budget: int = LIBRARY.ground_calls,
        pad_s: float = LIBRARY.ground_pad_s,
    ) -> LibraryAnswer:
        """Retrieve-then-ground: search, then let `grounder` refine inside the best hits' windows."""
        from grounding_agent.library.ground import retrieve_then_ground

        return retrieve_then_ground(
            lambda q, k: self.search(q, k=k),
            query,
            grounder,
            k_videos=k_videos,
            call_budget=call_budget,
            pad_s=pad_s,
        )

    def session(self, video_id_or_path: int | str | Path, **session_kwargs: Any) -> Any:
        """A `conversation.Session` on one library video, its transcript taken from the library."""
        from grounding_agent.conversation.session import Session

        video = self.video(video_id_or_path)
        session_kwargs.setdefault("grounder", "uniform")
        if session_kwargs.get("transcript") is None:
            session_kwargs["transcript"] = self.transcript(video.video_id)
        return Session(video.path, **session_kwargs)


def open_store(location: str | Path, *, create: bool = False) -> LibraryStore:
    """The store `location` names: a `postgresql://` URL opens a `PgStore`, anything else a folder's `Store`."""
    if is_server_url(location):
        from grounding_agent.library.pg_store import PgStore

        return PgStore.open(str(location), create=create)
    return Store.open(Path(location).expanduser(), create=create)


def _unchanged(path: Path, known: dict[str, dict[str, Any]], channels: tuple[Channel, ...]) -> bool:
    """The file's row matches its size and mtime and holds every wanted channel (not even hashed).

    Raises:
        OSError: the file cannot be read (the caller reports it as skipped).
    """
    old = known.get(str(path.resolve()))
    if not old:
        return False
    st = path.stat()
    same_file = (old["size_bytes"], old["mtime_ns"]) == (st.st_size, st.st_mtime_ns)
    return same_file and set(channels) <= set(old["channels"].split(","))


def is_unchanged(path: Path, known: dict[str, dict[str, Any]], channels: tuple[Channel, ...]) -> bool:
    """`_unchanged`, False for a file that cannot be read (the indexer reports why); `ray_index` uses it too."""
    try:
        return _unchanged(path, known, channels)
    except OSError:
        return False


def _video(row: dict[str, Any]) -> LibraryVideo:
    channels = tuple(c for c in row["channels"].split(",") if c)
    return LibraryVideo(row["id"], Path(row["path"]), row["fingerprint"], row["duration_s"], channels)
