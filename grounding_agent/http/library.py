"""Search a video library, and open a conversation about one of its videos (`grounding-agent api --library`).

POST   /v1/search              {"query", "k", "channels"}  -> {"hits": [{video_id, video, start_s, end_s,
                                                               score, evidence}], "videos": N}
POST   /v1/library/sessions    {"video_id"}                -> {"id", "video", "duration_s", "ttl_s"} (201);
                                                              then /v1/sessions/{id}/messages as usual

The library (a `grounding_agent.library.Library`) is `app.state.library`; without one these answer 404.
Videos are named by their path relative to the media root when they lie under it, else by file name:
the server's own folders are never shown.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from fastapi import APIRouter, Depends, HTTPException, Request
from pydantic import Field

from grounding_agent.defaults import LIBRARY
from grounding_agent.errors import GroundingAgentError, LibraryError
from grounding_agent.http.models import RequestBody, SessionOut
from grounding_agent.http.state import Service, StrictJSONResponse, service

router = APIRouter(tags=["library"])


class SearchRequest(RequestBody):
    query: str = Field(min_length=1, description="what is seen, said or written")
    k: int = Field(LIBRARY.search_k, ge=1, description="how many hits")
    channels: list[str] | None = Field(None, description='any of "visual", "speech", "ocr" (default: all)')


class LibrarySessionRequest(RequestBody):
    video_id: int = Field(ge=0, description="a video's id, as /v1/search returns it")


def library(request: Request) -> Any:
    found = getattr(request.app.state, "library", None)
    if found is None:
        raise HTTPException(
            404, "this service has no library: start it with `grounding-agent api --library DIR`"
        )
    return found


def shown_video(svc: Service, path: Path) -> str:
    """The path relative to the media root, else the file name (the server's folders stay private)."""
    try:
        return svc.media.relative(Path(path))
    except (ValueError, GroundingAgentError):
        return Path(path).name


@router.post("/v1/search")
async def search(body: SearchRequest, svc: Service = Depends(service), lib: Any = Depends(library)) -> Any:
    svc.check_text("query", body.query, svc.limits.max_query_chars)
    svc.check_top_k(body.k)
    hits = await svc.run(lib.search, body.query, k=body.k, channels=body.channels)
    out = [{**h.to_dict(), "path": None, "video": shown_video(svc, h.path)} for h in hits]
    for row in out:
        row.pop("path")
    return StrictJSONResponse({"query": body.query, "hits": out, "videos": len({h.video_id for h in hits})})


@router.post("/v1/library/sessions", response_model=SessionOut, status_code=201)
async def create_library_session(
    body: LibrarySessionRequest, svc: Service = Depends(service), lib: Any = Depends(library)
) -> dict[str, Any]:
    try:
        video = lib.video(body.video_id)
    except LibraryError:
        raise HTTPException(
            404, f"no video {body.video_id} in the library; ids come from /v1/search"
        ) from None
    session = await svc.run(svc.session_factory, video.path)
    name = shown_video(svc, video.path)
    sid = svc.sessions.add(session, name)
    return {"id": sid, "video": name, "duration_s": session.video.duration_s, "ttl_s": svc.sessions.ttl_s}
