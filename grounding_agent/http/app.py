"""The HTTP API in front of `Session`: ground one query, or hold a conversation about a video.

    GET    /v1/health
    POST   /v1/ground                   {"video", "query", "top_k"}      -> a Prediction
    POST   /v1/sessions                 {"video"}                        -> {"id", ...}       (201)
    GET    /v1/sessions/{id}                                             -> the turns so far
    DELETE /v1/sessions/{id}                                                                  (204)
    POST   /v1/sessions/{id}/messages   {"message", "stream"}           -> an Answer, or server-sent
           events when "stream" is true: reference, plan, step (each sub-event), moments, text, answer
    POST   /v1/sessions/{id}/summarize  {"seconds"} or {"ratio"}         -> a summary's EditPlan
    POST   /v1/search                   {"query", "k", "channels"}      -> library hits (`library`)
    POST   /v1/library/sessions         {"video_id"}                     -> a session on a library video
    POST / GET /v1/streams, DELETE /v1/streams/{id}, GET /v1/streams/{id}/events (SSE): live watches (`streams`)
    GET    /docs                        OpenAPI UI (schema at /openapi.json)

`video` is relative to the media root; anything resolving outside it is refused (403). Status codes:
400 a Host header not in `allowed_hosts` (DNS rebinding), 404 unknown session or video, 413 a body over
`max_body_bytes`, 422 malformed body (details say where and what kind, never echo the input) or unreadable
video, 502 model server failure, 503 too many requests waiting. Model work runs in worker threads, at most `max_concurrency` at once; sessions
expire `ttl_s` seconds after their last turn and the least recently used go first beyond `max_sessions`.
Routes live by resource in `health`, `ground`, `sessions` (+ `stream`); what they share in `state`.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import replace
from pathlib import Path

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.middleware.trustedhost import TrustedHostMiddleware

from grounding_agent.defaults import HTTP_SERVICE, LOCAL_NAMES, ServiceLimits
from grounding_agent.errors import GroundingAgentError
from grounding_agent.http import ground, health, sessions
from grounding_agent.http import library as library_routes
from grounding_agent.http import streams as stream_routes
from grounding_agent.http import summaries as summary_routes
from grounding_agent.http.access import AccessLog
from grounding_agent.http.guard import BodyGuard, validation_error
from grounding_agent.http.media import MediaRoot
from grounding_agent.http.state import Service, SessionFactory, SessionStore, status_of


def create_app(
    session_factory: SessionFactory,
    *,
    media_root: str | Path,
    grounder_name: str = "",
    max_sessions: int | None = None,
    ttl_s: float | None = None,
    max_concurrency: int | None = None,
    max_pending: int | None = None,
    ground_cache: int | None = None,
    limits: ServiceLimits = HTTP_SERVICE,
    allowed_hosts: Sequence[str] = LOCAL_NAMES,
    clock: Callable[[], float] = time.monotonic,
) -> FastAPI:
    """The FastAPI app.

    Args:
        session_factory: video path -> a fresh `Session` (sharing one loaded grounder).
        media_root: the folder client paths are relative to.
        max_concurrency: model calls in worker threads at once; max_pending: requests allowed to wait
            (more get 503).
        ground_cache: sessions kept for /v1/ground, one per video, so its frames are decoded once.
        limits: every bound (the five above override its fields): body size, field lengths, top_k, ...
        allowed_hosts: Host header values served (a port is ignored; "*" serves any): others get 400, so
            a DNS name rebound to this machine cannot reach it. `grounding-agent api` passes its bind
            address too. Starlette's TestClient sends "testserver".
        clock: time source of the session TTL (tests pass a fake one).
    """
    given = {"max_sessions": max_sessions, "session_ttl_s": ttl_s, "max_concurrency": max_concurrency,
             "max_pending": max_pending, "ground_cache": ground_cache}  # fmt: skip
    limits = replace(limits, **{name: value for name, value in given.items() if value is not None})
    app = FastAPI(
        title="grounding-agent",
        version="1",
        description="Find when things happen in a video, and talk about it. Paths are relative to the media root.",
    )
    app.state.service = Service(
        session_factory,
        MediaRoot(media_root, limits.max_path_chars),
        SessionStore(limits.max_sessions, limits.session_ttl_s, clock),
        limits,
        grounder_name,
    )
    # library_routes answer 404 until `app.state.library` is set (`grounding-agent api --library DIR`).
    for module in (health, ground, sessions, library_routes, summary_routes):
        app.include_router(module.router)
    # /v1/streams answers 404 until `app.state.streams` is set (a `live.registry.StreamRegistry`).
    app.include_router(stream_routes.router)
    app.add_exception_handler(GroundingAgentError, typed_error)
    app.add_exception_handler(RequestValidationError, validation_error)
    # Outermost first: a foreign Host is refused before a byte of its body is read.
    app.add_middleware(BodyGuard, limits=limits)
    app.add_middleware(TrustedHostMiddleware, allowed_hosts=list(allowed_hosts))
    app.add_middleware(AccessLog)  # outermost: refused requests are logged too (method, path, status, ms)
    return app


async def typed_error(request: Request, exc: Exception) -> JSONResponse:
    """A library error as its HTTP status and a one-line detail (paths relative to the media root)."""
    return JSONResponse({"detail": request.app.state.service.detail(exc)}, status_code=status_of(exc))
