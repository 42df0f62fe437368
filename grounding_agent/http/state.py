"""What every route shares: the sessions, the /v1/ground cache, the worker-thread limiter, typed errors.

Routes reach it through the `service` dependency (`app.state.service`); nothing here knows a route.
"""

from __future__ import annotations

import secrets
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import anyio
from fastapi import Request
from fastapi.responses import JSONResponse

from grounding_agent.defaults import HTTP_SERVICE, ServiceLimits
from grounding_agent.errors import (
    ConfigError,
    GroundingAgentError,
    ServerError,
    VideoError,
    VideoNotFoundError,
)
from grounding_agent.http.media import ForbiddenPathError, MediaRoot, shown
from grounding_agent.io import dumps_json
from grounding_agent.utils.cache import BoundedCache

SessionFactory = Callable[[Path], Any]  # video path -> grounding_agent.conversation.session.Session


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


def one_line(exc: BaseException) -> str:
    """The first line of the error (at most 500 characters): what a client is told."""
    lines = str(exc).strip().splitlines()
    return lines[0][:500] if lines else type(exc).__name__


class StrictJSONResponse(JSONResponse):
    """A JSON response whose NaN / infinities are null: Starlette's would fail the request on them."""

    def render(self, content: Any) -> bytes:
        return dumps_json(content, separators=(",", ":")).encode("utf-8")


class SessionStore:
    """Sessions by id, in a `BoundedCache`: the least recently used go beyond `max_sessions`, and a session
    expires `ttl_s` seconds after its last use: a look-up, or the END of a turn (`begin` ... `end`), so a
    turn longer than `ttl_s` does not lose its session under it."""

    def __init__(self, max_sessions: int, ttl_s: float, clock: Callable[[], float]):
        if max_sessions < 1 or ttl_s <= 0:
            raise ConfigError("max_sessions must be >= 1 and ttl_s > 0")
        self.ttl_s = ttl_s
        self._items: BoundedCache[str, tuple[Any, str]] = BoundedCache(max_sessions, ttl_s=ttl_s, timer=clock)
        self._turns: dict[str, int] = {}  # turns running per session (all on the event loop: no lock)

    def add(self, session: Any, video: str) -> str:
        sid = secrets.token_urlsafe(12)
        self._items.set(sid, (session, video))
        return sid

    def get(self, sid: str) -> tuple[Any, str]:
        found = self._items.get(sid)
        if found is None:
            raise UnknownSessionError(
                f"no session {shown(sid, 40)} (never created, deleted or expired); POST /v1/sessions"
            )
        self._items.touch(sid)
        return found

    def begin(self, sid: str) -> tuple[Any, str]:
        """The session, for a turn that `end` closes."""
        found = self.get(sid)
        self._turns[sid] = self._turns.get(sid, 0) + 1
        return found

    def end(self, sid: str, entry: tuple[Any, str]) -> None:
        """The turn is over: the time to live starts now, even if the session timed out during the turn
        (unless it was deleted meanwhile)."""
        running = self._turns.pop(sid, 0)
        if running == 0:
            return  # deleted during the turn
        if running > 1:
            self._turns[sid] = running - 1
        self._items.set(sid, entry)

    def delete(self, sid: str) -> None:
        self._turns.pop(sid, None)
        if self._items.pop(sid) is None:
            raise UnknownSessionError(f"no session {shown(sid, 40)}")

    def __len__(self) -> int:
        return len(self._items)


@dataclass
class Service:
    """The state behind the routes. `run` puts model work in worker threads, bounded by `limits`."""

    session_factory: SessionFactory
    media: MediaRoot
    sessions: SessionStore
    limits: ServiceLimits = HTTP_SERVICE
    grounder_name: str = ""
    pending: int = 0
    limiter: anyio.CapacityLimiter = field(init=False)
    ground_sessions: BoundedCache[tuple[str, int, int], Any] = field(init=False)

    def __post_init__(self) -> None:
        self.limiter = anyio.CapacityLimiter(self.limits.max_concurrency)
        self.ground_sessions = BoundedCache(self.limits.ground_cache)

    async def run(self, fn: Callable[..., Any], *args: Any, **kwargs: Any) -> Any:
        """`fn` in a worker thread, at most `max_concurrency` at once, at most `max_pending` waiting."""
        if self.pending >= self.limits.max_pending:
            raise BusyError(f"{self.pending} requests are waiting for the model; retry later")
        self.pending += 1
        try:
            return await anyio.to_thread.run_sync(lambda: fn(*args, **kwargs), limiter=self.limiter)
        finally:
            self.pending -= 1

    def detail(self, exc: BaseException) -> str:
        """What a client is told: the error's first line, naming paths relative to the media root."""
        return self.media.redact(one_line(exc))

    def check_text(self, name: str, text: str, most: int) -> str:
        """`text` if at most `most` characters, else a 422 that does not echo it."""
        if len(text) > most:
            raise ConfigError(f"{name} is {len(text):,} characters; the most is {most:,}")
        return text

    def check_top_k(self, top_k: int) -> int:
        if not 1 <= top_k <= self.limits.max_top_k:
            raise ConfigError(f"top_k must be 1 to {self.limits.max_top_k}")
        return top_k

    def ground_session(self, path: Path) -> Any:
        """The /v1/ground session of this video (one per file version, so its frames are decoded once)."""
        stat = path.stat()
        key = (str(path), stat.st_mtime_ns, stat.st_size)
        session = self.ground_sessions.get(key)
        if session is None:
            session = self.session_factory(path)
            self.ground_sessions.set(key, session)
        return session


def service(request: Request) -> Service:
    """FastAPI dependency: the app's `Service`."""
    return request.app.state.service
