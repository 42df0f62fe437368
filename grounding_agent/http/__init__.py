"""The HTTP service (FastAPI): `create_app(session_factory, media_root=...)`; served by `grounding-agent api`."""

from grounding_agent.http.app import create_app

__all__ = ["create_app"]
