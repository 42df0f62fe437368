"""GET /v1/health: is the service up, which grounder it serves, how busy it is."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Depends

from grounding_agent.http.models import HealthOut
from grounding_agent.http.state import Service, service

router = APIRouter(tags=["health"])


@router.get("/v1/health", response_model=HealthOut)
async def health(svc: Service = Depends(service)) -> dict[str, Any]:
    return {
        "status": "ok",
        "grounder": svc.grounder_name,
        "sessions": len(svc.sessions),
        "in_flight": svc.pending,
    }
