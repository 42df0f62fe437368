"""What a request body may be, checked before FastAPI parses it, and what a refusal may say.

`BodyGuard` (ASGI middleware) reads the body itself, at most `max_body_bytes` (from the Content-Length,
and again while a chunked body streams in: 413), and refuses JSON no endpoint could want before pydantic
sees it (422): an object with more than `max_json_keys` keys, a number longer than `max_number_chars`,
NaN / Infinity, a lone surrogate, nesting deep enough to exhaust the parser. The body it read is then
replayed to the app. `validation_error` replaces FastAPI's 422, which echoes the input (a 10 MB field gave
a 10 MB reply, a NaN or a surrogate in it a 500), with one line naming where and what kind.
"""

from __future__ import annotations

import json
from typing import Any

from fastapi import Request
from fastapi.exceptions import RequestValidationError
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from grounding_agent.defaults import ServiceLimits
from grounding_agent.http.state import StrictJSONResponse

DRAIN_FACTOR = 4  # after a 413, read at most this many times the limit more, so the reply is not lost


class BodyError(ValueError):
    """A body refused before parsing: its status and one line."""

    def __init__(self, status: int, detail: str):
        super().__init__(detail)
        self.status = status
        self.detail = detail


class BodyGuard:
    """ASGI middleware: bounded body read and a bounded JSON check, then the app sees the body as sent."""

    def __init__(self, app: ASGIApp, limits: ServiceLimits):
        self.app = app
        self.limits = limits

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        try:
            declared_length(scope, self.limits.max_body_bytes)
            body = await read_body(receive, self.limits.max_body_bytes)
            if body and is_json(scope):
                check_json(body, self.limits)
        except BodyError as exc:
            await StrictJSONResponse({"detail": exc.detail}, status_code=exc.status)(scope, receive, send)
            return
        await self.app(scope, replay(body, receive), send)


def declared_length(scope: Scope, limit: int) -> None:
    """Refuse a Content-Length over `limit` before reading a byte of the body."""
    for name, value in scope.get("headers", ()):
        if name == b"content-length":
            if not value.isdigit() or len(value) > 18:
                raise BodyError(400, "Content-Length must be a whole number of bytes")
            if int(value) > limit:
                raise BodyError(413, f"the body is {int(value):,} bytes; the most is {limit:,}")


async def read_body(receive: Receive, limit: int) -> bytes:
    """The whole body, or a 413 as soon as more than `limit` bytes arrived (chunked bodies included)."""
    chunks, size = [], 0
    while True:
        message = await receive()
        if message["type"] == "http.disconnect":
            break
        chunk = message.get("body", b"")
        size += len(chunk)
        if size > limit:
            await drain(receive, limit * DRAIN_FACTOR)
            raise BodyError(413, f"the body is over {limit:,} bytes; the most is {limit:,}")
        chunks.append(chunk)
        if not message.get("more_body", False):
            break
    return b"".join(chunks)


async def drain(receive: Receive, most: int) -> None:
    """Read (and drop) a little more of a refused body: closing on unread bytes may reset the connection
    before the client reads the 413. Bounded: what is still coming after `most` bytes is left unread."""
    seen = 0
    while seen <= most:
        message = await receive()
        seen += len(message.get("body", b""))
        if message["type"] != "http.request" or not message.get("more_body", False):
            return


def replay(body: bytes, receive: Receive) -> Receive:
    """A `receive` that gives the app the body already read, then passes on (disconnects, for streams)."""
    sent = False

    async def again() -> Message:
        nonlocal sent
        if not sent:
            sent = True
            return {"type": "http.request", "body": body, "more_body": False}
        return await receive()

    return again


def is_json(scope: Scope) -> bool:
    """Would FastAPI read this body as JSON (a JSON content type, or none at all)?"""
    for name, value in scope.get("headers", ()):
        if name == b"content-type":
            return b"json" in value.lower()
    return True


def check_json(body: bytes, limits: ServiceLimits) -> None:
    """Parse `body` once with bounded hooks; raise `BodyError` (422) for anything no endpoint accepts."""

    def pairs(items: list[tuple[str, Any]]) -> dict[str, Any]:
        if len(items) > limits.max_json_keys:
            raise BodyError(422, f"a JSON object has {len(items):,} keys; the most is {limits.max_json_keys}")
        return dict(items)

    def number(text: str) -> float | int:
        if len(text) > limits.max_number_chars:
            raise BodyError(
                422, f"a JSON number is {len(text):,} characters; the most is {limits.max_number_chars}"
            )
        value = float(text) if any(c in text for c in ".eE") else int(text)
        if value in (float("inf"), float("-inf")):  # 1e999 reads as infinity
            raise BodyError(422, "a JSON number is out of range")
        return value

    def constant(word: str) -> None:
        raise BodyError(422, f"{word} is not a JSON number; send a finite number")

    try:
        text = body.decode("utf-8")
        value = json.loads(text, object_pairs_hook=pairs, parse_int=number, parse_float=number,
                           parse_constant=constant)  # fmt: skip
        json.dumps(value, ensure_ascii=False).encode("utf-8")  # a lone surrogate ("\ud800") fails here
    except UnicodeError:
        raise BodyError(422, "the body holds text that is not valid UTF-8 (a lone surrogate?)") from None
    except RecursionError:
        raise BodyError(422, "the JSON body is nested too deeply") from None
    except json.JSONDecodeError as exc:
        raise BodyError(
            422, f"the body is not JSON: {exc.msg} at line {exc.lineno} column {exc.colno}"
        ) from None


def _place(part: Any, most: int = 40) -> str:
    """One element of an error location, short and printable: an unknown key may be 100 KB long (then
    only its length is named)."""
    text = str(part)
    text = text if len(text) <= most else f"<a {len(text):,}-character name>"
    return text.encode("utf-8", "replace").decode("utf-8")


async def validation_error(request: Request, exc: Exception) -> StrictJSONResponse:
    """422 naming where and what kind of error, never the input (FastAPI's own echoes it)."""
    errors = exc.errors() if isinstance(exc, RequestValidationError) else []
    kinds = [
        {"loc": [_place(p) for p in e.get("loc", ())], "type": _place(e.get("type", ""))} for e in errors
    ]
    first = errors[0] if errors else {}
    where = ".".join(kinds[0]["loc"]) if kinds else "body"
    message = _place(first.get("msg", "invalid request"), 200) if first else "invalid request"
    more = f" (and {len(errors) - 1} more)" if len(errors) > 1 else ""
    return StrictJSONResponse({"detail": f"{where}: {message}{more}", "errors": kinds[:10]}, status_code=422)
