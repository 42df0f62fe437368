"""Talking test videos: espeak-ng speech at known times (word-exact), optional noise or music under it.

Each word is synthesized on its own (espeak-ng), its leading/trailing silence trimmed, and the words are
laid end to end with a short gap, so every word's start and end time in the file is known to the sample.
ffmpeg muxes the track with a `testsrc2` picture (and mixes noise or music in when asked).

    from tests.speechgen import Utterance, make_talking_video
    clip = make_talking_video(tmp_path / "a.mp4", [Utterance("let's go now", at_s=1.0)], duration_s=5)
    clip.utterances[0].start_s, clip.utterances[0].words[0]  # known truth
"""

from __future__ import annotations

import shutil
import subprocess
import tempfile
import wave
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from tests.videogen import _ffmpeg

ESPEAK = shutil.which("espeak-ng") or "espeak-ng"
RATE = 22_050  # espeak-ng's output rate
WORD_GAP_S = 0.07
SILENCE_LEVEL = 0.01  # |amplitude| below this (full scale 1.0) counts as silence when trimming


@dataclass(frozen=True)
class Utterance:
    """A sentence to speak at `at_s` seconds, with one espeak-ng voice and speed (words per minute)."""

    text: str
    at_s: float
    voice: str = "en-us"
    speed_wpm: int = 150


@dataclass(frozen=True)
class SpokenWord:
    text: str
    start_s: float
    end_s: float


@dataclass(frozen=True)
class Spoken:
    """What was really said, where: the utterance's span and each word's span."""

    text: str
    start_s: float
    end_s: float
    words: tuple[SpokenWord, ...]


@dataclass(frozen=True)
class TalkingVideo:
    path: Path
    duration_s: float
    utterances: tuple[Spoken, ...] = field(default=())


def _read_wav(path: Path) -> np.ndarray:
    with wave.open(str(path)) as w:
        if w.getframerate() != RATE or w.getsampwidth() != 2:
            raise RuntimeError(f"unexpected espeak-ng output format in {path}")
        return np.frombuffer(w.readframes(w.getnframes()), dtype="<i2").astype(np.float32) / 32768.0


def _write_wav(path: Path, samples: np.ndarray) -> None:
    pcm = (np.clip(samples, -1.0, 1.0) * 32767).astype("<i2")
    with wave.open(str(path), "wb") as w:
        w.setnchannels(1)
        w.setsampwidth(2)
        w.setframerate(RATE)
        w.writeframes(pcm.tobytes())


def synth_word(word: str, *, voice: str, speed_wpm: int, work: Path) -> np.ndarray:
    """One word's samples at RATE, leading/trailing silence trimmed."""
    out = work / "word.wav"
    cmd = [ESPEAK, "-v", voice, "-s", str(speed_wpm), "-w", str(out), word]
    subprocess.run(cmd, check=True, capture_output=True)
    samples = _read_wav(out)
    loud = np.flatnonzero(np.abs(samples) > SILENCE_LEVEL)
    return samples[loud[0] : loud[-1] + 1] if len(loud) else samples[:0]


def synth_utterance(u: Utterance, work: Path) -> tuple[np.ndarray, Spoken]:
    """The utterance's samples (starting at its first word) and its word spans (absolute, from `u.at_s`)."""
    parts, words, t = [], [], u.at_s
    gap = np.zeros(int(WORD_GAP_S * RATE), np.float32)
    for i, word in enumerate(u.text.split()):
        samples = synth_word(word, voice=u.voice, speed_wpm=u.speed_wpm, work=work)
        if i:
            parts.append(gap)
            t += len(gap) / RATE
        words.append(SpokenWord(word, t, t + len(samples) / RATE))
        parts.append(samples)
        t += len(samples) / RATE
    return np.concatenate(parts), Spoken(u.text, u.at_s, t, tuple(words))


BACKGROUNDS = {
    "noise": "anoisesrc=color=pink:amplitude=0.04:seed=7:sample_rate=22050",
    # Two steady tones and a slow tremolo: a cheap stand-in for a music bed.
    "music": "aevalsrc='0.05*sin(2*PI*220*t)*(1+0.5*sin(2*PI*2*t))+0.04*sin(2*PI*330*t)':s=22050",
}


def make_talking_video(
    path: str | Path,
    utterances: list[Utterance],
    *,
    duration_s: float,
    background: str | None = None,
    size: tuple[int, int] = (96, 64),
    fps: float = 5.0,
) -> TalkingVideo:
    """A short mp4 (H.264 + AAC) with the utterances spoken at their times; returns the truth."""
    path = Path(path)
    track = np.zeros(int(duration_s * RATE), np.float32)
    spoken = []
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        for u in utterances:
            samples, truth = synth_utterance(u, work)
            at = round(u.at_s * RATE)
            if at + len(samples) > len(track):
                raise ValueError(
                    f"utterance {u.text!r} ends after the clip ({truth.end_s:.2f} > {duration_s} s)"
                )
            track[at : at + len(samples)] += samples
            spoken.append(truth)
        wav = work / "speech.wav"
        _write_wav(wav, track)
        w, h = size
        args = [
            "-f",
            "lavfi",
            "-i",
            f"testsrc2=size={w}x{h}:rate={fps}:duration={duration_s}",
            "-i",
            str(wav),
        ]
        if background:
            args += ["-f", "lavfi", "-t", str(duration_s), "-i", BACKGROUNDS[background]]
            args += [
                "-filter_complex",
                "[1:a][2:a]amix=inputs=2:duration=first:normalize=0[a]",
                "-map",
                "0:v",
                "-map",
                "[a]",
            ]
        args += ["-c:v", "libx264", "-preset", "ultrafast", "-pix_fmt", "yuv420p", "-threads", "1"]
        args += ["-c:a", "aac", "-b:a", "64k", "-t", str(duration_s), "-movflags", "+faststart", str(path)]
        _ffmpeg(*args)
    return TalkingVideo(path, duration_s, tuple(spoken))


DEMO = [
    Utterance("good morning and welcome", 0.5),
    Utterance("my favourite colour is blue", 3.5, "en-gb+f3", 150),
    Utterance("let's go to the park", 7.0, "en-us", 160),
]


def main(argv: list[str] | None = None) -> int:
    """`python -m tests.speechgen OUT.mp4`: the demo talking clip (made once; prints what is said, when)."""
    import sys

    out = Path((argv if argv is not None else sys.argv[1:])[0])
    if not out.is_file():
        out.parent.mkdir(parents=True, exist_ok=True)
        tmp = out.with_name(f".{out.name}.tmp.mp4")
        make_talking_video(tmp, DEMO, duration_s=10.0, background="noise")
        tmp.replace(out)
    for u in DEMO:
        print(f"  spoken at {u.at_s:4.1f} s ({u.voice}): {u.text!r}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
