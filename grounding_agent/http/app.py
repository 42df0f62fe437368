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
expire `ttl_s` seconds after their last turn and the least recently used go first beyond `max_sessions`.
Routes live by resource in `health`, `ground`, `sessions` (+ `stream`); what they share in `state`.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path

from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse

from grounding_agent.defaults import HTTP_SERVICE, ServiceLimits
from grounding_agent.errors import GroundingAgentError
from grounding_agent.http import ground, health, sessions
from grounding_agent.http.media import MediaRoot
from grounding_agent.http.state import Service, SessionFactory, SessionStore, one_line, status_of


def create_app(
    session_factory: SessionFactory,
    *,
    media_root: str | Path,
    grounder_name: str = "",
    max_sessions: int = HTTP_SERVICE.max_sessions,
    ttl_s: float = HTTP_SERVICE.session_ttl_s,
    max_concurrency: int = HTTP_SERVICE.max_concurrency,
    max_pending: int = HTTP_SERVICE.max_pending,
    ground_cache: int = HTTP_SERVICE.ground_cache,
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
    limits = ServiceLimits(max_sessions, ttl_s, max_concurrency, max_pending, ground_cache)
    app = FastAPI(
        title="grounding-agent",
        version="1",
        description="Find when things happen in a video, and talk about it. Paths are relative to the media root.",
    )
    app.state.service = Service(
        session_factory,
        MediaRoot(media_root),
        SessionStore(max_sessions, ttl_s, clock),
        limits,
        grounder_name,
    )
    for module in (health, ground, sessions):
        app.include_router(module.router)
    app.add_exception_handler(GroundingAgentError, typed_error)
    return app


async def typed_error(request: Request, exc: Exception) -> JSONResponse:
    """A library error as its HTTP status and a one-line detail."""
    return JSONResponse({"detail": one_line(exc)}, status_code=status_of(exc))
