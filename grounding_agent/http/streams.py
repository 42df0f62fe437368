"""/v1/streams: start, list and stop live watches, and read one's events as server-sent events.

The watches come from a `live.registry.StreamRegistry` the caller sets as `app.state.streams` (None: these
routes answer 404). Only stream URLs are accepted: a client never names a file on this machine.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import anyio
from fastapi import APIRouter, HTTPException, Request
from fastapi.responses import StreamingResponse
from fastapi.sse import ServerSentEvent
from pydantic import BaseModel, Field

from grounding_agent.defaults import LIVE
from grounding_agent.http.stream import encode

router = APIRouter(tags=["streams"])

POLL_S = 0.2


class StreamIn(BaseModel):
    source: str = Field(max_length=2000)
    alerts: list[str] = Field(default_factory=list, max_length=32)
    fps: float = Field(default=LIVE.fps, gt=0, le=30)
    keep_s: float = Field(default=LIVE.keep_s, gt=0, le=86400)


def _streams(request: Request) -> Any:
    streams = getattr(request.app.state, "streams", None)  # Starlette's State: unset until the caller sets it
    if streams is None:
        raise HTTPException(404, "live streams are not enabled on this service")
    return streams


def _known(streams: Any, sid: str) -> None:
    if sid not in {s["id"] for s in streams.list()}:
        raise HTTPException(404, f"no watch {sid[:40]!r}; list them with GET /v1/streams")


@router.post("/v1/streams", status_code=201)
async def start(body: StreamIn, request: Request) -> dict[str, Any]:
    streams = _streams(request)
    sid = streams.start(body.source, body.alerts, fps=body.fps, keep_s=body.keep_s)
    return streams.describe(sid)


@router.get("/v1/streams")
async def list_streams(request: Request) -> list[dict[str, Any]]:
    return _streams(request).list()


@router.delete("/v1/streams/{sid}")
async def stop(sid: str, request: Request) -> dict[str, Any]:
    streams = _streams(request)
    _known(streams, sid)
    return await anyio.to_thread.run_sync(streams.stop, sid)


@router.get("/v1/streams/{sid}/events")
async def events(sid: str, request: Request) -> StreamingResponse:
    """Every kept event of the watch, then each new one as it comes, until the watch ends ("done")."""
    streams = _streams(request)
    _known(streams, sid)

    async def feed() -> AsyncIterator[bytes]:
        seen = 0
        while True:
            new, done = streams.events_since(sid, seen)
            for e in new:
                seen = e.seq
                yield encode(ServerSentEvent(event=e.kind, data=e.to_dict()))
            if done:
                yield encode(ServerSentEvent(event="done", data={}))
                return
            await anyio.sleep(POLL_S)

    return StreamingResponse(feed(), media_type="text/event-stream")
