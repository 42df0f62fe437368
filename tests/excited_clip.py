"""The highlight acceptance clip: calm speech, one stretch of loud, high-pitched, fast speech over applause.

    from tests.excited_clip import excited_clip
    clip = excited_clip()            # cached mp4 (built once per version of this file, ~3 s)
    clip.path, clip.excited_s        # (26.0, 36.0): where the excitement is

60 s, H.264 `testsrc2` picture (the same busy pattern throughout, so the picture does not point at the
stretch) + AAC audio. Calm speech: espeak-ng at 130 words/min, pitch 30, amplitude 35. The excited stretch:
240 words/min, pitch 90, amplitude 190, with SSML pitch range raised, mixed with applause-like noise (a dense
Poisson train of short decaying white-noise claps). Sentences are spoken whole (espeak-ng), so word times are
not known here; tests/speechgen.py is the word-exact generator.

`python -m tests.excited_clip OUT.mp4` writes a copy.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import subprocess
import tempfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from tests.speechgen import ESPEAK, RATE, SILENCE_LEVEL, _read_wav, _write_wav
from tests.videogen import _ffmpeg

DURATION_S = 60.0
EXCITED_S = (26.0, 36.0)
CACHE_ROOT = Path(os.environ.get("GA_TINY_MODELS_CACHE", Path.home() / ".cache" / "grounding-agent"))
SENTENCE_GAP_S = 0.6

CALM_LINES = (
    "today we will look at the quarterly numbers together",
    "the first slide shows the budget for the coming year",
    "most of the items are the same as last time",
    "please keep your questions until the end of the talk",
    "the second part covers the plan for the new office",
    "we expect the move to take about three weeks",
    "there is coffee in the kitchen on the second floor",
    "let us now go through the remaining details slowly",
    "thank you all for listening so patiently this morning",
)
EXCITED_LINES = (
    "yes we did it we won the final",
    "incredible what a goal unbelievable",
    "look at that go go go",
    "amazing absolutely amazing everybody up",
    "we are the champions again",
)


@dataclass(frozen=True)
class Voice:
    speed_wpm: int
    pitch: int
    amplitude: int
    pitch_range: str = "medium"  # SSML prosody range


CALM = Voice(speed_wpm=130, pitch=30, amplitude=35, pitch_range="x-low")
EXCITED = Voice(speed_wpm=240, pitch=90, amplitude=190, pitch_range="x-high")


@dataclass(frozen=True)
class ExcitedClip:
    path: Path
    duration_s: float = DURATION_S
    excited_s: tuple[float, float] = EXCITED_S


def speak(text: str, voice: Voice, work: Path) -> np.ndarray:
    """One sentence at RATE with espeak-ng, leading/trailing silence trimmed."""
    out = work / "line.wav"
    ssml = f'<speak><prosody range="{voice.pitch_range}">{text}</prosody></speak>'
    cmd = [ESPEAK, "-m", "-v", "en-us", "-s", str(voice.speed_wpm), "-p", str(voice.pitch)]
    subprocess.run([*cmd, "-a", str(voice.amplitude), "-w", str(out), ssml], check=True, capture_output=True)
    samples = _read_wav(out)
    loud = np.flatnonzero(np.abs(samples) > SILENCE_LEVEL)
    return samples[loud[0] : loud[-1] + 1] if len(loud) else samples[:0]


def lay_lines(
    track: np.ndarray, lines: tuple[str, ...], voice: Voice, span_s: tuple[float, float], work: Path
):
    """Speak `lines` one after another from span start, cycling, while they fit before span end."""
    t, i = span_s[0], 0
    while True:
        samples = speak(lines[i % len(lines)], voice, work)
        at, end = round(t * RATE), round(t * RATE) + len(samples)
        if end > span_s[1] * RATE:
            return
        track[at:end] += samples
        t, i = end / RATE + SENTENCE_GAP_S, i + 1


def applause(
    duration_s: float, *, claps_per_s: float = 120.0, rms: float = 0.12, seed: int = 0
) -> np.ndarray:
    """Applause-like noise: many short decaying white-noise claps at random times (broadband, flat)."""
    rng = np.random.default_rng(seed)
    n = int(duration_s * RATE)
    impulses = np.zeros(n, np.float32)
    count = rng.poisson(claps_per_s * duration_s)
    impulses[rng.integers(0, n, count)] = rng.uniform(0.3, 1.0, count)
    clap = rng.standard_normal(int(0.012 * RATE)) * np.exp(-np.arange(int(0.012 * RATE)) / (0.003 * RATE))
    noise = np.convolve(impulses, clap)[:n]
    ramp = np.minimum(1.0, np.minimum(np.arange(n), n - np.arange(n)) / (0.3 * RATE))  # no click at the edges
    noise *= ramp
    return (noise * rms / max(float(np.sqrt((noise**2).mean())), 1e-9)).astype(np.float32)


def make_excited_clip(path: str | Path) -> ExcitedClip:
    """Write the acceptance clip to `path` (overwritten)."""
    path = Path(path)
    track = np.zeros(int(DURATION_S * RATE), np.float32)
    a, b = EXCITED_S
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        lay_lines(track, CALM_LINES, CALM, (0.5, a - 0.5), work)
        lay_lines(track, EXCITED_LINES, EXCITED, (a + 0.2, b - 0.2), work)
        lay_lines(track, CALM_LINES[3:] + CALM_LINES[:3], CALM, (b + 0.5, DURATION_S - 0.5), work)
        track[round(a * RATE) : round(b * RATE)] += applause(b - a)
        wav = work / "track.wav"
        _write_wav(wav, track)
        args = ["-f", "lavfi", "-i", f"testsrc2=size=128x72:rate=5:duration={DURATION_S}", "-i", str(wav)]
        args += ["-c:v", "libx264", "-preset", "ultrafast", "-pix_fmt", "yuv420p", "-threads", "1"]
        args += ["-c:a", "aac", "-b:a", "64k", "-t", str(DURATION_S), "-movflags", "+faststart", str(path)]
        _ffmpeg(*args)
    return ExcitedClip(path)


def excited_clip(cache_root: str | Path | None = None) -> ExcitedClip:
    """The acceptance clip, built once per version of this file under `cache_root` (atomic rename)."""
    root = Path(cache_root) if cache_root is not None else CACHE_ROOT
    digest = hashlib.sha256(Path(__file__).read_bytes() + Path(ESPEAK).name.encode()).hexdigest()[:12]
    final = root / f"excited-clip-{digest}.mp4"
    if not final.is_file():
        root.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix=f".{final.stem}.", suffix=".mp4", dir=root)
        os.close(fd)
        try:
            make_excited_clip(tmp)
            os.replace(tmp, final)
        finally:
            Path(tmp).unlink(missing_ok=True)
    return ExcitedClip(final)


def main(argv: list[str] | None = None) -> int:
    import sys

    out = Path((argv if argv is not None else sys.argv[1:])[0])
    out.parent.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(excited_clip().path, out)
    print(f"{out}: {DURATION_S:g} s, excited stretch {EXCITED_S[0]:g}-{EXCITED_S[1]:g} s")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
