"""The watch loop: packets from the source → decoded frames and audio → alerts, online highlights, the ring
recording and clips → `LiveEvent`s to the sinks.

    report = Watcher("udp://127.0.0.1:5000", WatchOptions(alerts=("when she says 'discount'",),
                     asr_model=DIR), out="watch-out", sinks=[JsonLinesSink(sys.stdout)]).run()

Lag is how far the watch is behind the stream: the wall-clock time spent minus the stream time covered,
counted from the last time the source made the watch wait for a packet (then nothing was queued). When it passes `max_lag_s`, one
step of `DEGRADE_ORDER` is taken (and reported), then another each `max_lag_s` seconds while it lasts:
fewer visual calls, a lower sampling fps, OCR on one changed frame in two (then four), then decoding
keyframes only. Everything held is bounded: the ring by `keep_s`, words and texts by count or time, the
online highlights by their window.
"""

from __future__ import annotations

import logging
import threading
import time
from collections import deque
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import av
import numpy as np

from grounding_agent.defaults import LIVE
from grounding_agent.errors import ConfigError
from grounding_agent.live.alerts import (
    Alert,
    Hit,
    ScreenAlerts,
    SpeechAlerts,
    VisualAlerts,
    WindowGrounder,
    read_alert,
)
from grounding_agent.live.clips import ClipWriter
from grounding_agent.live.events import LiveEvent
from grounding_agent.live.online import FrameScorer, HighlightHit, OnlineHighlights, load_head_scorer
from grounding_agent.live.ring import RingRecorder
from grounding_agent.live.sinks import Sink
from grounding_agent.live.source import LiveSource
from grounding_agent.media.vad import SAMPLE_RATE
from grounding_agent.types import Evidence

__all__ = ["DEGRADE_ORDER", "WatchOptions", "WatchReport", "Watcher"]

log = logging.getLogger(__name__)

DEGRADE_ORDER = ("visual_calls", "fps", "ocr_stride", "keyframes_only")
MIN_FPS = 0.25
RECENT_EVENTS = 1000
CAUGHT_UP_S = 0.02  # a packet waited for this long was not queued: the watch had caught up


@dataclass(frozen=True)
class WatchOptions:
    """What a watch does; see `defaults.LiveConfig` for each number. `duration_s`: stop after this much
    stream (None: until the source ends); `speed`: read a file at this multiple of real time."""

    alerts: tuple[str, ...] = ()
    fps: float = LIVE.fps
    keep_s: float = LIVE.keep_s
    segment_s: float = LIVE.segment_s
    delay_s: float = LIVE.delay_s
    timeout_s: float = LIVE.timeout_s
    reconnects: int = LIVE.reconnects
    backoff_s: float = LIVE.backoff_s
    clip: bool = False
    pre_s: float = LIVE.pre_s
    post_s: float = LIVE.post_s
    min_score: float = LIVE.min_score
    max_lag_s: float = LIVE.max_lag_s
    max_pixels: int = LIVE.max_pixels
    visual_calls_per_min: int = LIVE.visual_calls_per_min
    highlights: bool = True
    asr_language: str | None = None
    speed: float | None = None
    duration_s: float | None = None
    head: str | None = None  # a learned highlight head's folder: its score is an online-highlight signal
    head_text: str | None = None  # what a head that needs a text (vcl, taohighlight) scores against


@dataclass
class WatchReport:
    stream_s: float = 0.0
    wall_s: float = 0.0
    cpu_s: float = 0.0
    events: int = 0
    alerts: int = 0
    highlights: int = 0
    clips: int = 0
    connects: int = 0
    drops: int = 0
    timestamp_resets: int = 0
    lag_max_s: float = 0.0
    degraded: list[str] = field(default_factory=list)
    ocr_frames_read: int = 0
    ocr_frames_skipped: int = 0
    asr_calls: int = 0
    asr_skipped_s: float = 0.0
    asr_segments_dropped: int = 0  # Whisper segments dropped as made up (no speech, unsure, or a loop)
    visual_calls: int = 0
    visual_malformed: int = 0
    visual_failed: int = 0
    visual_skipped: int = 0
    decode_errors: int = 0
    ring_bytes: int = 0
    ring_segments_deleted: int = 0
    ended: str = ""
    top_highlights: list[tuple[float, float]] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        return {k: (round(v, 3) if isinstance(v, float) else v) for k, v in self.__dict__.items()}


class Watcher:
    """Watch one source (see the module docstring). `whisper`: a faster-whisper model (speech alerts);
    `grounder`: any grounder (visual alerts). Alerts are read, and refused, before the source is opened."""

    def __init__(
        self,
        source: str,
        options: WatchOptions,
        out: str | Path,
        *,
        sinks: Sequence[Sink] = (),
        whisper: Any = None,
        grounder: WindowGrounder | None = None,
        saliency: FrameScorer | None = None,
    ):
        self.spec, self.options, self.out = source, options, Path(out)
        self.alerts: list[Alert] = [read_alert(a) for a in options.alerts]
        by = {c: [a for a in self.alerts if a.channel == c] for c in ("speech", "ocr", "visual")}
        if by["speech"] and whisper is None:
            raise ConfigError(f"--alert {by['speech'][0].query[:60]!r} is about speech: pass --asr-model DIR")
        if by["visual"] and grounder is None:
            raise ConfigError(
                f"--alert {by['visual'][0].query[:60]!r} reads as a visual query: pass --grounder NAME, "
                'or quote the words said ("says \'X\'") or shown ("the slide titled X")'
            )
        self.sinks = list(sinks)
        self.speech = (
            SpeechAlerts(
                by["speech"],
                whisper,
                language=options.asr_language,
                min_score=options.min_score,
                keep_s=options.keep_s,
            )
            if whisper is not None  # without speech alerts too: what is said is kept for `recall`
            else None
        )
        self.screen = ScreenAlerts(by["ocr"], min_score=options.min_score)
        self._visual_alerts, self._grounder = by["visual"], grounder
        head = (  # loaded and checked here: a head that cannot score is refused before the source opens
            load_head_scorer(options.head, options.head_text, saliency)
            if options.head and options.highlights
            else None
        )
        self.online = (
            OnlineHighlights(delay_s=options.delay_s, saliency=saliency, head=head)
            if options.highlights
            else None
        )
        self._saliency_name = saliency.model_id if saliency is not None else ""
        self.report = WatchReport()
        self.fps = options.fps
        self._seq = 0
        self._stop = threading.Event()
        self._lock = threading.Lock()
        self.source: LiveSource | None = None
        self.ring: RingRecorder | None = None
        self.clips: ClipWriter | None = None
        self.visual: VisualAlerts | None = None
        self._keyframes_only = False
        self.recent: deque[LiveEvent] = deque(maxlen=RECENT_EVENTS)  # for `recall`

    def stop(self) -> None:
        """Ask the loop to end after the packet in hand (from another thread)."""
        self._stop.set()

    def emit(
        self, kind: str, start_s: float, end_s: float, channel: str, text: str = "", **extra: Any
    ) -> LiveEvent:
        with self._lock:
            self._seq += 1
            event = LiveEvent(kind, self._seq, start_s, end_s, channel, text, **extra)  # type: ignore[arg-type]
        self.report.events += 1
        self.recent.append(event)
        for sink in self.sinks:
            sink.send(event)
        return event

    def _status(self, topic: str, text: str) -> None:
        t = self.source.last_s if self.source is not None and self.source.last_s is not None else 0.0
        self.emit("status", t, t, topic, text)

    def run(self) -> WatchReport:
        o = self.options
        self.out.mkdir(parents=True, exist_ok=True)
        start_wall, start_cpu = time.monotonic(), time.process_time()
        self.source = LiveSource(
            self.spec,
            timeout_s=o.timeout_s,
            reconnects=o.reconnects,
            backoff_s=o.backoff_s,
            speed=o.speed,
            on_status=self._status,
        )
        self.ring = RingRecorder(self.out / "ring", keep_s=o.keep_s, segment_s=o.segment_s)
        self.clips = ClipWriter(self.ring, self.out / "clips") if o.clip else None
        if self.speech is not None:  # a file read as fast as it decodes waits for Whisper
            self.speech.wait_when_behind = self.source.kind == "file" and not o.speed
        self.visual = (
            VisualAlerts(
                self._visual_alerts,
                self._grounder,
                self.ring.cut,
                self.out / "ring",
                calls_per_min=o.visual_calls_per_min,
                min_score=o.min_score,
            )
            if self._visual_alerts and self._grounder is not None
            else None
        )
        self._resampler: dict[Any, Any] = {}
        self._next_sample_s, self._lag_base, self._degrade_at = 0.0, None, 0.0
        try:
            self._loop(start_wall)
        finally:
            self._finish(start_wall, start_cpu)
        return self.report

    def _loop(self, start_wall: float) -> None:
        assert self.source is not None and self.ring is not None
        for packet, t in self.source.packets():
            skip = self._keyframes_only and packet.stream.type == "video" and not packet.is_keyframe
            try:
                frames = [] if skip else packet.decode()
            except av.error.FFmpegError:
                self.report.decode_errors += 1
                frames = []
            for frame in frames:
                if frame.time is None:
                    continue
                ft = float(frame.time) + self.source.offset_s
                if isinstance(frame, av.VideoFrame):
                    self._on_video(frame, ft)
                else:
                    self._on_audio(frame, ft, packet.stream)
            self.ring.add(packet, t)
            self._tick(t, start_wall)
            if self._stop.is_set() or (self.options.duration_s is not None and t >= self.options.duration_s):
                self.report.ended = "stopped"
                return
        self.report.ended = self.source.lost or self.source.end_note or "source ended"

    def _on_video(self, frame: av.VideoFrame, t: float) -> None:
        if t + 1e-6 < self._next_sample_s:
            return
        self._next_sample_s = (np.floor(t * self.fps + 1e-6) + 1) / self.fps
        w, h = _fit(frame.width, frame.height, self.options.max_pixels)
        pixels = frame.to_ndarray(format="rgb24", width=w, height=h)
        if self.online is not None:
            self.online.add_frame(pixels, t)
        if self.screen.alerts:
            for hit in self.screen.feed(pixels, t):
                self._alert(hit)

    def _on_audio(self, frame: av.AudioFrame, t: float, stream: Any) -> None:
        resampler = self._resampler.get(stream)
        if resampler is None:
            resampler = self._resampler[stream] = av.AudioResampler(
                format="flt", layout="mono", rate=SAMPLE_RATE
            )
        chunks = [f.to_ndarray().reshape(-1) for f in resampler.resample(frame)]
        samples = np.concatenate(chunks) if chunks else np.zeros(0, np.float32)
        if self.online is not None:
            self.online.add_audio(samples, t)
        if self.speech is not None and samples.size:
            for hit in self.speech.feed(samples, t):
                self._alert(hit)

    def _alert(self, hit: Hit) -> None:
        assert self.source is not None
        arrived = self.source.clock.arrival(hit.end_s)
        delay = None if arrived is None else max(0.0, time.time() - arrived)
        event = self.emit(
            "alert", hit.start_s, hit.end_s, hit.alert.channel, hit.text, query=hit.alert.query, delay_s=delay,
            evidence=hit.evidence, data={"score": round(hit.score, 3)},
        )  # fmt: skip
        self.report.alerts += 1
        if self.clips is not None:
            self.clips.schedule(event.seq, hit.start_s - self.options.pre_s, hit.end_s + self.options.post_s)

    def _tick(self, t: float, start_wall: float) -> None:
        assert self.source is not None and self.ring is not None
        if self.online is not None:
            for h in self.online.poll(t):
                arrived = self.source.clock.arrival(h.end_s)
                delay = None if arrived is None else time.time() - arrived
                self.emit(
                    "highlight",
                    h.start_s,
                    h.end_s,
                    "highlight",
                    f"score {h.score:.2f}",
                    delay_s=delay,
                    evidence=self._clip_evidence(h),
                    data={"score": round(h.score, 3), "signals": h.signals}
                    | ({"head_score": round(h.head_score, 4)} if h.head_score is not None else {}),
                )
                self.report.highlights += 1
        if self.visual is not None:
            for hit in self.visual.poll(self.ring.closed_until_s):
                self._alert(hit)
        if self.clips is not None:
            self._clip_events(self.clips.poll())
        self._check_lag(t, start_wall)

    def _clip_evidence(self, h: HighlightHit) -> tuple[Evidence, ...]:
        if h.clip_sim is None:
            return ()
        sim = round(h.clip_sim, 4)
        return (Evidence("saliency", h.start_s, h.end_s, sim, "highlight prompts", self._saliency_name),)

    def _clip_events(self, done: list) -> None:
        for job, result in done:
            if isinstance(result, str):
                self.emit(
                    "status", job.start_s, job.end_s, "clip_failed", result, data={"alert_seq": job.seq}
                )
            else:
                self.report.clips += 1
                self.emit(
                    "clip",
                    job.start_s,
                    job.end_s,
                    "clip",
                    str(result[0]),
                    data={"alert_seq": job.seq, "files": [str(p) for p in result]},
                )

    def _check_lag(self, t: float, start_wall: float) -> None:
        o = self.options
        if self.source is None or (self.source.kind not in ("url", "device") and not o.speed):
            return  # a file read as fast as it decodes is never "behind"
        behind = (time.monotonic() - start_wall) - t / (o.speed or 1.0)
        if self._lag_base is None or self.source.waited_s > CAUGHT_UP_S or behind < self._lag_base:
            self._lag_base = behind  # the source made us wait: nothing was queued, the watch is not behind
        lag = behind - self._lag_base
        self.report.lag_max_s = max(self.report.lag_max_s, lag)
        if lag > o.max_lag_s and t >= self._degrade_at and len(self.report.degraded) < len(DEGRADE_ORDER):
            step = DEGRADE_ORDER[len(self.report.degraded)]
            self._degrade(step)
            self.report.degraded.append(step)
            self._degrade_at = t + o.max_lag_s
            self._status("degraded", f"{lag:.1f} s behind the stream: {step}")

    def _degrade(self, step: str) -> None:
        if step == "visual_calls" and self.visual is not None:
            self.visual.calls_per_min /= 2
        elif step == "fps":
            self.fps = max(MIN_FPS, self.fps / 2)
        elif step == "ocr_stride":
            self.screen.stride *= 2
        elif step == "keyframes_only":
            self._keyframes_only = True

    def _finish(self, start_wall: float, start_cpu: float) -> None:
        r = self.report
        if self.speech is not None:
            for hit in self.speech.flush():
                self._alert(hit)
        if self.visual is not None:
            for hit in self.visual.flush():
                self._alert(hit)
        if self.ring is not None:
            self.ring.close()
        if self.clips is not None:
            self._clip_events(self.clips.poll(final=True))
            self.clips.close()
        if self.source is not None:
            r.stream_s = self.source.last_s or 0.0
            r.connects, r.drops, r.timestamp_resets = (
                self.source.connects,
                self.source.drops,
                self.source.resets,
            )
        r.wall_s, r.cpu_s = time.monotonic() - start_wall, time.process_time() - start_cpu
        r.ocr_frames_read, r.ocr_frames_skipped = self.screen.read, self.screen.skipped
        if self.speech is not None:
            r.asr_calls, r.asr_skipped_s = self.speech.calls, self.speech.skipped_s
            r.asr_segments_dropped = self.speech.dropped
            if self.speech.skipped_s:
                r.degraded.append("asr_skipped")
        if self.visual is not None:
            v = self.visual
            r.visual_calls, r.visual_malformed, r.visual_failed, r.visual_skipped = (
                v.calls,
                v.malformed,
                v.failed,
                v.skipped,
            )
        if self.ring is not None:
            r.ring_bytes, r.ring_segments_deleted = self.ring.bytes_on_disk(), self.ring.deleted
        r.top_highlights = self.online.top_k_s() if self.online is not None else []


def _fit(width: int, height: int, max_pixels: int) -> tuple[int, int]:
    scale = min(1.0, (max_pixels / max(1, width * height)) ** 0.5)
    return max(2, int(width * scale) // 2 * 2), max(2, int(height * scale) // 2 * 2)
