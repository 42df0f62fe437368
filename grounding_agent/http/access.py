"""What a running service says through `logging`: one start line and one access line per request.

    app.add_middleware(AccessLog)                     # "GET /v1/health 200 1.3 ms" on grounding_agent.access
    log_start("api", "http://127.0.0.1:8080", media_root="videos/", backend="vllm", model="Qwen/...")

The access line holds the method, the path (never the query string), the status and the duration; never a
request or response body, nor a header. Both loggers are plain `logging` loggers (`grounding_agent.access`,
`grounding_agent.service`), so an embedding application routes them like any other; `grounding-agent api`
and `ui` send them to stderr at `--log-level`.
"""

from __future__ import annotations

import logging
import time
from typing import Any

from starlette.types import ASGIApp, Message, Receive, Scope, Send

ACCESS = logging.getLogger("grounding_agent.access")
SERVICE = logging.getLogger("grounding_agent.service")
LEVELS = ("debug", "info", "warning", "error")


class AccessLog:
    """ASGI middleware: one INFO line per HTTP request once its response has started (or failed)."""

    def __init__(self, app: ASGIApp, logger: logging.Logger = ACCESS):
        self.app = app
        self.logger = logger

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = time.perf_counter()
        status: list[int] = []

        async def send_status(message: Message) -> None:
            if message["type"] == "http.response.start":
                status.append(int(message["status"]))
            await send(message)

        try:
            await self.app(scope, receive, send_status)
        finally:
            ms = (time.perf_counter() - started) * 1000.0
            # The path as a string with control characters escaped: a log line is one line.
            path = scope.get("path", "").encode("unicode_escape").decode("ascii")
            code = status[0] if status else 500
            self.logger.info("%s %s %d %.1f ms", scope.get("method", "?"), path, code, ms)


def log_start(what: str, url: str, **details: Any) -> None:
    """The service's start line: what, where, and what it serves with (media root, backend, model...)."""
    shown = ", ".join(f"{k.replace('_', ' ')} {v}" for k, v in details.items() if v not in (None, ""))
    SERVICE.info("grounding-agent %s listening on %s (%s)", what, url, shown)


def configure(level: str) -> None:
    """Send the service and access loggers to stderr at `level` (the CLI's root handler, if any, is used)."""
    if not logging.getLogger().handlers:
        logging.basicConfig(format="%(levelname)s %(name)s: %(message)s")
    for logger in (SERVICE, ACCESS):
        logger.setLevel(level.upper())
