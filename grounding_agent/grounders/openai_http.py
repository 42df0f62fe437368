"""The two OpenAI API calls the vLLM grounder makes, `GET /models` and `POST /chat/completions`, over httpx2.

Not through the openai SDK: importing it costs 0.5-0.9 s (about 500 modules of pydantic models), most of a
CLI `ground` run, for two JSON requests. What the SDK gave is kept: retries (tenacity) on connection errors
and on HTTP 408 / 409 / 429 / 5xx, with the server's Retry-After or exponential backoff; replies are checked
and read into a typed `Completion`; every failure is one `ServerError` whose message says how to fix it.
The wall-clock deadline over a call and its retries is the caller's (`VLLMGrounder._acall`).
"""

from __future__ import annotations

import logging
import math
import ssl
import time
from dataclasses import dataclass
from email.utils import parsedate_to_datetime
from typing import Any

import httpx2
import tenacity

from grounding_agent.errors import http_status, not_openai_reply, timed_out, unreachable

logger = logging.getLogger(__name__)

RETRY_STATUS = frozenset({408, 409, 429})  # and every 5xx: what the openai SDK retries
MAX_RETRY_AFTER_S = 60.0  # a longer Retry-After is not waited for: the error is reported at once


@dataclass(frozen=True)
class Choice:
    """One answer of a chat completion."""

    text: str  # '' when the server sent none, or something that is not text
    logprobs: tuple[float, ...] | None  # the answer's finite token log-probs; None when none were sent

    @property
    def confidence(self) -> float:
        """exp(mean token log-prob); 1.0 without log-probs (sampling), 0.0 when none was a number."""
        if self.logprobs is None:
            return 1.0
        if not self.logprobs:
            return 0.0
        return min(1.0, math.exp(sum(self.logprobs) / len(self.logprobs)))


@dataclass(frozen=True)
class Completion:
    """A chat completion as read from the server's JSON (checked: at least one choice with a message)."""

    choices: tuple[Choice, ...]
    usage: dict[str, int] | None  # prompt_tokens and completion_tokens, when the server sent both


class _Unreadable(Exception):
    """A 200 reply that is not what the OpenAI API sends; the message says what it held."""


class _HTTPStatus(Exception):
    """An HTTP error status (kept apart from transport errors so that tenacity can tell them apart)."""

    def __init__(self, response: httpx2.Response):
        self.status_code = response.status_code
        self.detail = _error_message(response)
        self.retry_after_s = _retry_after_s(response.headers)
        retry = response.headers.get("x-should-retry")  # the OpenAI API's own say, when it gives one
        transient = self.status_code in RETRY_STATUS or self.status_code >= 500
        soon = self.retry_after_s is None or self.retry_after_s <= MAX_RETRY_AFTER_S
        self.retryable = retry == "true" or (retry != "false" and transient and soon)
        super().__init__(f"HTTP {self.status_code}: {self.detail}")


class OpenAIHTTP:
    """An async client of one OpenAI-compatible server.

    Args:
        base_url: the API root, e.g. "http://127.0.0.1:8000/v1".
        where: the server as messages name it, e.g. "vLLM server at http://127.0.0.1:8000/v1".
        timeout_s: the HTTP client's timeout per connect / read / write.
        max_retries: retries after the first attempt.
    """

    def __init__(
        self,
        base_url: str,
        *,
        where: str,
        api_key: str,
        timeout_s: float,
        max_retries: int,
        verify: ssl.SSLContext,
    ):
        self.where, self.max_retries = where, max_retries
        self._http = httpx2.AsyncClient(
            base_url=base_url.rstrip("/") + "/",
            headers={"Authorization": f"Bearer {api_key}"},
            timeout=timeout_s,
            verify=verify,
            follow_redirects=True,
        )

    async def models(self) -> list[dict[str, Any]]:
        """The served models' entries (each with an `id`; vLLM adds `root`, `parent`), in the server's order."""
        data = await self._call("GET", "models", "model list")
        items = data.get("data") if isinstance(data, dict) else None
        if not isinstance(items, list) or not all(
            isinstance(m, dict) and isinstance(m.get("id"), str) for m in items
        ):
            raise not_openai_reply(self.where, "no model ids", "model list")
        return items

    async def chat(self, body: dict[str, Any]) -> Completion:
        """POST `body` (the OpenAI chat-completions request) and read the reply."""
        data = await self._call("POST", "chat/completions", "chat completion", body)
        try:
            return read_completion(data)
        except _Unreadable as exc:
            raise not_openai_reply(self.where, str(exc)) from None

    async def aclose(self) -> None:
        await self._http.aclose()

    async def _call(self, method: str, path: str, what: str, body: dict[str, Any] | None = None) -> Any:
        """The reply's JSON (`what` it should be, for messages) after the retries transient failures get;
        every failure a `ServerError`."""
        retrying = tenacity.AsyncRetrying(
            stop=tenacity.stop_after_attempt(self.max_retries + 1),
            wait=_wait_s,
            retry=tenacity.retry_if_exception(_transient),
            before_sleep=tenacity.before_sleep_log(logger, logging.INFO),
            reraise=True,
        )
        try:
            async for attempt in retrying:
                with attempt:
                    response = await self._http.request(method, path, json=body)
                    if response.status_code >= 400:
                        raise _HTTPStatus(response)
        except _HTTPStatus as exc:
            raise http_status(self.where, exc.status_code, exc.detail) from None
        except httpx2.TimeoutException:
            raise timed_out(self.where) from None
        except (httpx2.TransportError, httpx2.InvalidURL):
            raise unreachable(self.where) from None
        try:
            return response.json()
        except ValueError:  # an HTML page, cut JSON, another encoding
            raise not_openai_reply(self.where, response.text[:200] or "an empty body", what) from None


def read_completion(data: Any) -> Completion:
    """A chat completion from its JSON; `_Unreadable` unless it has choices, each with a message.

    Fields of the wrong type are read as absent: a server may send anything where text or numbers belong.
    """
    choices = data.get("choices") if isinstance(data, dict) else None
    if not isinstance(choices, list) or not choices:
        raise _Unreadable("no choices" if isinstance(data, dict) else f"a JSON {type(data).__name__}")
    if not all(isinstance(c, dict) and isinstance(c.get("message"), dict) for c in choices):
        raise _Unreadable("a choice without a message")
    usage = data.get("usage")
    tokens = (
        {k: usage.get(k) for k in ("prompt_tokens", "completion_tokens")} if isinstance(usage, dict) else {}
    )
    counted = tokens and all(isinstance(v, int) and not isinstance(v, bool) for v in tokens.values())
    return Completion(tuple(_choice(c) for c in choices), tokens if counted else None)


def _choice(choice: dict[str, Any]) -> Choice:
    content = choice["message"].get("content")
    logprobs = choice.get("logprobs")
    tokens = logprobs.get("content") if isinstance(logprobs, dict) else None
    if not isinstance(tokens, list) or not tokens:
        return Choice(content if isinstance(content, str) else "", None)
    values = (t.get("logprob") for t in tokens if isinstance(t, dict))
    numbers = (float(v) for v in values if isinstance(v, (int, float)) and not isinstance(v, bool))
    return Choice(content if isinstance(content, str) else "", tuple(v for v in numbers if math.isfinite(v)))


def _transient(exc: BaseException) -> bool:
    """What is worth another attempt: no connection or answer, or a status the server says may pass."""
    if isinstance(exc, _HTTPStatus):
        return exc.retryable
    return isinstance(exc, httpx2.TransportError) and not isinstance(exc, httpx2.UnsupportedProtocol)


# 0.5 s doubling up to 8 s, each drawn at random below that ("full jitter": concurrent clients spread out).
_BACKOFF = tenacity.wait_random_exponential(multiplier=0.5, max=8.0)


def _wait_s(state: tenacity.RetryCallState) -> float:
    """The server's Retry-After when it sent one, else the backoff."""
    exc = state.outcome.exception() if state.outcome else None
    after = getattr(exc, "retry_after_s", None)
    return after if after is not None else _BACKOFF(state)


def _retry_after_s(headers: httpx2.Headers) -> float | None:
    """Seconds from `retry-after-ms` or `retry-after` (seconds or an HTTP date); None if absent or unreadable."""
    try:
        if (ms := headers.get("retry-after-ms")) is not None:
            seconds = float(ms) / 1000
        elif (value := headers.get("retry-after")) is None:
            return None
        elif value.strip().replace(".", "", 1).isdigit():
            seconds = float(value)
        else:
            seconds = parsedate_to_datetime(value).timestamp() - time.time()
    except (ValueError, TypeError, OverflowError):
        return None
    return max(0.0, seconds) if math.isfinite(seconds) else None


def _error_message(response: httpx2.Response) -> str:
    """The server's own message for an error status (vLLM's `{"error": {"message": ...}}` or older
    `{"message": ...}`), else the body's text."""
    try:
        data = response.json()
    except ValueError:
        return response.text.strip() or response.reason_phrase
    error = data.get("error", data) if isinstance(data, dict) else None
    message = error.get("message") if isinstance(error, dict) else error
    return message if isinstance(message, str) and message else response.text.strip()
