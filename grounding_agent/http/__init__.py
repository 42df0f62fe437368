"""The HTTP service (FastAPI): `create_app(session_factory, media_root=...)`; served by `grounding-agent api`.

Owns the routes (`APIRouter` modules by resource: `health`, `ground`, `sessions`, with `stream` for a turn's
server-sent events), their bodies (`models`), what they share (`state`: sessions, limits, typed errors ->
status codes), which files a client may name (`media`), and what a body may be before it is parsed and
what a refusal may say (`guard`: size, keys, numbers, surrogates; 422s that never echo the input), and what
it logs (`access`: a start line and one access line per request, never a body).
May import the core modules (`errors`, `defaults`, `io`) and `utils`; it reaches the library only through
the `Session` the factory returns.
Only `cli` imports it.
"""

from grounding_agent.http.app import create_app

__all__ = ["create_app"]
