"""Live test streams: an MPEG-TS with espeak-ng speech and drawtext slides at known times, and publishers
on 127.0.0.1 (ffmpeg at real speed over UDP or TCP, a local HTTP server for HLS, a live HLS playlist that
grows in real time and can pause, a file that grows).

    stream = make_stream(tmp / "live.ts")            # LiveStream(path, phrases, slides)
    pub = publish_udp(stream.path, port)             # ffmpeg -re ... -f mpegts udp://127.0.0.1:port
"""

from __future__ import annotations

import functools
import http.server
import shutil
import socket
import subprocess
import threading
import time
from dataclasses import dataclass
from pathlib import Path

from tests.speechgen import Spoken, Utterance, make_talking_video
from tests.videogen import _ffmpeg

FFMPEG = shutil.which("ffmpeg") or "ffmpeg"
RATE = 25
PHRASES = [
    Utterance("good morning and welcome everyone", 1.0),
    Utterance("use the discount code now", 5.5),
    Utterance("the weather today is sunny", 10.0),
    Utterance("my favourite colour is blue", 15.5),
    Utterance("let's go to the park", 20.0),
]
SLIDES = [("Introduction", 0.0, 8.0), ("Quarterly Results", 8.0, 16.0), ("Thank You", 16.0, 24.0)]
DURATION_S = 24.0


@dataclass(frozen=True)
class LiveStream:
    path: Path
    phrases: tuple[Spoken, ...]
    slides: tuple[tuple[str, float, float], ...]
    duration_s: float


def make_stream(path: Path) -> LiveStream:
    """A 24-s MPEG-TS (H.264 25 fps, a keyframe each second, AAC): speech, slide titles on white, a marker."""
    talk = make_talking_video(path.with_suffix(".talk.mp4"), PHRASES, duration_s=DURATION_S)
    draw = ",".join(
        f"drawtext=text='{text}':fontsize=32:fontcolor=black:x=20:y=70:enable='between(t,{a},{b - 0.001})'"
        for text, a, b in SLIDES
    )
    # A 4x4 marker moving 4 px a frame tells frames apart (too small to count as a change of slide for OCR).
    draw += ",drawtext=text='|':fontsize=8:fontcolor=black:x='mod(n*4,312)':y=170"
    _ffmpeg("-f", "lavfi", "-i", f"color=c=white:s=320x180:r={RATE}:d={DURATION_S}", "-i", str(talk.path),
            "-map", "0:v", "-map", "1:a", "-vf", draw, "-c:v", "libx264", "-preset", "ultrafast", "-g", str(RATE),
            "-pix_fmt", "yuv420p", "-threads", "1", "-c:a", "copy", "-f", "mpegts", str(path))  # fmt: skip
    return LiveStream(path, talk.utterances, tuple(SLIDES), DURATION_S)


def free_port(kind: int = socket.SOCK_DGRAM) -> int:
    with socket.socket(socket.AF_INET, kind) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def publish_udp(
    path: Path, port: int, *, start_s: float = 0.0, duration_s: float | None = None
) -> subprocess.Popen:
    """ffmpeg reading `path` at real speed (from `start_s`), sending MPEG-TS to udp://127.0.0.1:port."""
    cmd = [FFMPEG, "-nostdin", "-v", "error", "-re", "-ss", str(start_s), "-i", str(path)]
    cmd += ["-t", str(duration_s)] if duration_s else []
    cmd += ["-c", "copy", "-f", "mpegts", f"udp://127.0.0.1:{port}?pkt_size=1316"]
    return subprocess.Popen(cmd)


def publish_tcp(
    path: Path, port: int, *, start_s: float = 0.0, duration_s: float | None = None
) -> subprocess.Popen:
    """ffmpeg reading `path` at real speed (from `start_s`), serving MPEG-TS on tcp://127.0.0.1:port to one
    client (`?listen=1`: the watch connects to it; killing this process closes the connection)."""
    cmd = [FFMPEG, "-nostdin", "-v", "error", "-re", "-ss", str(start_s), "-i", str(path)]
    cmd += ["-t", str(duration_s)] if duration_s else []
    cmd += ["-c", "copy", "-f", "mpegts", f"tcp://127.0.0.1:{port}?listen=1"]
    return subprocess.Popen(cmd)


def make_hls(path: Path, folder: Path) -> Path:
    """An HLS rendition (2-s segments) of `path` in `folder`; returns the playlist."""
    folder.mkdir(parents=True, exist_ok=True)
    _ffmpeg("-i", str(path), "-c", "copy", "-f", "hls", "-hls_time", "2", "-hls_list_size", "0",
            str(folder / "live.m3u8"))  # fmt: skip
    return folder / "live.m3u8"


class _Quiet(http.server.SimpleHTTPRequestHandler):
    def log_message(self, *args: object) -> None:
        pass


def serve_folder(folder: Path, port: int = 0) -> tuple[http.server.ThreadingHTTPServer, int]:
    """A local HTTP server for `folder` in a daemon thread (on `port`: a server restarted where it was; 0:
    any free port); call `.shutdown()` when done (and `.server_close()` to refuse connections at once)."""
    server = http.server.ThreadingHTTPServer(
        ("127.0.0.1", port), functools.partial(_Quiet, directory=str(folder))
    )
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return server, server.server_address[1]


def grow_file(src: Path, dst: Path, *, seconds: float, chunks: int = 20) -> threading.Thread:
    """Copy `src` to `dst` in `chunks` appends over `seconds` (a file being written), in a thread."""
    data = src.read_bytes()
    dst.write_bytes(b"")
    step = -(-len(data) // chunks)

    def write() -> None:
        with dst.open("ab") as f:
            for k in range(0, len(data), step):
                f.write(data[k : k + step])
                f.flush()
                time.sleep(seconds / chunks)

    thread = threading.Thread(target=write, daemon=True)
    thread.start()
    return thread


class LiveHls:
    """A live HLS playlist in `folder` (served by `serve_folder`): the segments of `make_hls(path, ...)` are
    published one per segment duration, in real time, with no `#EXT-X-ENDLIST` until the last; after
    `pause_after` segments, publishing stops for `pause_s` seconds (a stalled publisher), then goes on.

        hls = LiveHls(stream.path, tmp / "served", pause_after=5, pause_s=4.0)
        hls.start(); ...; hls.join()       # hls.resumed_at: wall time (monotonic) publishing went on
    """

    def __init__(self, path: Path, folder: Path, *, pause_after: int | None = None, pause_s: float = 0.0):
        source = make_hls(path, folder.parent / (folder.name + "-all"))
        self.segments = [ln for ln in source.read_text().splitlines() if ln and not ln.startswith("#")]
        self.durations = [float(ln.split(":")[1].rstrip(",")) for ln in source.read_text().splitlines()
                          if ln.startswith("#EXTINF")]  # fmt: skip
        self.source, self.folder = source.parent, folder
        self.pause_after, self.pause_s = pause_after, pause_s
        self.paused_at: float | None = None
        self.resumed_at: float | None = None
        folder.mkdir(parents=True, exist_ok=True)
        self._publish(1)  # a playlist with its first segment: something to open
        self._thread = threading.Thread(target=self._run, daemon=True)

    def start(self) -> None:
        self._thread.start()

    def join(self, timeout_s: float | None = None) -> None:
        self._thread.join(timeout_s)

    def _run(self) -> None:
        for k in range(1, len(self.segments)):
            time.sleep(self.durations[k - 1])
            if k == self.pause_after:
                self.paused_at = time.monotonic()
                time.sleep(self.pause_s)
                self.resumed_at = time.monotonic()
            self._publish(k + 1)

    def _publish(self, count: int) -> None:
        for name in self.segments[:count]:
            if not (self.folder / name).exists():
                shutil.copyfile(self.source / name, self.folder / name)
        target = f"#EXT-X-TARGETDURATION:{-int(-max(self.durations) // 1)}"
        lines = ["#EXTM3U", "#EXT-X-VERSION:3", target, "#EXT-X-MEDIA-SEQUENCE:0"]
        for name, duration in zip(self.segments[:count], self.durations, strict=False):
            lines += [f"#EXTINF:{duration:.6f},", name]
        lines += ["#EXT-X-ENDLIST"] if count == len(self.segments) else []
        tmp = self.folder / "live.m3u8.tmp"
        tmp.write_text("\n".join(lines) + "\n")
        tmp.replace(self.folder / "live.m3u8")  # readers never see half a playlist


def wait_listening(port: int, timeout_s: float = 10.0) -> None:
    """Wait until a TCP socket listens on 127.0.0.1:port, read from /proc/net/tcp: connecting to find out
    would take the one connection an `?listen=1` publisher accepts."""
    want = f"0100007F:{port:04X}"
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        rows = [line.split() for line in Path("/proc/net/tcp").read_text().splitlines()[1:]]
        if any(row[1] == want and row[3] == "0A" for row in rows):  # 0A: LISTEN
            return
        time.sleep(0.02)
    raise TimeoutError(f"nothing listens on 127.0.0.1:{port} after {timeout_s:g} s")
