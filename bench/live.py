"""Benchmark `watch` (grounding_agent.live): alert delays on a real-time UDP stream, CPU share, and memory
over a long source read faster than real time through the same code path.

    .venv/bin/python bench/live.py                       # ~2 min real time + the long run
    .venv/bin/python bench/live.py --long-min 120        # the 2-hour source (the acceptance run)

realtime  a generated stream (espeak-ng phrases every ~4.2 s, a new drawtext slide title every 8 s) published
          by `ffmpeg -re` over UDP MPEG-TS on 127.0.0.1 and watched with one speech alert per phrase and one
          slide alert per title (real Whisper base int8, RapidOCR). Delay: from when the stream reached the
          phrase's true end (the espeak-ng truth; the slide's first frame) to the event. False alerts:
          events whose time matches no occurrence of their query. CPU share: process CPU s / wall s.
long      a long source (slides changing every 5 min, a moving marker, a tone) read as fast as it decodes:
          RSS sampled over stream time (first vs last 30 min, or thirds when shorter), ring bytes on disk vs
          --keep-s, segments deleted.
Each phrase gets a row (`realtime.phrases`: spoken span, found, delay, the alert's matched text and score, and
what Whisper heard over it), the missed ones are listed (`realtime.missed_phrases`); `--speech-only` writes
just those speech figures into an earlier result (`--out`). Writes bench/results/live.json. The 2 cores are shared: with other work on the machine, delays are longer
than on an idle one (the JSON records the load average).
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import psutil

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from bench._common import machine, now  # noqa: E402
from grounding_agent.io import write_json_atomic  # noqa: E402

WORDS = [
    "apple orchard", "blue harbour", "copper kettle", "desert storm", "emerald forest", "falcon ridge",
    "golden bridge", "hidden valley", "iron mountain", "jade garden", "kingfisher lake", "lemon grove",
    "maple avenue", "northern lights", "ocean breeze", "purple meadow", "quiet river", "ruby canyon",
    "silver station", "thunder bay", "velvet curtain", "winter palace",
]  # fmt: skip
SLIDES = ["Opening Remarks", "Market Overview", "Quarterly Results", "Product Roadmap", "Customer Stories",
          "Hiring Plans", "Budget Review", "Risk Factors", "Next Steps", "Questions"]  # fmt: skip
SLIDE_S = 8.0
PHRASE_EVERY_S = 4.2


def make_realtime_stream(folder: Path):
    from tests.livegen import RATE
    from tests.speechgen import Utterance, make_talking_video
    from tests.videogen import _ffmpeg

    utts = [Utterance(f"now we visit the {w}", 1.0 + k * PHRASE_EVERY_S) for k, w in enumerate(WORDS)]
    duration = max(len(WORDS) * PHRASE_EVERY_S + 2.0, len(SLIDES) * SLIDE_S)
    talk = make_talking_video(folder / "talk.mp4", utts, duration_s=duration)
    draw = ",".join(
        f"drawtext=text='{t}':fontsize=28:fontcolor=black:x=20:y=70:enable='between(t,{k * SLIDE_S},{(k + 1) * SLIDE_S - 0.001})'"
        for k, t in enumerate(SLIDES)
    )
    out = folder / "realtime.ts"
    _ffmpeg("-f", "lavfi", "-i", f"color=c=white:s=320x180:r={RATE}:d={duration}", "-i", str(talk.path),
            "-map", "0:v", "-map", "1:a", "-vf", draw, "-c:v", "libx264", "-preset", "ultrafast", "-g", str(RATE),
            "-pix_fmt", "yuv420p", "-threads", "1", "-c:a", "copy", "-f", "mpegts", str(out))  # fmt: skip
    return out, talk.utterances, duration


def realtime(folder: Path, asr_model: str) -> dict:
    from grounding_agent.live import Watcher, WatchOptions
    from grounding_agent.live.sinks import CallbackSink
    from grounding_agent.media.asr import load_whisper
    from tests.livegen import free_port, publish_udp

    path, spoken, duration = make_realtime_stream(folder)
    alerts = tuple(f"when someone says '{w}'" for w in WORDS) + tuple(f"the slide titled {t}" for t in SLIDES)
    whisper = load_whisper(asr_model, compute_type="int8")
    events: list = []
    port = free_port()
    watcher = Watcher(f"udp://127.0.0.1:{port}", WatchOptions(alerts=alerts, timeout_s=5.0, reconnects=0,
                      duration_s=duration - 0.3), folder / "w", sinks=[CallbackSink(events.append)], whisper=whisper)  # fmt: skip
    thread = threading.Thread(target=lambda: events.append(watcher.run()))
    thread.start()
    time.sleep(0.5)
    publish_udp(path, port).wait()
    thread.join(timeout=120)
    report = events.pop()
    clock = watcher.source.clock
    alerts_by = {"speech": [], "ocr": []}
    for e in (e for e in events if e.kind == "alert"):
        alerts_by["speech" if e.channel == "speech" else "ocr"].append(e)
    heard = list(watcher.speech.words) if watcher.speech is not None else []
    phrases, false = speech_phrases(alerts_by["speech"], spoken, heard, clock)
    ocr = []
    for e in alerts_by["ocr"]:
        k = next(i for i, t in enumerate(SLIDES) if t in e.query)
        if abs(e.start_s - k * SLIDE_S) > 1.0 / WatchOptions().fps + 0.2:
            false.append(e.to_dict())
            continue
        ocr.append(e.wall_s - clock.arrival(k * SLIDE_S))
    return {
        "stream_s": round(duration, 1),
        "speech": _delays([p["delay_s"] for p in phrases if p["found"]], len(WORDS)),
        "missed_phrases": [p["text"] for p in phrases if not p["found"]],
        "phrases": phrases,
        "ocr": _delays(ocr, len(SLIDES)),
        "false_alerts": false,
        "cpu_share": round(report.cpu_s / report.wall_s, 3),
        "report": report.to_dict(),
    }


def speech_phrases(alerts: list, spoken: tuple, heard: list, clock) -> tuple[list[dict], list[dict]]:
    """One row per spoken phrase (found or not, its delay, what matched, or what Whisper heard there) and
    the speech alerts that match no phrase where they fired, or repeat one already found (false alerts)."""
    rows = [
        {"text": w, "spoken_start_s": round(u.start_s, 3), "spoken_end_s": round(u.end_s, 3), "found": False,
         "delay_s": None, "matched": None, "score": None}
        for w, u in zip(WORDS, spoken, strict=True)
    ]  # fmt: skip
    false = []
    for e in alerts:
        k = next(i for i, w in enumerate(WORDS) if w in e.query)
        end = spoken[k].words[-1].end_s
        if abs(e.end_s - end) > 1.5 or rows[k]["found"]:
            false.append(e.to_dict())
            continue
        rows[k].update(found=True, delay_s=round(e.wall_s - clock.arrival(end), 3), matched=e.text,
                       score=e.data.get("score"), alert_start_s=round(e.start_s, 3), alert_end_s=round(e.end_s, 3))  # fmt: skip
    for row in rows:  # what was heard over the phrase, found or not (a miss: the transcript says why)
        a, b = row["spoken_start_s"] - 0.5, row["spoken_end_s"] + 0.5
        row["heard"] = " ".join(w.text for w in heard if w.end_s > a and w.start_s < b)
    return rows, false


def _delays(values: list[float], expected: int) -> dict:
    values = sorted(values)
    q = statistics.quantiles(values, n=20, method="inclusive") if len(values) >= 2 else values * 19
    return {"found": len(values), "expected": expected, "p50_s": round(statistics.median(values), 3) if values else None,
            "p95_s": round(q[18], 3) if values else None, "max_s": round(max(values), 3) if values else None,
            "all_s": [round(v, 3) for v in values]}  # fmt: skip


def make_long_source(minutes: int) -> Path:
    from tests.videogen import _ffmpeg

    cache = (
        Path(os.environ.get("GROUNDING_AGENT_CACHE", Path.home() / ".cache" / "grounding-agent")) / "bench"
    )
    out = cache / f"live-long-{minutes}min.ts"
    if out.is_file():
        return out
    cache.mkdir(parents=True, exist_ok=True)
    seconds = minutes * 60
    draw = "drawtext=text='Slide %{eif\\:floor(t/300)\\:d}':fontsize=28:x=20:y=70,drawtext=text='|':fontsize=8:x='mod(n*4,312)':y=170"
    tmp = out.with_suffix(".tmp.ts")
    _ffmpeg("-f", "lavfi", "-i", f"color=c=white:s=320x180:r=5:d={seconds}", "-f", "lavfi", "-i",
            f"sine=frequency=440:duration={seconds}", "-vf", draw, "-c:v", "libx264", "-preset", "ultrafast",
            "-g", "10", "-pix_fmt", "yuv420p", "-c:a", "aac", "-b:a", "32k", "-f", "mpegts", str(tmp))  # fmt: skip
    tmp.replace(out)
    return out


def long_run(folder: Path, minutes: int, keep_s: float) -> dict:
    from grounding_agent.live import Watcher, WatchOptions

    path = make_long_source(minutes)
    options = WatchOptions(alerts=("the slide titled Slide 7",), fps=1.0, keep_s=keep_s, timeout_s=0.5)
    watcher = Watcher(str(path), options, folder / "long")
    proc, samples, ring_max = psutil.Process(), [], [0]
    done = threading.Event()

    def sample() -> None:
        while not done.wait(1.0):
            if watcher.source is not None and watcher.source.last_s is not None:
                samples.append((watcher.source.last_s, proc.memory_info().rss))
                if watcher.ring is not None:
                    ring_max[0] = max(ring_max[0], watcher.ring.bytes_on_disk())

    threading.Thread(target=sample, daemon=True).start()
    start = time.monotonic()
    report = watcher.run()
    done.set()
    window = min(1800.0, report.stream_s / 3)
    first = [r for t, r in samples if t <= window]
    last = [r for t, r in samples if t >= report.stream_s - window]
    mb = 1 / 2**20
    return {
        "stream_s": round(report.stream_s, 1),
        "wall_s": round(time.monotonic() - start, 1),
        "x_real_time": round(report.stream_s / (time.monotonic() - start), 1),
        "window_s": window,
        "rss_first_mb": round(statistics.median(first) * mb, 1) if first else None,
        "rss_last_mb": round(statistics.median(last) * mb, 1) if last else None,
        "rss_growth": round(statistics.median(last) / statistics.median(first) - 1, 4)
        if first and last
        else None,
        "rss_over_time_mb": [(round(t), round(r * mb, 1)) for t, r in samples[:: max(1, len(samples) // 40)]],
        "keep_s": keep_s,
        "ring_max_mb": round(ring_max[0] * mb, 2),
        "ring_segments_deleted": report.ring_segments_deleted,
        "report": report.to_dict(),
    }


SPEECH_KEYS = ("speech", "missed_phrases", "phrases")


def speech_only(out: Path, asr: str) -> int:
    """The real-time run, its speech figures written into the earlier result `out` (the rest kept)."""
    result = json.loads(out.read_text(encoding="utf-8"))
    run_machine, when = machine(), now()
    with tempfile.TemporaryDirectory() as tmp:
        new = realtime(Path(tmp), asr)
    old = result.setdefault("realtime", {})
    old.update({k: new[k] for k in SPEECH_KEYS})
    speech_false = [e for e in new["false_alerts"] if e["channel"] == "speech"]
    old["false_alerts"] = [e for e in old.get("false_alerts", []) if e["channel"] != "speech"] + speech_false
    old["speech_run"] = {"when": when, "machine": run_machine, "machine_after": {"load_avg_1m": os.getloadavg()[0]},
                         "stream_s": new["stream_s"], "cpu_share": new["cpu_share"], "report": new["report"]}  # fmt: skip
    write_json_atomic(out, result)
    print("speech:", new["speech"], "missed:", new["missed_phrases"], "false:", len(speech_false))
    print("wrote", out)
    return 0


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument(
        "--asr-model", default=None, help="Whisper folder (default: tests/assets/whisper_base.py)"
    )
    ap.add_argument(
        "--long-min", type=int, default=120, help="minutes of the long source (0: keep the last run's)"
    )
    ap.add_argument("--keep-s", type=float, default=600.0)
    ap.add_argument("--skip-realtime", action="store_true")
    ap.add_argument("--speech-only", action="store_true",
                    help="run the real-time stream but write only its speech figures into --out (an earlier "
                         "result), keeping its other figures and envelope; the speech run's own time and load "
                         "go in realtime.speech_run")  # fmt: skip
    ap.add_argument("--out", default=str(REPO / "bench" / "results" / "live.json"))
    args = ap.parse_args()
    asr = args.asr_model or subprocess.run([sys.executable, str(REPO / "tests/assets/whisper_base.py")],
                                           capture_output=True, text=True, check=True).stdout.strip()  # fmt: skip
    if args.speech_only:
        return speech_only(Path(args.out), asr)
    result = {"bench": "live", "when": now(), "machine": machine()}
    with tempfile.TemporaryDirectory() as tmp:
        if not args.skip_realtime:
            result["realtime"] = realtime(Path(tmp), asr)
            print("realtime:", {k: v for k, v in result["realtime"].items() if k != "report"})
        if args.long_min > 0:
            result["long"] = long_run(Path(tmp), args.long_min, args.keep_s)
            print(
                "long:", {k: v for k, v in result["long"].items() if k not in ("report", "rss_over_time_mb")}
            )
        elif Path(args.out).is_file():  # --long-min 0: keep the last long run's figures
            result["long"] = json.loads(Path(args.out).read_text(encoding="utf-8")).get("long")
    result["machine_after"] = {"load_avg_1m": os.getloadavg()[0]}
    write_json_atomic(Path(args.out), result)
    print("wrote", args.out)
    return 0


if __name__ == "__main__":
    sys.exit(main())
