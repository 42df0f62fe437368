"""Where a watch's events go: JSON lines on a stream, a webhook (POST, retried, through a bounded queue),
and any callable (the HTTP API's server-sent events). A sink never blocks the watch: a webhook that hangs
or fails fills its queue, and events beyond the queue are dropped *and counted* (`WebhookSink.stats`),
which the watch reports.
"""

from __future__ import annotations

import json
import logging
import queue
import threading
from collections.abc import Callable
from dataclasses import asdict, dataclass
from typing import IO, Protocol

import httpx
from tenacity import Retrying, stop_after_attempt, wait_exponential

from grounding_agent.defaults import LIVE
from grounding_agent.live.events import LiveEvent

__all__ = ["CallbackSink", "JsonLinesSink", "Sink", "WebhookSink", "WebhookStats"]

log = logging.getLogger(__name__)


class Sink(Protocol):
    def send(self, event: LiveEvent) -> None: ...

    def close(self) -> None: ...


class JsonLinesSink:
    """One JSON object a line, flushed per event."""

    def __init__(self, stream: IO[str]):
        self.stream = stream

    def send(self, event: LiveEvent) -> None:
        self.stream.write(json.dumps(event.to_dict(), ensure_ascii=False) + "\n")
        self.stream.flush()

    def close(self) -> None:
        pass


class CallbackSink:
    def __init__(self, callback: Callable[[LiveEvent], None]):
        self.callback = callback

    def send(self, event: LiveEvent) -> None:
        self.callback(event)

    def close(self) -> None:
        pass


@dataclass
class WebhookStats:
    sent: int = 0
    failed: int = 0  # POSTed `retries` times without a 2xx answer
    dropped: int = 0  # the queue was full: never POSTed
    pending: int = 0  # still queued when the watch ended

    def to_dict(self) -> dict[str, int]:
        return asdict(self)


class WebhookSink:
    """POST each event as JSON to `url` from a worker thread, `retries` attempts with backoff, each within
    `timeout_s`; at most `max_queue` events wait (the rest are dropped and counted)."""

    def __init__(
        self,
        url: str,
        *,
        max_queue: int = LIVE.webhook_queue,
        retries: int = LIVE.webhook_retries,
        timeout_s: float = LIVE.webhook_timeout_s,
    ):
        self.url, self.retries, self.timeout_s = url, retries, timeout_s
        self.stats = WebhookStats()
        self._queue: queue.Queue[LiveEvent | None] = queue.Queue(maxsize=max_queue)
        self._client = httpx.Client(timeout=httpx.Timeout(timeout_s))
        self._thread = threading.Thread(target=self._work, daemon=True, name="webhook")
        self._thread.start()

    def send(self, event: LiveEvent) -> None:
        try:
            self._queue.put_nowait(event)
        except queue.Full:
            self.stats.dropped += 1

    def _work(self) -> None:
        while True:
            event = self._queue.get()
            if event is None:
                return
            try:
                for attempt in Retrying(
                    stop=stop_after_attempt(self.retries),
                    wait=wait_exponential(multiplier=0.2, max=2),
                    reraise=True,
                ):
                    with attempt:
                        self._client.post(self.url, json=event.to_dict()).raise_for_status()
                self.stats.sent += 1
            except httpx.HTTPError as exc:
                self.stats.failed += 1
                log.warning(
                    "webhook %s: event %d not delivered (%s)", self.url, event.seq, type(exc).__name__
                )

    def close(self, wait_s: float | None = None) -> None:
        """Stop after the queued events (waiting at most `wait_s`, default one POST timeout); what is left is
        counted as pending."""
        try:
            self._queue.put_nowait(None)
        except queue.Full:
            pass
        self._thread.join(self.timeout_s if wait_s is None else wait_s)
        self.stats.pending = self._queue.qsize()
        if not self._thread.is_alive():  # a hanging POST keeps the client: its daemon thread ends with us
            self._client.close()
