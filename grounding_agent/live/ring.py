"""The ring recording: the source's packets remuxed (no re-encoding) into short MPEG-TS segments on disk,
the oldest deleted once they fall `keep_s` behind, so any moment of the last `keep_s` can still be cut.

    ring = RingRecorder(out / "ring", keep_s=600, segment_s=2)
    ring.add(packet, t_s)                        # after the packet was decoded (its times are rewritten)
    ring.cut(95.0, 103.0, out / "clip.mp4")      # frame-exact, re-encoded, from the segments on disk

A segment starts at a video keyframe, so each decodes alone. Packet times are rewritten to stream time
(plus `BASE_S`, so that no time is negative), so a cut is a seek in stream time. A reconnect (new input
streams) starts a new segment. `index.jsonl` is not kept: the segment list lives in memory.
"""

from __future__ import annotations

import logging
import shutil
import subprocess
import tempfile
from collections import deque
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path
from typing import Any

import av

from grounding_agent.defaults import LIVE
from grounding_agent.errors import OutputError, StreamError

__all__ = ["RingRecorder", "Segment"]

log = logging.getLogger(__name__)

BASE_S = 10.0  # added to stream time in the segments: decoders see no negative timestamps
CLIP_CRF = "12"  # near-lossless: a clip's frames match the source's


@dataclass
class Segment:
    path: Path
    start_s: float  # stream time of its first video packet
    end_s: float  # stream time of the last packet written (grows while it is open)


class RingRecorder:
    """Segments of the last `keep_s` seconds (see the module docstring)."""

    def __init__(self, folder: str | Path, *, keep_s: float = LIVE.keep_s, segment_s: float = LIVE.segment_s):
        self.folder = Path(folder)
        self.folder.mkdir(parents=True, exist_ok=True)
        self.keep_s, self.segment_s = keep_s, segment_s
        self.segments: deque[Segment] = deque()  # closed ones
        self.current: Segment | None = None
        self._out: Any = None
        self._map: dict[Any, Any] = {}  # input stream -> output stream of the open segment
        self._count = 0
        self.deleted = 0

    @property
    def closed_until_s(self) -> float:
        """Everything before this stream time is in closed segments."""
        return self.segments[-1].end_s if self.segments else 0.0

    def bytes_on_disk(self) -> int:
        return sum(p.stat().st_size for p in self.folder.glob("seg-*.ts") if p.is_file())

    def add(self, packet: av.Packet, t_s: float) -> None:
        """Remux one packet whose pts is at stream time `t_s` (call after decoding it: times are rewritten)."""
        stream = packet.stream
        is_video = stream.type == "video"
        new_streams = stream not in self._map and self.current is not None
        if (
            self.current is None
            or new_streams
            or (is_video and packet.is_keyframe and t_s - self.current.start_s >= self.segment_s)
        ):
            if not is_video or not packet.is_keyframe:
                if self.current is None or new_streams:
                    self._close()
                    return  # wait for a keyframe: a segment must decode alone
            else:
                self._open(packet.stream.container, t_s)
        out_stream = self._map.get(stream)
        if out_stream is None:
            return
        shift = round((t_s + BASE_S - float(packet.pts * packet.time_base)) / packet.time_base)
        packet.pts += shift
        if packet.dts is not None:
            packet.dts += shift
        packet.stream = out_stream
        try:
            self._out.mux(packet)
        except av.error.FFmpegError as exc:  # a packet the muxer refuses (out of order): skip it
            log.debug("ring: packet at %.2f s skipped (%s)", t_s, exc)
        self.current.end_s = max(self.current.end_s, t_s)

    def _open(self, container: Any, t_s: float) -> None:
        self._close()
        self._count += 1
        path = self.folder / f"seg-{self._count:06d}.ts"
        try:
            self._out = av.open(str(path), "w", format="mpegts")
        except OSError as exc:
            raise OutputError(
                f"cannot write the ring recording in {self.folder} ({exc}); pass another --out"
            ) from None
        self._map = {}
        for stream in (next(iter(container.streams.video), None), next(iter(container.streams.audio), None)):
            if stream is not None:
                self._map[stream] = self._out.add_stream_from_template(stream)
        self.current = Segment(path, t_s, t_s)

    def _close(self) -> None:
        if self._out is not None:
            self._out.close()
            self._out = None
        if self.current is not None:
            self.segments.append(self.current)
            self.current = None
        self._map = {}
        while self.segments and self.segments[-1].end_s - self.segments[0].end_s > self.keep_s:
            old = self.segments.popleft()
            old.path.unlink(missing_ok=True)
            self.deleted += 1

    def close(self) -> None:
        self._close()

    def cut(self, start_s: float, end_s: float, out: str | Path) -> Path:
        """[start_s, end_s) of stream time as an mp4 (H.264 CRF 12 + AAC), from the closed segments.

        Raises:
            StreamError: the span is no longer (or not yet) in the ring.
        """
        parts = [s for s in self.segments if s.end_s >= start_s and s.start_s < end_s]
        if not parts or parts[0].start_s > start_s + 0.5 or self.closed_until_s < end_s - 0.5:
            raise StreamError(f"{start_s:.2f}-{end_s:.2f} s is not in the ring recording (kept: --keep-s)")
        out = Path(out)
        with tempfile.TemporaryDirectory(dir=out.parent) as tmp:
            listing = Path(tmp) / "list.txt"
            listing.write_text("".join(f"file '{p.path.resolve()}'\n" for p in parts), encoding="utf-8")
            first = _first_time_s(parts[0].path)
            rate = _frame_rate(parts[0].path)
            frames = max(1, round((end_s - start_s) * rate))
            tmp_out = Path(tmp) / out.name
            cmd = [shutil.which("ffmpeg") or "ffmpeg", "-nostdin", "-v", "error", "-y", "-f", "concat"]
            cmd += ["-safe", "0", "-i", str(listing), "-ss", f"{start_s + BASE_S - first:.6f}"]
            cmd += [
                "-frames:v",
                str(frames),
                "-t",
                f"{frames / rate:.6f}",
                "-c:v",
                "libx264",
                "-crf",
                CLIP_CRF,
            ]
            cmd += ["-preset", "veryfast", "-pix_fmt", "yuv420p", "-c:a", "aac", "-movflags", "+faststart"]
            proc = subprocess.run([*cmd, str(tmp_out)], capture_output=True, text=True, check=False)
            if proc.returncode != 0 or not tmp_out.is_file():
                last = (proc.stderr.strip().splitlines() or ["no output"])[-1][:200]
                raise StreamError(f"cutting {start_s:.2f}-{end_s:.2f} s from the ring failed ({last})")
            tmp_out.replace(out)
        return out

    def snapshot(self, out: str | Path) -> tuple[Path, float]:
        """The closed segments joined (no re-encoding) into one mp4, and the stream time its 0 s shows (a
        player on what was recorded so far)."""
        parts = [s for s in list(self.segments) if s.path.is_file()]
        if not parts:
            raise StreamError("nothing is recorded yet; wait for the first segment (--segment-s)")
        out = Path(out)
        with tempfile.TemporaryDirectory(dir=out.parent) as tmp:
            listing = Path(tmp) / "list.txt"
            listing.write_text("".join(f"file '{p.path.resolve()}'\n" for p in parts), encoding="utf-8")
            tmp_out = Path(tmp) / out.name
            cmd = [
                shutil.which("ffmpeg") or "ffmpeg",
                "-nostdin",
                "-v",
                "error",
                "-y",
                "-f",
                "concat",
                "-safe",
            ]
            cmd += ["0", "-i", str(listing), "-c", "copy", "-movflags", "+faststart", str(tmp_out)]
            proc = subprocess.run(cmd, capture_output=True, text=True, check=False)
            if proc.returncode != 0 or not tmp_out.is_file():  # e.g. a segment deleted meanwhile: try again
                last = (proc.stderr.strip().splitlines() or ["no output"])[-1][:200]
                raise StreamError(f"joining the ring recording failed ({last}); try again")
            tmp_out.replace(out)
        return out, parts[0].start_s


def _first_time_s(path: Path) -> float:
    """The earliest timestamp in a segment (the concat demuxer's zero for it)."""
    with av.open(str(path)) as c:
        return float(c.start_time / av.time_base) if c.start_time is not None else BASE_S


def _frame_rate(path: Path) -> float:
    with av.open(str(path)) as c:
        rate = c.streams.video[0].average_rate or c.streams.video[0].guessed_rate or Fraction(25)
        return float(rate)
