"""A keyshot summary of a session's video, as an edit plan (`Session.summarize`).

POST   /v1/sessions/{id}/summarize  {"seconds"} or {"ratio"} (neither: 15 %)  -> the EditPlan's JSON
                                                               (schemas/edit_plan.schema.json)

A bad budget (0, negative, over 100 %, not shorter than the video) is a 422 with the one-line reason.
"""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Depends
from pydantic import Field

from grounding_agent.http.models import RequestBody
from grounding_agent.http.state import Service, StrictJSONResponse, service

router = APIRouter(prefix="/v1/sessions", tags=["summaries"])


class SummaryRequest(RequestBody):
    seconds: float | None = Field(None, description="the summary's length in seconds")
    ratio: float | None = Field(None, description="or its length as a share of the video, e.g. 0.15")


@router.post("/{sid}/summarize")
async def summarize(sid: str, body: SummaryRequest, svc: Service = Depends(service)) -> Any:
    entry = svc.sessions.begin(sid)
    try:
        plan = await svc.run(entry[0].summarize, seconds=body.seconds, ratio=body.ratio)
    finally:
        svc.sessions.end(sid, entry)
    return StrictJSONResponse({**plan.to_dict(), "video": entry[1]})  # never the server's own folders
