"""A live source: anything FFmpeg reads as it plays, opened with PyAV, as packets in monotonic stream time.

    source = LiveSource("udp://127.0.0.1:5000?timeout=...", timeout_s=10, reconnects=5)
    for packet, t_s in source.packets():      # t_s: seconds since the watch began, never going back
        ...

SOURCE is a URL (`udp://`, `rtp://`, `srt://`, `rtmp://`, `rtsp://`, `tcp://`, `http://…/x.m3u8`, …), an
FFmpeg input device as `FORMAT:INPUT` (`v4l2:/dev/video0`, `lavfi:GRAPH`, `alsa:default`: opened with that
format, refused in one line when PyAV's FFmpeg build lacks it; its end is the end), `-` (a pipe on stdin)
or a file, which is followed while it grows (like `tail -f`; it must be a streamable container: MPEG-TS,
Matroska, FLV, fragmented MP4) and ends after `timeout_s` without growth. Every open and read has
a timeout (PyAV's interrupt callback), so nothing hangs. A network source that drops or stalls is reopened
with exponential backoff (tenacity), `reconnects` times per drop, each failed attempt said with its wait;
the stream time then goes on from where it was. An HLS playlist is waited on for `timeout_s` beyond its
target duration: one that stops growing for that long ends (FFmpeg re-read it all that time), one that
cannot be read any more (a dead server) is a drop, and after a reconnect the segments FFmpeg plays again
(it starts a live playlist 3 segments from its end) are skipped by their timestamps, not seen twice.
Timestamps that jump back (a reset, a 33-bit MPEG-TS wrap, a restarted publisher) or far ahead are
re-anchored, so stream time is monotonic; a short leap ahead (data lost) stays a gap in stream time. `clock.arrival(t_s)` says when the stream reached `t_s`, for delays.
"""

from __future__ import annotations

import bisect
import io
import logging
import sys
import time
from collections import deque
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import av
from tenacity import RetryCallState, Retrying, retry_if_exception_type, stop_after_attempt, wait_exponential

from grounding_agent.defaults import LIVE
from grounding_agent.errors import StreamError
from grounding_agent.live.playlist import Playlist, is_hls, read_playlist

__all__ = ["ArrivalClock", "FollowFile", "LiveSource"]

log = logging.getLogger(__name__)

# A timestamp this far behind the last one is a reset/wrap/restart (not a reordered or late packet); this
# far ahead, a restart too. A smaller leap ahead is data lost on the way (a UDP overrun): kept as a gap.
JUMP_BACK_S = 3.0
JUMP_AHEAD_S = 30.0
GAP_S = 0.04  # stream time added across a re-anchoring (one frame at 25 fps)
REPLAY_SEGMENTS = 4  # after an HLS reconnect FFmpeg plays the last 3 segments again: up to this many seen
POLL_S = 0.05
PROBE_S = 1.0
_HINT = "check that the publisher is running and the URL is right, or raise --timeout"
# FFmpeg input devices a SOURCE may name as FORMAT:INPUT (a capture card, a virtual lavfi graph, a sound card)
DEVICE_FORMATS = ("v4l2", "video4linux2", "lavfi", "alsa", "pulse", "x11grab", "fbdev", "kmsgrab", "dshow")


class FollowFile(io.RawIOBase):
    """A file read while it is written: at its end, wait for more data; after `stall_s` without growth, EOF."""

    def __init__(self, path: str | Path, stall_s: float):
        self._f = open(path, "rb")  # noqa: SIM115 - closed in close()
        self.stall_s = stall_s

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: Any) -> int:
        waited = 0.0
        while True:
            n = self._f.readinto(buffer)
            if n or waited >= self.stall_s:
                return n or 0
            time.sleep(POLL_S)
            waited += POLL_S

    def close(self) -> None:
        self._f.close()
        super().close()


class ArrivalClock:
    """When (Unix time) the stream reached each stream time, kept for the last few minutes."""

    def __init__(self, maxlen: int = 8192, step_s: float = 0.05):
        self._t: deque[float] = deque(maxlen=maxlen)
        self._wall: deque[float] = deque(maxlen=maxlen)
        self.step_s = step_s

    def note(self, t_s: float, wall_s: float) -> None:
        if not self._t or t_s >= self._t[-1] + self.step_s:
            self._t.append(t_s)
            self._wall.append(wall_s)

    def arrival(self, t_s: float) -> float | None:
        """Wall time of the first packet at or after `t_s` (None: not reached, or too long ago)."""
        k = bisect.bisect_left(self._t, t_s)
        return self._wall[k] if k < len(self._t) else None


def _device(spec: str) -> tuple[str, str] | None:
    """(FFmpeg input format, its input) of a `FORMAT:INPUT` device source, else None."""
    name, colon, rest = spec.partition(":")
    return (name, rest) if colon and name in DEVICE_FORMATS and not rest.startswith("//") else None


def _kind(spec: str) -> str:
    if spec == "-":
        return "pipe"
    if _device(spec) is not None:
        return "device"
    if "://" in spec or spec.startswith("/dev/"):
        return "url"
    return "file"


class LiveSource:
    """Packets of a live source in monotonic stream time (see the module docstring).

    Args:
        spec: URL, `-` or a file path.
        timeout_s: open and read timeout; a file ends after this long without growth.
        reconnects: reopen attempts per drop of a URL source (0: a drop ends the watch with an error).
        speed: read a file at this multiple of real time (None: as fast as it decodes).
        on_status: called with (topic, text) on connects, drops and timestamp resets.
    """

    def __init__(
        self,
        spec: str,
        *,
        timeout_s: float = LIVE.timeout_s,
        reconnects: int = LIVE.reconnects,
        backoff_s: float = LIVE.backoff_s,
        backoff_max_s: float = LIVE.backoff_max_s,
        speed: float | None = None,
        on_status: Callable[[str, str], None] | None = None,
    ):
        self.spec, self.kind = spec, _kind(spec)
        if self.kind == "file" and not Path(spec).is_file():
            raise StreamError(f"{spec}: no such file; give a file being written, a URL or - for stdin")
        device = _device(spec)
        if device is not None and device[0] not in av.formats_available:
            raise StreamError(
                f"{spec}: this FFmpeg (PyAV's build) has no {device[0]} input device; "
                "publish the device with the ffmpeg command instead (e.g. to udp://) and watch that"
            )
        self.timeout_s, self.reconnects, self.speed = timeout_s, reconnects, speed
        self.backoff_s, self.backoff_max_s = backoff_s, backoff_max_s
        self.on_status = on_status or (lambda topic, text: None)
        self.clock = ArrivalClock()
        self.offset_s = 0.0  # stream time = a packet's own time + offset_s
        self.last_s: float | None = None
        self.resets = self.drops = self.connects = 0
        self.has_audio = False
        self.waited_s = 0.0  # how long the last packet was waited for (waiting: the watch has caught up)
        self._yielded_at = time.monotonic()  # a drop and reconnect count as waiting too, not as lag
        self.lost = ""  # why a source that played was given up on ("" while it plays or when it ended)
        self.end_note = ""  # why it ended, when the source says so (an HLS playlist's #EXT-X-ENDLIST)
        self.playlist: Playlist | None = None  # an HLS source's playlist as last read
        self._anchor = True
        self._resume = False  # an HLS reconnect: the stream may pick up its own timeline (see _continues)
        self._delivered: dict[str, float] = {}  # stream type -> stream time of the last dts yielded
        self._replay: dict[str, float] = {}  # stream type -> skip packets up to here (played before)

    @property
    def read_timeout_s(self) -> float:
        """Seconds a read may wait: a live HLS publisher is silent up to a target duration between segments."""
        return self.timeout_s + (self.playlist.target_s if self.playlist is not None else 0.0)

    def _open_once(self) -> av.container.InputContainer:
        try:
            if self.kind == "file":
                return av.open(FollowFile(self.spec, self.timeout_s), timeout=self.timeout_s)
            if self.kind == "pipe":
                return av.open(sys.stdin.buffer, timeout=self.timeout_s)
            device = _device(self.spec)
            if device is not None:
                return av.open(device[1], format=device[0], timeout=self.timeout_s)
            if is_hls(self.spec):  # a playlist that loops is refused before FFmpeg follows it forever
                self.playlist = read_playlist(self.spec, self.timeout_s)
            return av.open(
                self.spec, timeout=(self.timeout_s, self.read_timeout_s), options=_url_options(self.spec)
            )
        except av.error.ExitError:
            raise StreamError(f"{self.spec}: no data within {self.timeout_s:g} s; {_HINT}") from None
        except (av.error.FFmpegError, OSError) as exc:
            raise StreamError(f"{self.spec}: cannot open as media ({_reason(exc)}); {_HINT}") from None

    def _open(self, first: bool) -> av.container.InputContainer:
        if first or self.reconnects <= 0:
            return self._open_once()
        retrying = Retrying(
            stop=stop_after_attempt(self.reconnects),
            wait=wait_exponential(multiplier=self.backoff_s, max=self.backoff_max_s),
            retry=retry_if_exception_type(StreamError),
            reraise=True,
            before_sleep=self._say_retry,
        )
        for attempt in retrying:
            with attempt:
                return self._open_once()
        raise AssertionError("unreachable")  # pragma: no cover - Retrying reraises

    def _say_retry(self, state: RetryCallState) -> None:
        """One line per failed reconnect attempt, with the wait before the next: the backoff is visible."""
        exc = state.outcome.exception() if state.outcome is not None else None
        why = str(exc).removeprefix(f"{self.spec}: ").split("; ")[0]
        wait_s = state.next_action.sleep if state.next_action is not None else 0.0
        self.on_status(
            "retry",
            f"reconnect attempt {state.attempt_number} of {self.reconnects} failed ({why}); "
            f"next in {wait_s:.1f} s",
        )

    def packets(self) -> Iterator[tuple[av.Packet, float]]:
        """(packet, stream time of its pts) until the source ends; reconnects on drops (URL sources)."""
        first = True
        while True:
            try:
                container = self._open(first)
            except StreamError as exc:
                if first:
                    raise
                self.lost = f"source lost after {self.reconnects} reconnect attempts ({exc})"
                self.on_status("lost", self.lost)
                return
            streams = self._streams(container, first)
            self._resume = not first and is_hls(self.spec)
            first, reason = False, "ended"
            self.connects += 1
            self._anchor = True
            self.on_status("connected", f"connected to {self.spec}" + (" again" if self.connects > 1 else ""))
            try:
                yield from self._demux(container, streams)
            except av.error.ExitError:
                reason = f"no data for {self.read_timeout_s:g} s"
            except av.error.FFmpegError as exc:
                reason = _reason(exc)
            finally:
                container.close()
            if self._ended(reason):
                return
            self.drops += 1
            if self.reconnects <= 0:
                self.lost = f"source lost ({reason}); pass --reconnects N to reconnect"
                self.on_status("lost", self.lost)
                return
            self.on_status("dropped", f"source lost ({reason}); reconnecting")

    def _ended(self, reason: str) -> bool:
        """Whether the source is over (else it dropped: reconnect). Over HTTP an end is the end (replaying a
        file would loop), except a live HLS playlist's (see `_hls_ended`)."""
        if self.kind != "url":
            return True
        if is_hls(self.spec) and self.playlist is not None:
            return self._hls_ended(stalled=reason != "ended")
        return reason == "ended" and self.spec.startswith(("http://", "https://"))

    def _hls_ended(self, stalled: bool) -> bool:
        """An HLS source is over when its playlist ended, or stopped growing (a dead publisher, or one that
        replays the same segments: FFmpeg re-read it for the whole read timeout). A playlist that cannot be
        read any more (a dead server), or that grows while FFmpeg gave up on it, is a drop."""
        before, after = self.playlist, read_playlist(self.spec, self.timeout_s)
        if before is None or after is None:
            return before is None
        self.playlist = after
        if after.ended:
            self.end_note = "the playlist ended (#EXT-X-ENDLIST)"
            return True
        if stalled or after.position == before.position:
            self.lost = (
                f"the playlist stopped growing (no new segment after {after.position[1]} listed within "
                f"{self.read_timeout_s:g} s): the publisher stopped, or it replays the same segments"
            )
            self.on_status("lost", self.lost)
            return True
        return False

    def _streams(self, container: av.container.InputContainer, first: bool) -> list[Any]:
        video = next(iter(container.streams.video), None)
        if video is None:
            container.close()
            raise StreamError(f"{self.spec}: no video stream; watch needs a stream with pictures")
        audio = next(iter(container.streams.audio), None)
        self.has_audio = audio is not None
        if audio is None and first:
            log.info("%s has no audio: no speech alerts or loudness", self.spec)
        return [video] + ([audio] if audio is not None else [])

    def _demux(
        self, container: av.container.InputContainer, streams: list[Any]
    ) -> Iterator[tuple[av.Packet, float]]:
        start_wall, resumed = time.monotonic(), self._yielded_at
        start_t: float | None = None
        for packet in container.demux(streams):
            self.waited_s = time.monotonic() - resumed
            stamp = packet.pts if packet.pts is not None else packet.dts
            if stamp is None or packet.time_base is None:
                continue  # a flush packet
            if self._anchor and packet.stream.type != "video":
                continue  # stream time counts from the first picture
            raw_s = float(stamp * packet.time_base)
            if self._anchor and self._continues(raw_s):
                self._anchor, self._replay = False, dict(self._delivered)
            if self._replay and self._replayed(packet):
                continue
            t = self._stream_time(raw_s)
            self._note_delivered(packet, t)
            if self.speed and self.kind == "file":
                start_t = t if start_t is None else start_t
                ahead = (t - start_t) / self.speed - (time.monotonic() - start_wall)
                if ahead > 0:
                    time.sleep(ahead)
                    self.waited_s += ahead
            self.clock.note(t, time.time())
            yield packet, t
            resumed = self._yielded_at = time.monotonic()

    def _continues(self, raw_s: float) -> bool:
        """After an HLS reconnect: whether the first picture is on the stream's own timeline, up to the few
        segments FFmpeg plays again behind where the watch was (then the offset is kept, nothing re-anchored)."""
        if not self._resume or self.last_s is None or self.playlist is None:
            return False
        back_s = REPLAY_SEGMENTS * max(self.playlist.target_s, 1.0)
        return -back_s <= raw_s + self.offset_s - self.last_s <= JUMP_AHEAD_S

    def _dts_s(self, packet: av.Packet) -> float:
        stamp = packet.dts if packet.dts is not None else packet.pts
        return float(stamp * packet.time_base) + self.offset_s

    def _replayed(self, packet: av.Packet) -> bool:
        """A packet yielded before the reconnect (by decode time, per stream type); the first that was not
        ends the replay for its type."""
        kind = packet.stream.type
        if kind in self._replay and self._dts_s(packet) <= self._replay[kind] + 1e-6:
            return True
        self._replay.pop(kind, None)
        return False

    def _note_delivered(self, packet: av.Packet, t: float) -> None:
        kind = packet.stream.type
        self._delivered[kind] = max(self._delivered.get(kind, t), self._dts_s(packet))

    def _stream_time(self, raw_s: float) -> float:
        if self._anchor:
            self._anchor = False
            self.offset_s = (0.0 if self.last_s is None else self.last_s + GAP_S) - raw_s
        t = raw_s + self.offset_s
        if self.last_s is not None and not (-JUMP_BACK_S <= t - self.last_s <= JUMP_AHEAD_S):
            self.resets += 1
            self.offset_s = self.last_s + GAP_S - raw_s
            t = raw_s + self.offset_s
            self.on_status("timestamps", f"timestamps jumped; stream time goes on at {t:.2f} s")
        self.last_s = t if self.last_s is None else max(self.last_s, t)
        return t


def _url_options(url: str) -> dict[str, str]:
    # Probing stops after a second of data: an open that outlives the timeout is interrupted, and an
    # interrupted UDP reader thread never reads again.
    probe = {"analyzeduration": str(int(PROBE_S * 1e6)), "probesize": "1000000"}
    if url.startswith("udp://"):
        return probe | {"overrun_nonfatal": "1", "fifo_size": "1000000"}
    if url.startswith("rtsp://"):
        return probe | {"rtsp_transport": "tcp"}
    return probe


def _reason(exc: BaseException) -> str:
    return " ".join(str(exc).split())[:160] or type(exc).__name__
