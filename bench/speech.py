"""Benchmark speech transcription (real Whisper base, int8 CTranslate2, on this CPU).

    .venv/bin/python bench/speech.py                      # ~5 min on 2 loaded cores
    .venv/bin/python bench/speech.py --hour-speech-every 60  # denser speech in the 1-hour track (slower)

Measures, each in a fresh subprocess (cold process, clean peak RSS):
  rtf      a ~40 s espeak-ng talking clip: model load, then ASR real-time factor (audio seconds per wall
           second; VAD + Whisper, cache off), and the same with the VAD off
  cache    the same clip: cold transcript (model load + ASR) vs a cached one (a new process reading the cache)
  hour     a 1-hour audio track (the talking clip every N seconds, silence between; looped with ffmpeg
           `-stream_loop`, no re-encode): wall time, peak RSS, and the RSS the whole track would need as one
           16 kHz float32 array, with chunks of 600 s (the default) and of 120 s
Prints a table and writes bench/results/speech.json.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from grounding_agent.io import write_json_atomic

SENTENCES = [
    "good morning and welcome to the show",
    "today we talk about the weather in the mountains",
    "it will be cold and windy on tuesday",
    "my favourite colour is blue",
    "please remember to bring a warm coat",
    "the next train leaves at seven fifteen",
    "thank you for listening and see you soon",
]


def make_clip(folder: Path) -> tuple[Path, float]:
    from tests.speechgen import Utterance, make_talking_video

    utterances, t = [], 0.5
    for i, text in enumerate(SENTENCES):
        utterances.append(Utterance(text, t, ["en-us", "en-gb", "en-us+f3"][i % 3], 150 + 10 * (i % 3)))
        t += 0.45 * len(text.split()) + 2.0
    clip = make_talking_video(
        folder / "talk.mp4", utterances, duration_s=round(t + 1.0, 1), background="noise"
    )
    return clip.path, clip.duration_s


def make_hour(clip: Path, every_s: float, folder: Path) -> Path:
    """1 hour of audio: the clip's audio padded with silence to `every_s`, looped (stream copy)."""
    unit, hour = folder / f"unit{every_s:g}.m4a", folder / f"hour{every_s:g}.m4a"
    ff = ["ffmpeg", "-nostdin", "-hide_banner", "-loglevel", "error", "-y"]
    subprocess.run([*ff, "-i", str(clip), "-vn", "-af", f"apad=whole_dur={every_s}", "-t", str(every_s),
                    "-c:a", "aac", "-b:a", "64k", str(unit)], check=True)  # fmt: skip
    loops = round(3600 / every_s) - 1
    subprocess.run(
        [*ff, "-stream_loop", str(loops), "-i", str(unit), "-c", "copy", "-t", "3600", str(hour)], check=True
    )
    return hour


# --- workers (run in a fresh process each) -----------------------------------------------------------


def worker(args: argparse.Namespace) -> dict:
    from grounding_agent.speech import Transcriber

    start = time.perf_counter()
    cpu0 = time.process_time()
    asr = Transcriber(args.model, language="en", vad=not args.no_vad, chunk_s=args.chunk,
                      use_cache=args.cache_dir is not None, cache_dir=args.cache_dir)  # fmt: skip
    load_s = 0.0
    if args.load_first:
        t = time.perf_counter()
        asr.whisper  # noqa: B018 - load the model now, to time it apart from ASR
        load_s = time.perf_counter() - t
    t = time.perf_counter()
    transcript = asr.transcribe(args.audio)
    asr_s = time.perf_counter() - t
    return {
        "load_s": load_s,
        "transcribe_s": asr_s,
        "total_s": time.perf_counter() - start,
        "cpu_s": time.process_time() - cpu0,
        "audio_s": transcript.duration_s,
        "words": len(transcript.words),
        "from_cache": transcript.from_cache,
        "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
    }


def run_worker(
    model: Path, audio: Path, *, cache_dir: Path | None = None, no_vad=False, chunk=600.0, load_first=True
) -> dict:
    cmd = [
        sys.executable,
        __file__,
        "--worker",
        "--model",
        str(model),
        "--audio",
        str(audio),
        "--chunk",
        str(chunk),
    ]
    cmd += ["--cache-dir", str(cache_dir)] if cache_dir else []
    cmd += ["--no-vad"] if no_vad else []
    cmd += ["--load-first"] if load_first else []
    proc = subprocess.run(cmd, capture_output=True, text=True, check=False)
    if proc.returncode != 0:
        raise RuntimeError(f"worker failed: {' '.join(cmd)}\n{proc.stderr[-3000:]}")
    return json.loads(proc.stdout.strip().splitlines()[-1])


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--hour-speech-every", type=float, default=300.0, metavar="S",
                   help="the talking clip once every S seconds of the 1-hour track (default 300)")  # fmt: skip
    p.add_argument("--skip-hour", action="store_true", help="skip the 1-hour track")
    p.add_argument("--out", type=Path, default=REPO / "bench" / "results" / "speech.json")
    p.add_argument("--worker", action="store_true", help=argparse.SUPPRESS)
    p.add_argument("--model", type=Path, help=argparse.SUPPRESS)
    p.add_argument("--audio", type=Path, help=argparse.SUPPRESS)
    p.add_argument("--cache-dir", type=Path, help=argparse.SUPPRESS)
    p.add_argument("--no-vad", action="store_true", help=argparse.SUPPRESS)
    p.add_argument("--chunk", type=float, default=600.0, help=argparse.SUPPRESS)
    p.add_argument("--load-first", action="store_true", help=argparse.SUPPRESS)
    args = p.parse_args()
    if args.worker:
        print(json.dumps(worker(args)))
        return 0

    from tests.assets.whisper_base import whisper_base_dir

    model = whisper_base_dir()
    result: dict = {"machine": {"python": platform.python_version(), "cpus": os.cpu_count(),
                                "load_avg": os.getloadavg()}, "model": str(model)}  # fmt: skip
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        clip, clip_s = make_clip(folder)
        print(f"talking clip: {clip_s:.1f} s, {len(SENTENCES)} sentences, pink noise under it", flush=True)
        rtf = run_worker(model, clip)
        rtf_novad = run_worker(model, clip, no_vad=True)
        result["rtf"] = {"vad": rtf, "no_vad": rtf_novad}
        cache = folder / "cache"
        cold = run_worker(model, clip, cache_dir=cache, load_first=False)
        hit = run_worker(model, clip, cache_dir=cache, load_first=False)
        result["cache"] = {"cold": cold, "cached": hit}
        if not args.skip_hour:
            hour = make_hour(clip, args.hour_speech_every, folder)
            result["hour"] = {
                "speech_every_s": args.hour_speech_every,
                "whole_track_float32_mb": 3600 * 16000 * 4 / 2**20,
            }
            for chunk in (600.0, 120.0):
                print(f"1-hour track, chunks of {chunk:g} s ...", flush=True)
                result["hour"][f"chunk_{chunk:g}"] = run_worker(model, hour, chunk=chunk)
    _print(result)
    write_json_atomic(args.out, result)
    print(f"\nwrote {args.out}")
    return 0


def _print(r: dict) -> None:
    print(
        f"\nWhisper base int8 (CTranslate2) on {r['machine']['cpus']} CPUs, load average {r['machine']['load_avg'][0]:.1f}"
    )
    print(
        f"{'run':34s} {'audio s':>8s} {'load s':>7s} {'ASR s':>7s} {'RTF':>6s} {'CPU s':>7s} {'peak MB':>8s} {'words':>6s}"
    )
    rows = [("clip, VAD + Whisper", r["rtf"]["vad"]), ("clip, Whisper alone (no VAD)", r["rtf"]["no_vad"]),
            ("clip, cold transcript (cache miss)", r["cache"]["cold"]), ("clip, cached transcript", r["cache"]["cached"])]  # fmt: skip
    for key in ("chunk_600", "chunk_120"):
        if key in r.get("hour", {}):
            rows.append((f"1-hour track, {key.replace('_', ' ')} s", r["hour"][key]))
    for name, x in rows:
        speed = x["audio_s"] / x["transcribe_s"] if x["transcribe_s"] > 0 else float("inf")
        print(f"{name:34s} {x['audio_s']:8.1f} {x['load_s']:7.2f} {x['transcribe_s']:7.2f} {speed:6.1f} "
              f"{x['cpu_s']:7.1f} {x['peak_rss_mb']:8.0f} {x['words']:6d}")  # fmt: skip
    c = r["cache"]
    print(f"\ncold transcript {c['cold']['total_s']:.2f} s vs cached {c['cached']['total_s']:.3f} s in a new process "
          f"({c['cold']['total_s'] / max(c['cached']['total_s'], 1e-6):.0f}x)")  # fmt: skip
    if "hour" in r:
        print(
            f"the whole 1-hour track as one float32 array would be {r['hour']['whole_track_float32_mb']:.0f} MB"
        )


if __name__ == "__main__":
    sys.exit(main())
