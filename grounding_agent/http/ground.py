"""POST /v1/ground: one query in one video, answered as a Prediction (schemas/prediction.schema.json)."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Depends

from grounding_agent.http.models import GroundRequest
from grounding_agent.http.state import Service, StrictJSONResponse, service

router = APIRouter(tags=["ground"])


@router.post(
    "/v1/ground", summary="Ground one query in one video: a Prediction (schemas/prediction.schema.json)"
)
async def ground(body: GroundRequest, svc: Service = Depends(service)) -> StrictJSONResponse:
    svc.check_text("query", body.query, svc.limits.max_query_chars)
    svc.check_top_k(body.top_k)
    path = svc.media.resolve(body.video)

    def work() -> dict[str, Any]:
        prediction = svc.ground_session(path).ground(body.query, top_k=body.top_k)
        prediction.vid = svc.media.relative(path)
        return prediction.to_dict()

    # Already plain JSON values: skip FastAPI's re-encoding of the dict (about a millisecond per request).
    return StrictJSONResponse(await svc.run(work))
