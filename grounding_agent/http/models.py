"""Request and response bodies of the HTTP API (pydantic): what the OpenAPI schema at /docs shows."""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ConfigDict, Field


class RequestBody(BaseModel):
    model_config = ConfigDict(extra="forbid")


# Lengths and top_k are bounded by the service's `ServiceLimits` (set by `grounding-agent api`), checked
# in the routes; the body's size and shape were bounded before parsing (`guard`).
class GroundRequest(RequestBody):
    video: str = Field(min_length=1, description="path relative to the media root")
    query: str = Field(min_length=1, description="what to find")
    top_k: int = Field(1, ge=1, description="how many moments")


class SessionRequest(RequestBody):
    video: str = Field(min_length=1, description="path relative to the media root")


class MessageRequest(RequestBody):
    message: str = Field(min_length=1)
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
