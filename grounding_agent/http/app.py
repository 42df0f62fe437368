"""The HTTP API in front of `Session`: ground one query, or hold a conversation about a video.

    GET    /v1/health
    POST   /v1/ground                   {"video", "query", "top_k"}      -> a Prediction
    POST   /v1/sessions                 {"video"}                        -> {"id", ...}       (201)
    GET    /v1/sessions/{id}                                             -> the turns so far
    DELETE /v1/sessions/{id}                                                                  (204)
    POST   /v1/sessions/{id}/messages   {"message", "stream"}           -> an Answer, or server-sent
           events when "stream" is true: reference, plan, step (each sub-event), moments, text, answer
    GET    /docs                        OpenAPI UI (schema at /openapi.json)

`video` is relative to the media root; anything resolving outside it is refused (403). Status codes:
404 unknown session or video, 422 malformed body or unreadable video, 502 model server failure, 503 too
many requests waiting. Model work runs in worker threads, at most `max_concurrency` at once; sessions
expire after `ttl_s` idle seconds and the least recently used go first beyond `max_sessions`.
"""

from __future__ import annotations

import asyncio
import secrets
import threading
import time
from collections import OrderedDict
from collections.abc import Callable
from pathlib import Path
from typing import Any

import anyio
from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse, Response, StreamingResponse
from fastapi.sse import format_sse_event
from pydantic import BaseModel, ConfigDict, Field

from grounding_agent.errors import (
    ConfigError,
    GroundingAgentError,
    ServerError,
    VideoError,
    VideoNotFoundError,
)
from grounding_agent.http.media import ForbiddenPathError, MediaRoot
from grounding_agent.io import dumps_json

SessionFactory = Callable[[Path], Any]  # video path -> grounding_agent.conversation.session.Session


# --- request / response bodies ---------------------------------------------------------------------


class _Body(BaseModel):
    model_config = ConfigDict(extra="forbid")


class GroundRequest(_Body):
    video: str = Field(min_length=1, max_length=4096, description="path relative to the media root")
    query: str = Field(min_length=1, max_length=2000, description="what to find")
    top_k: int = Field(1, ge=1, le=50, description="how many moments")


class SessionRequest(_Body):
    video: str = Field(min_length=1, max_length=4096, description="path relative to the media root")


class MessageRequest(_Body):
    message: str = Field(min_length=1, max_length=4000)
    stream: bool = Field(False, description="answer as server-sent events (text/event-stream)")


class MomentOut(BaseModel):
    start_s: float
    end_s: float
    score: float
    explanation: dict[str, Any] | None = None


class AnswerOut(BaseModel):
    text: str
    moments: list[MomentOut]
    plan: dict[str, Any] | None
    evidence: list[dict[str, Any]]
    text_source: str
    window_s: list[float] | None
    reference: dict[str, Any] | None


class SessionOut(BaseModel):
    id: str
    video: str
    duration_s: float
    ttl_s: float


class HealthOut(BaseModel):
    status: str
    grounder: str
    sessions: int
    in_flight: int


# --- sessions ----------------------------------------------------------------------------------------


class StrictJSONResponse(JSONResponse):
    """A JSON response whose NaN / infinities are null: Starlette's would fail the request on them."""

    def render(self, content: Any) -> bytes:
        return dumps_json(content, separators=(",", ":")).encode("utf-8")


class SessionStore:
    """Sessions by id: expire after `ttl_s` idle seconds; beyond `max_sessions` the least recently used go."""

    def __init__(self, max_sessions: int, ttl_s: float, clock: Callable[[], float] = time.monotonic):
        if max_sessions < 1 or ttl_s <= 0:
            raise ConfigError("max_sessions must be >= 1 and ttl_s > 0")
        self.max_sessions, self.ttl_s, self.clock = max_sessions, ttl_s, clock
        # id -> (session, video, last use)
        self._items: OrderedDict[str, tuple[Any, str, float]] = OrderedDict()
        self._lock = threading.Lock()

    def add(self, session: Any, video: str) -> str:
        sid = secrets.token_urlsafe(12)
        with self._lock:
            self._expire()
            self._items[sid] = (session, video, self.clock())
            while len(self._items) > self.max_sessions:
                self._items.popitem(last=False)
        return sid

    def get(self, sid: str) -> tuple[Any, str]:
        with self._lock:
            self._expire()
            if sid not in self._items:
                raise UnknownSessionError(
                    f"no session {sid!r} (never created, deleted or expired); POST /v1/sessions"
                )
            session, video, _ = self._items.pop(sid)
            self._items[sid] = (session, video, self.clock())
            return session, video

    def delete(self, sid: str) -> None:
        with self._lock:
            if self._items.pop(sid, None) is None:
                raise UnknownSessionError(f"no session {sid!r}")

    def __len__(self) -> int:
        with self._lock:
            self._expire()
            return len(self._items)

    def _expire(self) -> None:
        now = self.clock()
        while self._items:
            sid, (_, _, last) = next(iter(self._items.items()))
            if now - last <= self.ttl_s:
                break
            del self._items[sid]


class UnknownSessionError(GroundingAgentError):
    """No live session has this id."""


class BusyError(GroundingAgentError):
    """Too many requests are already waiting for the model."""


# Typed errors -> HTTP status (first match wins).
STATUS: tuple[tuple[type[Exception], int], ...] = (
    (ForbiddenPathError, 403),
    (UnknownSessionError, 404),
    (VideoNotFoundError, 404),
    (VideoError, 422),
    (ConfigError, 422),
    (BusyError, 503),
    (ServerError, 502),
    (GroundingAgentError, 400),
)


def status_of(exc: Exception) -> int:
    return next(code for kind, code in STATUS if isinstance(exc, kind))


# --- the app -----------------------------------------------------------------------------------------


def create_app(
    session_factory: SessionFactory,
    *,
    media_root: str | Path,
    grounder_name: str = "",
    max_sessions: int = 32,
    ttl_s: float = 1800.0,
    max_concurrency: int = 4,
    max_pending: int = 256,
    ground_cache: int = 8,
    clock: Callable[[], float] = time.monotonic,
) -> FastAPI:
    """The FastAPI app.

    Args:
        session_factory: video path -> a fresh `Session` (sharing one loaded grounder).
        media_root: the folder client paths are relative to.
        max_concurrency: model calls in worker threads at once; max_pending: requests allowed to wait
            (more get 503).
        ground_cache: sessions kept for /v1/ground, one per video, so its frames are decoded once.
        clock: time source of the session TTL (tests pass a fake one).
    """
    media = MediaRoot(media_root)
    store = SessionStore(max_sessions, ttl_s, clock)
    limiter = anyio.CapacityLimiter(max_concurrency)
    state = {"pending": 0}
    ground_sessions: OrderedDict[tuple[str, int, int], Any] = OrderedDict()
    ground_lock = threading.Lock()
    tasks: set[asyncio.Task] = set()

    app = FastAPI(
        title="grounding-agent",
        version="1",
        description="Find when things happen in a video, and talk about it. "
        "Paths are relative to the media root.",
    )

    async def run(fn: Callable[..., Any], *args: Any, **kwargs: Any) -> Any:
        """`fn` in a worker thread, at most `max_concurrency` at once, at most `max_pending` waiting."""
        if state["pending"] >= max_pending:
            raise BusyError(f"{state['pending']} requests are waiting for the model; retry later")
        state["pending"] += 1
        try:
            return await anyio.to_thread.run_sync(lambda: fn(*args, **kwargs), limiter=limiter)
        finally:
            state["pending"] -= 1

    def ground_session(path: Path) -> Any:
        stat = path.stat()
        key = (str(path), stat.st_mtime_ns, stat.st_size)
        with ground_lock:
            if key in ground_sessions:
                ground_sessions.move_to_end(key)
                return ground_sessions[key]
        session = session_factory(path)
        with ground_lock:
            session = ground_sessions.setdefault(key, session)
            while len(ground_sessions) > ground_cache:
                ground_sessions.popitem(last=False)
        return session

    @app.exception_handler(GroundingAgentError)
    async def typed_error(request: Request, exc: GroundingAgentError) -> JSONResponse:
        return JSONResponse({"detail": _one_line(exc)}, status_code=status_of(exc))

    @app.get("/v1/health", response_model=HealthOut)
    async def health() -> dict[str, Any]:
        sessions = len(store)
        return {"status": "ok", "grounder": grounder_name, "sessions": sessions, "in_flight": state["pending"]}

    @app.post("/v1/ground", summary="Ground one query in one video: a Prediction (schemas/prediction.schema.json)")
    async def ground(body: GroundRequest) -> StrictJSONResponse:
        path = media.resolve(body.video)

        def work() -> dict[str, Any]:
            prediction = ground_session(path).ground(body.query, top_k=body.top_k)
            prediction.vid = media.relative(path)
            return prediction.to_dict()

        # Already plain JSON values: skip FastAPI's re-encoding of the dict (about a millisecond per request).
        return StrictJSONResponse(await run(work))

    @app.post("/v1/sessions", response_model=SessionOut, status_code=201)
    async def create_session(body: SessionRequest) -> dict[str, Any]:
        path = media.resolve(body.video)
        session = await run(session_factory, path)
        sid = store.add(session, media.relative(path))
        duration_s = session.video.duration_s
        return {"id": sid, "video": media.relative(path), "duration_s": duration_s, "ttl_s": ttl_s}

    @app.get("/v1/sessions/{sid}")
    async def get_session(sid: str) -> dict[str, Any]:
        session, video = store.get(sid)
        return {"id": sid, "video": video, "turns": session.history()}

    @app.delete("/v1/sessions/{sid}", status_code=204)
    async def delete_session(sid: str) -> Response:
        store.delete(sid)
        return Response(status_code=204)

    @app.post(
        "/v1/sessions/{sid}/messages",
        response_model=AnswerOut,
        responses={200: {"content": {"text/event-stream": {}}, "description": "an Answer; events with stream=true"}},
    )
    async def message(sid: str, body: MessageRequest) -> Any:
        session, _ = store.get(sid)
        if not body.stream:
            return StrictJSONResponse((await run(session.ask, body.message)).to_dict())
        return StreamingResponse(_events(session, body.message), media_type="text/event-stream")

    async def _events(session: Any, text: str):
        """Server-sent events as the answer takes shape; the last is "answer" (or "error"), then "done"."""
        loop = asyncio.get_running_loop()
        queue: asyncio.Queue = asyncio.Queue()

        def on_event(kind: str, data: Any) -> None:
            loop.call_soon_threadsafe(queue.put_nowait, (kind, data))

        async def work() -> None:
            try:
                answer = await run(session.ask, text, on_event=on_event)
                queue.put_nowait(("answer", answer.to_dict()))
            except GroundingAgentError as exc:
                queue.put_nowait(("error", {"detail": _one_line(exc), "status": status_of(exc)}))
            finally:
                queue.put_nowait(("done", {}))

        # Kept referenced until done: a client that disconnects does not cut a turn in half.
        task = asyncio.create_task(work())
        tasks.add(task)
        task.add_done_callback(tasks.discard)
        while True:
            kind, data = await queue.get()
            yield format_sse_event(data_str=dumps_json(data), event=kind)
            if kind == "done":
                break

    app.state.store = store
    app.state.media = media
    return app


def _one_line(exc: BaseException) -> str:
    lines = str(exc).strip().splitlines()
    return lines[0][:500] if lines else type(exc).__name__
