"""Conversations about one video: create, read, delete, and send a message (a JSON answer, or events).

POST   /v1/sessions                 {"video"}              -> {"id", "video", "duration_s", "ttl_s"} (201)
GET    /v1/sessions/{id}                                   -> the turns so far
DELETE /v1/sessions/{id}                                                                       (204)
POST   /v1/sessions/{id}/messages   {"message", "stream"}  -> an Answer, or server-sent events (`stream`)
"""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Depends, Response
from fastapi.sse import EventSourceResponse

from grounding_agent.http.models import AnswerOut, MessageRequest, SessionOut, SessionRequest
from grounding_agent.http.state import Service, StrictJSONResponse, service
from grounding_agent.http.stream import turn_events

router = APIRouter(prefix="/v1/sessions", tags=["sessions"])


@router.post("", response_model=SessionOut, status_code=201)
async def create_session(body: SessionRequest, svc: Service = Depends(service)) -> dict[str, Any]:
    path = svc.media.resolve(body.video)
    session = await svc.run(svc.session_factory, path)
    video = svc.media.relative(path)
    sid = svc.sessions.add(session, video)
    return {"id": sid, "video": video, "duration_s": session.video.duration_s, "ttl_s": svc.sessions.ttl_s}


@router.get("/{sid}")
async def get_session(sid: str, svc: Service = Depends(service)) -> dict[str, Any]:
    session, video = svc.sessions.get(sid)
    return {"id": sid, "video": video, "turns": session.history()}


@router.delete("/{sid}", status_code=204)
async def delete_session(sid: str, svc: Service = Depends(service)) -> Response:
    svc.sessions.delete(sid)
    return Response(status_code=204)


@router.post(
    "/{sid}/messages",
    response_model=AnswerOut,
    responses={
        200: {"content": {"text/event-stream": {}}, "description": "an Answer; events with stream=true"}
    },
)
async def message(sid: str, body: MessageRequest, svc: Service = Depends(service)) -> Any:
    svc.check_text("message", body.message, svc.limits.max_message_chars)
    entry = svc.sessions.begin(sid)
    if body.stream:
        return EventSourceResponse(turn_events(svc, sid, entry, body.message))
    try:
        answer = await svc.run(entry[0].ask, body.message)
    finally:
        svc.sessions.end(sid, entry)  # the time to live counts from the end of the last turn
    return StrictJSONResponse(answer.to_dict())
