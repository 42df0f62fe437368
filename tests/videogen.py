"""Tiny synthetic videos for tests (ffmpeg lavfi `testsrc2` / `sine`) and byte surgery to break them.

Every helper writes to the path it is given and returns it; files are a few KB and take well under a
second to make. Reuse them from any test:

    from tests.videogen import make_video, truncate
    clip = make_video(tmp_path / "a.mp4", duration_s=2, fps=10)
"""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

FFMPEG = shutil.which("ffmpeg") or "ffmpeg"


def _ffmpeg(*args: str) -> None:
    cmd = [FFMPEG, "-nostdin", "-hide_banner", "-loglevel", "error", "-y", *args]
    proc = subprocess.run(cmd, check=False, capture_output=True, text=True)
    if proc.returncode != 0:
        raise RuntimeError(f"ffmpeg failed ({proc.returncode}): {' '.join(cmd)}\n{proc.stderr}")


def make_video(
    path: str | Path,
    *,
    duration_s: float = 2.0,
    fps: float = 10.0,
    size: tuple[int, int] = (160, 120),
    codec: str = "libx264",
    gop: int | None = None,
    audio: bool = False,
    vfr: bool = False,
    faststart: bool = True,
    extra: tuple[str, ...] = (),
) -> Path:
    """Encode a `testsrc2` clip; the container follows the suffix (.mp4, .mkv, .avi, ...).

    Args:
        size: (width, height).
        gop: keyframe interval in frames (`-g`); None keeps the encoder default.
        vfr: variable frame rate: the first half of the duration at `fps`, the second half at 3*fps, so
            the real timestamps differ from index / average-fps.
        faststart: mp4 only: put the `moov` index before the media data.
        extra: more ffmpeg output options, placed before the path.
    """
    path = Path(path)
    w, h = size
    src_fps = fps * 3 if vfr else fps
    args = ["-f", "lavfi", "-i", f"testsrc2=size={w}x{h}:rate={src_fps}:duration={duration_s}"]
    if audio:
        args += ["-f", "lavfi", "-i", f"sine=frequency=440:sample_rate=16000:duration={duration_s}"]
    args += ["-c:v", codec]
    if codec in ("libx264", "libx265"):
        args += ["-preset", "ultrafast", "-pix_fmt", "yuv420p"]
    if gop is not None:
        args += ["-g", str(gop)]
    if vfr:
        # Source at 3*fps; keep every 3rd frame in the first half: fps there, 3*fps after.
        keep = f"if(lt(t,{duration_s / 2}),not(mod(n,3)),1)"
        args += ["-vf", f"select='{keep}'", "-fps_mode", "vfr"]
    if audio:
        args += ["-c:a", "aac", "-shortest"]
    if path.suffix == ".mp4" and faststart:
        args += ["-movflags", "+faststart"]
    _ffmpeg(*args, *extra, str(path))
    return path


def make_audio_only(path: str | Path, *, duration_s: float = 1.0) -> Path:
    """An audio-only file (sine tone); .m4a/.mp4 get AAC, .wav PCM."""
    path = Path(path)
    codec = ["-c:a", "pcm_s16le"] if path.suffix == ".wav" else ["-c:a", "aac"]
    _ffmpeg(
        "-f", "lavfi", "-i", f"sine=frequency=440:sample_rate=16000:duration={duration_s}", *codec, str(path)
    )
    return path


def truncate(src: str | Path, dst: str | Path, *, fraction: float = 0.5) -> Path:
    """Copy the first `fraction` of `src`'s bytes to `dst` (an interrupted download)."""
    data = Path(src).read_bytes()
    Path(dst).write_bytes(data[: int(len(data) * fraction)])
    return Path(dst)


def corrupt_middle(
    src: str | Path, dst: str | Path, *, start_fraction: float = 0.4, n_bytes: int = 4096
) -> Path:
    """Copy `src` to `dst`, overwriting `n_bytes` from `start_fraction` of the file with a fixed junk pattern.

    The container index stays intact, so the file opens; frames in the damaged region fail to decode.
    """
    data = bytearray(Path(src).read_bytes())
    at = int(len(data) * start_fraction)
    junk = bytes((i * 151 + 7) % 256 for i in range(n_bytes))
    data[at : at + n_bytes] = junk[: len(data) - at]
    Path(dst).write_bytes(bytes(data))
    return Path(dst)


def replace_bytes(src: str | Path, dst: str | Path, old: bytes, new: bytes) -> Path:
    """Copy `src` to `dst` with every `old` replaced by `new` (same length), e.g. forging a codec fourcc."""
    if len(old) != len(new):
        raise ValueError("byte surgery must keep the length")
    data = Path(src).read_bytes()
    if old not in data:
        raise ValueError(f"{old!r} not found in {src}")
    Path(dst).write_bytes(data.replace(old, new))
    return Path(dst)


def write_garbage(path: str | Path, *, n_bytes: int = 20_000, text: bool = False) -> Path:
    """A file that is not a video: deterministic pseudo-random bytes, or plain text."""
    path = Path(path)
    if text:
        path.write_text("this is not a video\n" * (n_bytes // 20))
    else:
        path.write_bytes(bytes((i * 2654435761 >> 13) % 256 for i in range(n_bytes)))
    return path


def make_edit_video(
    path: str | Path,
    *,
    duration_s: float = 12.0,
    fps: str | float = 25,
    size: tuple[int, int] = (160, 120),
    loud_spans: tuple[tuple[float, float], ...] = ((0.0, 2.0), (4.0, 8.0), (10.0, 12.0)),
    colours: tuple[tuple[float, str], ...] = ((0.0, "red"), (4.0, "green"), (8.0, "blue")),
    gop: int | None = None,
    bframes: int | None = None,
    audio: bool = True,
) -> Path:
    """A clip with known events for editing tests: solid colours switching at known times (`colours`:
    (start_s, colour) in order) and a 440 Hz tone exactly inside `loud_spans` (digital silence elsewhere,
    sample-exact via `aevalsrc`). `fps` may be a fraction such as "30000/1001"; `gop` / `bframes` set the
    keyframe interval and B-frames of libx264."""
    path = Path(path)
    w, h = size
    ends = [start for start, _ in colours[1:]] + [duration_s]
    args: list[str] = []
    for (start, colour), end in zip(colours, ends):
        args += ["-f", "lavfi", "-i", f"color=c={colour}:s={w}x{h}:r={fps}:d={end - start}"]
    n = len(colours)
    graph = "".join(f"[{i}:v]" for i in range(n)) + f"concat=n={n}:v=1:a=0[v]"
    if audio:
        loud = "+".join(f"between(t,{a},{b - 1e-9})" for a, b in loud_spans) or "0"
        args += ["-f", "lavfi", "-i", f"aevalsrc='if({loud},0.5*sin(2*PI*440*t),0)':s=16000:d={duration_s}"]
    args += ["-filter_complex", graph, "-map", "[v]"]
    if audio:
        args += ["-map", f"{n}:a", "-c:a", "aac", "-b:a", "64k"]
    args += ["-c:v", "libx264", "-preset", "ultrafast", "-pix_fmt", "yuv420p"]
    if gop is not None:
        args += ["-g", str(gop), "-keyint_min", str(gop), "-sc_threshold", "0"]
    if bframes is not None:
        args += ["-bf", str(bframes)]
    if path.suffix == ".mp4":
        args += ["-movflags", "+faststart"]
    _ffmpeg(*args, str(path))
    return path
