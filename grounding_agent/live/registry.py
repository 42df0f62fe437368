"""Watches started and stopped by id, each in its own thread, with its recent events kept for readers (the
HTTP API's `/v1/streams`). Bounded: at most `max_streams` at once, `keep_events` events each.

    streams = StreamRegistry("streams-out", whisper=model)
    sid = streams.start("udp://127.0.0.1:5000", ["when someone says 'discount code'"])
    events, done = streams.events_since(sid, after_seq=0)
    streams.stop(sid)
"""

from __future__ import annotations

import threading
import uuid
from collections import deque
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from grounding_agent.defaults import LIVE
from grounding_agent.errors import ConfigError, GroundingAgentError
from grounding_agent.live.events import LiveEvent
from grounding_agent.live.sinks import CallbackSink
from grounding_agent.live.watcher import Watcher, WatchOptions

__all__ = ["StreamRegistry", "UnknownStreamError"]

URL_SCHEMES = ("udp://", "rtp://", "srt://", "rtmp://", "rtmps://", "rtsp://", "http://", "https://")


class UnknownStreamError(GroundingAgentError, KeyError):
    """No watch has this id."""


@dataclass
class _Entry:
    source: str
    watcher: Watcher
    events: deque[LiveEvent]
    thread: threading.Thread = field(default_factory=threading.Thread)  # set before it is shared
    error: str = ""


class StreamRegistry:
    def __init__(self, out_root: str | Path, *, whisper: Any = None, max_streams: int = LIVE.max_streams):
        self.out_root, self.whisper, self.max_streams = Path(out_root), whisper, max_streams
        self._entries: dict[str, _Entry] = {}
        self._lock = threading.Lock()

    def start(
        self, source: str, alerts: Sequence[str] = (), *, fps: float = LIVE.fps, keep_s: float = LIVE.keep_s
    ) -> str:
        """Start watching a URL source; its id. Alerts are read (and refused) before anything starts."""
        if not source.startswith(URL_SCHEMES):
            raise ConfigError(
                f"source {source[:80]!r} is not a stream URL; give one of: {', '.join(URL_SCHEMES)}"
            )
        with self._lock:
            if sum(e.thread.is_alive() for e in self._entries.values()) >= self.max_streams:
                raise ConfigError(f"{self.max_streams} watches are running; stop one first")
            sid = uuid.uuid4().hex[:12]
            entry_events: deque[LiveEvent] = deque(maxlen=LIVE.keep_events)
            options = WatchOptions(alerts=tuple(alerts), fps=fps, keep_s=keep_s)
            watcher = Watcher(source, options, self.out_root / sid, sinks=[CallbackSink(entry_events.append)],
                              whisper=self.whisper)  # fmt: skip
            entry = _Entry(source, watcher, entry_events)
            entry.thread = threading.Thread(target=self._run, args=(entry,), daemon=True, name=f"watch-{sid}")
            self._entries[sid] = entry
        entry.thread.start()
        return sid

    @staticmethod
    def _run(entry: _Entry) -> None:
        try:
            entry.watcher.run()
        except GroundingAgentError as exc:  # the source failed: one line, kept for the readers
            entry.error = str(exc).splitlines()[0]
            entry.watcher.emit("status", 0.0, 0.0, "error", entry.error)
        except OSError as exc:
            entry.error = f"{type(exc).__name__}: {exc}"
            entry.watcher.emit("status", 0.0, 0.0, "error", entry.error)

    def _get(self, sid: str) -> _Entry:
        entry = self._entries.get(sid)
        if entry is None:
            raise UnknownStreamError(f"no watch {sid[:40]!r}; list them with GET /v1/streams")
        return entry

    def watcher(self, sid: str) -> Watcher:
        """The watch itself (its ring recording, what it heard: `Recall`), for readers in this process."""
        return self._get(sid).watcher

    def describe(self, sid: str) -> dict[str, Any]:
        entry = self._get(sid)
        w = entry.watcher
        return {"id": sid, "source": entry.source, "running": entry.thread.is_alive(), "events": w.report.events,
                "alerts": w.report.alerts, "error": entry.error or None, "ended": w.report.ended or None}  # fmt: skip

    def list(self) -> list[dict[str, Any]]:
        return [self.describe(sid) for sid in list(self._entries)]

    def stop(self, sid: str, wait_s: float = LIVE.timeout_s) -> dict[str, Any]:
        entry = self._get(sid)
        entry.watcher.stop()
        entry.thread.join(wait_s)
        return self.describe(sid)

    def events_since(self, sid: str, after_seq: int = 0) -> tuple[list[LiveEvent], bool]:
        """The kept events numbered after `after_seq`, and whether the watch has ended."""
        entry = self._get(sid)
        done = not entry.thread.is_alive()
        return [e for e in list(entry.events) if e.seq > after_seq], done
