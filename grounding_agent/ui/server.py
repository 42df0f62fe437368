"""Serving the web UI: the Gradio app mounted in a FastAPI app that checks the Host header and guards
Gradio's file route, run by uvicorn.

    serve(demo, config, host="127.0.0.1", port=7860, allowed_hosts=["127.0.0.1", "localhost"])

Gradio's own `launch` has no place for middleware, so `grounding-agent ui` mounts the Blocks
(`gradio.mount_gradio_app`, with the same `launch_options`) behind:
- Starlette's `TrustedHostMiddleware`: a Host other than the allowed names is 400 (DNS rebinding);
- `RegularFilesOnly`: a `/file=` path that is not a regular file (a FIFO would block the worker reading it
  forever, a device never ends) or that the file system refuses (a name longer than it allows) is a 404
  with one short line, before Gradio opens it.
"""

from __future__ import annotations

import os
import stat
from collections.abc import Sequence
from typing import Any

from starlette.middleware.trustedhost import TrustedHostMiddleware
from starlette.responses import JSONResponse
from starlette.types import ASGIApp, Receive, Scope, Send

from grounding_agent.defaults import UI
from grounding_agent.http.access import AccessLog
from grounding_agent.ui.app import UIConfig, launch_options

FILE_ROUTE = "/file="


class RegularFilesOnly:
    """ASGI middleware: Gradio's file route serves regular files only; anything else is a short 404."""

    def __init__(self, app: ASGIApp, max_path_chars: int = UI.max_path_chars):
        self.app = app
        self.max_path_chars = max_path_chars

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        refusal = self.refusal(scope) if scope["type"] == "http" else None
        if refusal is None:
            await self.app(scope, receive, send)
            return
        await JSONResponse({"detail": refusal}, status_code=404)(scope, receive, send)

    def refusal(self, scope: Scope) -> str | None:
        """Why this request's file may not be served, or None (not the file route, or a regular file)."""
        path = scope.get("path", "")
        if FILE_ROUTE not in path:
            return None
        name = path.split(FILE_ROUTE, 1)[1]
        if name.startswith(("http://", "https://")):
            return None  # Gradio's own (public-address-checked) proxy
        if len(name) > self.max_path_chars or "\x00" in name:
            return f"the file path is longer than {self.max_path_chars} characters or not a path"
        try:
            mode = os.stat(os.path.abspath(name)).st_mode
        except FileNotFoundError:
            return None  # Gradio answers (403: not one of the allowed files)
        except (OSError, ValueError):  # ENAMETOOLONG, ELOOP, EACCES, a surrogate the OS refuses
            return "no such file"
        if not stat.S_ISREG(mode):
            return "not a regular file (a folder, pipe or device)"
        return None


def asgi_app(demo: Any, config: UIConfig, allowed_hosts: Sequence[str]) -> Any:
    """The FastAPI app serving `demo` at "/" behind the Host check and the file-route guard."""
    import gradio as gr
    from fastapi import FastAPI

    app = FastAPI(docs_url=None, redoc_url=None, openapi_url=None)
    app = gr.mount_gradio_app(app, demo, path="", show_error=True, **launch_options(config))
    app.add_middleware(RegularFilesOnly, max_path_chars=config.max_path_chars)
    app.add_middleware(TrustedHostMiddleware, allowed_hosts=list(allowed_hosts))
    app.add_middleware(AccessLog)  # outermost: method, path, status, duration of every request, never a body
    return app


def serve(demo: Any, config: UIConfig, host: str, port: int, allowed_hosts: Sequence[str]) -> None:
    """Serve until interrupted."""
    import uvicorn

    app = asgi_app(demo, config, allowed_hosts)
    uvicorn.run(app, host=host, port=port, log_level="warning", access_log=False)  # AccessLog logs them
