"""Benchmark speech transcription (real Whisper base, int8 CTranslate2, on this CPU).

    .venv/bin/python bench/speech.py                      # ~8 min on 2 idle cores (3 rounds)
    .venv/bin/python bench/speech.py --hour-speech-every 60  # denser speech in the 1-hour track (slower)

Measures, each in a fresh subprocess (cold process, clean peak RSS), in --rounds interleaved rounds
(min / median / max):
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
import functools
import json
import math
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from bench._common import machine, spread
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
    from grounding_agent.media.asr import Transcriber

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


def summarize(runs: list[dict]) -> dict:
    """min / median / max of each timed field over the rounds; the rest (audio_s, words) from the first."""
    timed = ("load_s", "transcribe_s", "total_s", "cpu_s", "peak_rss_mb")
    out = {k: spread([r[k] for r in runs]) for k in timed}
    out["rtf"] = spread(
        [r["audio_s"] / r["transcribe_s"] for r in runs if r["transcribe_s"] > 0] or [math.inf]
    )
    return out | {k: runs[0][k] for k in ("audio_s", "words", "from_cache")} | {"rounds": runs}


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--rounds", type=int, default=3, help="interleaved rounds (default 3)")
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
    result: dict = {"bench": "speech", "when": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
                    "machine": machine(), "model": str(model), "rounds": args.rounds}  # fmt: skip
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        clip, clip_s = make_clip(folder)
        print(f"talking clip: {clip_s:.1f} s, {len(SENTENCES)} sentences, pink noise under it", flush=True)
        hour = None if args.skip_hour else make_hour(clip, args.hour_speech_every, folder)
        runs: dict[str, list[dict]] = {}
        for r in range(args.rounds):  # interleaved: a slow spell on the host hits every run alike
            cache = folder / f"cache{r}"
            on_clip, cached = (
                functools.partial(run_worker, model, clip),
                {"cache_dir": cache, "load_first": False},
            )
            plan = {
                "vad": on_clip,
                "no_vad": functools.partial(on_clip, no_vad=True),
                "cold": functools.partial(on_clip, **cached),
                "cached": functools.partial(on_clip, **cached),  # after "cold", on its cache
            }
            if hour is not None:
                plan |= {
                    f"chunk_{c:g}": functools.partial(run_worker, model, hour, chunk=c)
                    for c in (600.0, 120.0)
                }
            for name, run in plan.items():
                runs.setdefault(name, []).append(run())
            print(f"round {r + 1}/{args.rounds} done", flush=True)
    result["rtf"] = {k: summarize(runs[k]) for k in ("vad", "no_vad")}
    result["cache"] = {k: summarize(runs[k]) for k in ("cold", "cached")}
    if hour is not None:
        result["hour"] = {
            "speech_every_s": args.hour_speech_every,
            "whole_track_float32_mb": 3600 * 16000 * 4 / 2**20,
        }
        result["hour"] |= {k: summarize(v) for k, v in runs.items() if k.startswith("chunk_")}
    _print(result)
    write_json_atomic(args.out, result)
    print(f"\nwrote {args.out}")
    return 0


def _print(r: dict) -> None:
    print(f"\nWhisper base int8 (CTranslate2) on {r['machine']['cpus']} CPUs ({r['machine']['cpu']}), load "
          f"average {r['machine']['load_avg_1m']:.1f}; median (min-max) of {r['rounds']} interleaved rounds")  # fmt: skip
    print(
        f"{'run':34s} {'audio s':>8s} {'load s':>6s} {'ASR s':>18s} {'RTF':>6s} {'CPU s':>7s} {'peak MB':>8s} {'words':>6s}"
    )
    rows = [("clip, VAD + Whisper", r["rtf"]["vad"]), ("clip, Whisper alone (no VAD)", r["rtf"]["no_vad"]),
            ("clip, cold transcript (cache miss)", r["cache"]["cold"]), ("clip, cached transcript", r["cache"]["cached"])]  # fmt: skip
    for key in ("chunk_600", "chunk_120"):
        if key in r.get("hour", {}):
            rows.append((f"1-hour track, {key.replace('_', ' ')} s", r["hour"][key]))
    for name, x in rows:
        asr = x["transcribe_s"]
        print(f"{name:34s} {x['audio_s']:8.1f} {x['load_s']['median']:6.2f} "
              f"{asr['median']:6.2f} ({asr['min']:.2f}-{asr['max']:.2f}) {x['rtf']['median']:6.1f} "
              f"{x['cpu_s']['median']:7.1f} {x['peak_rss_mb']['median']:8.0f} {x['words']:6d}")  # fmt: skip
    cold, hit = r["cache"]["cold"]["total_s"]["median"], r["cache"]["cached"]["total_s"]["median"]
    print(
        f"\ncold transcript {cold:.2f} s vs cached {hit:.3f} s in a new process ({cold / max(hit, 1e-6):.0f}x)"
    )
    if "hour" in r:
        print(
            f"the whole 1-hour track as one float32 array would be {r['hour']['whole_track_float32_mb']:.0f} MB"
        )


if __name__ == "__main__":
    sys.exit(main())
