"""The video library end to end: search recall on >= 50 generated clips, indexing speed per channel, search
latency, store size per hour of video.

Recall: clips with a known spoken sentence (espeak-ng -> real Whisper base) and a known title (drawtext ->
real RapidOCR); per clip a quoted-speech, a paraphrased-speech and a title query; a hit is right when it is
the right clip and its span has IoU >= 0.5 with the truth. Visual vectors come from the tiny random-weight
CLIP (no real CLIP weights here): the recall rows run with all three channels, so the visual channel is
noise the fusion must survive. Speed: each channel alone with cold model caches, then all three together,
on the clips re-encoded at 720p (a folder of 5-s files) and on one ~4.6-min 720p video made of the real
clips in ../shared/data/videos and generated ones; x real time = video seconds / wall seconds, with the
1-min load average before and after each row (the 2 cores are shared). CPU seconds per second of video
(every thread of the process) do not depend on the load much; from them, `two_free_cores` estimates the x
real time of all three channels on 2 idle cores: video s / max(all-three CPU s / 2, the longest single
thread's CPU s), the longest thread being the OCR alone or, on one file, the speech alone (see the rows).

    .venv/bin/python bench/library.py --clips 50 --out bench/results/library.json
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from bench._common import machine, now  # noqa: E402


def recall(lib, clips, channels=None) -> list[dict]:
    from tests.librarygen import iou

    rows, latencies = [], []
    for kind in ("quote", "paraphrase", "title"):
        r1 = r5 = 0
        for c in clips:
            query, span = c.queries()[kind]
            t0 = time.perf_counter()
            hits = lib.search(query, k=5, channels=channels)
            latencies.append(time.perf_counter() - t0)
            ok = [h.path == c.path.resolve() and iou((h.start_s, h.end_s), span) >= 0.5 for h in hits]
            r1 += bool(ok[:1] and ok[0])
            r5 += any(ok)
        rows.append(
            {
                "queries": kind,
                "channels": "+".join(channels or ("visual", "speech", "ocr")),
                "n": len(clips),
                "recall_at_1": r1 / len(clips),
                "recall_at_5": r5 / len(clips),
            }
        )
        print(json.dumps(rows[-1]), flush=True)
    ms = sorted(x * 1000 for x in latencies)
    lat = {
        "queries": len(ms),
        "p50_ms": round(statistics.median(ms), 2),
        "p95_ms": round(ms[int(0.95 * len(ms)) - 1], 2),
    }
    return rows, lat


def empty_store_bytes(work: Path) -> int:
    from grounding_agent.library import Library

    lib = Library(work / "empty", create=True)
    lib.store.query("PRAGMA wal_checkpoint(TRUNCATE)")
    lib.close()
    return (work / "empty" / "library.sqlite").stat().st_size


LONG_PARTS = ("univtg_charades_Y1HGC.mp4", "timer1_charades_OHOFG.mp4", "decord_flipping_a_pancake.mkv")


def long_clip(clips, out_dir: Path) -> Path:
    """One ~4.6-min 720p video (cached): the three real Charades/Kinetics clips (camera footage, room noise),
    each followed by 13-14 generated clips (speech + a title), as one file of mixed content."""
    from tests.videogen import _ffmpeg

    real = Path(__file__).resolve().parents[2] / "shared" / "data" / "videos"
    parts, gen = [], [c.path for c in clips[:40]]
    for k, name in enumerate(LONG_PARTS):
        parts += ([real / name] if (real / name).is_file() else []) + gen[k * 40 // 3 : (k + 1) * 40 // 3]
    out = out_dir / f"long720-{len(parts)}.mp4"
    out_dir.mkdir(parents=True, exist_ok=True)
    if out.is_file():
        return out
    scale = "scale=1280:720:force_original_aspect_ratio=decrease,pad=1280:720:(ow-iw)/2:(oh-ih)/2,setsar=1"
    graph = "".join(f"[{i}:v]{scale},fps=30,format=yuv420p[v{i}];[{i}:a]aresample=44100,"
                    f"aformat=channel_layouts=mono[a{i}];" for i in range(len(parts)))  # fmt: skip
    graph += "".join(f"[v{i}][a{i}]" for i in range(len(parts))) + f"concat=n={len(parts)}:v=1:a=1[v][a]"
    tmp = out.with_suffix(".part.mp4")
    _ffmpeg(*[a for p in parts for a in ("-i", str(p))], "-filter_complex", graph, "-map", "[v]", "-map", "[a]",
            "-c:v", "libx264", "-preset", "veryfast", "-crf", "23", "-c:a", "aac", "-b:a", "96k", str(tmp))  # fmt: skip
    tmp.rename(out)
    return out


def speed(clips, models_dir, whisper, work: Path, count: int) -> list[dict]:
    """Each channel alone, then all together, with cold model caches: on `count` 5-s clips at 720p (a folder
    of short files: per-file costs show) and on one ~4.6-min 720p video (`long_clip`)."""
    from grounding_agent.utils.cache import cache_folder
    from tests.videogen import _ffmpeg

    src = work / "720p"
    src.mkdir()
    for c in clips[:count]:
        _ffmpeg("-i", str(c.path), "-vf", "scale=1280:720", "-c:v", "libx264", "-preset", "veryfast",
                "-c:a", "copy", str(src / c.path.name))  # fmt: skip
    long = long_clip(clips, cache_folder("bench"))
    rows = []
    for name, path in ((f"{count} x 5-s clips", src), ("one 4.6-min video", long)):
        for channels in (["visual"], ["speech"], ["ocr"], ["visual", "speech", "ocr"]):
            rows.append(speed_row(name, path, channels, models_dir, whisper, work))
            print(json.dumps(rows[-1]), flush=True)
        rows[-1]["two_free_cores"] = two_free_cores(rows[-4:])
    os.environ.pop("GROUNDING_AGENT_CACHE", None)
    return rows


def two_free_cores(rows: list[dict]) -> dict:
    """The x real time all three channels would reach on 2 idle cores (an estimate from CPU seconds): the
    work spread over both cores, but no faster than the longest single thread (the OCR thread; the speech
    thread when there is one file, whose speech is one Whisper call after another)."""
    by = {r["channels"]: r for r in rows}
    together = by["visual+speech+ocr"]
    longest = max(by["ocr"]["cpu_s"], by["speech"]["cpu_s"] if together["videos"] == 1 else 0.0)
    wall = max(together["cpu_s"] / 2, longest)
    return {"x_real_time": round(together["video_s"] / wall, 2), "bound_by": "both cores" if wall > longest
            else ("ocr thread" if longest == by["ocr"]["cpu_s"] else "speech thread")}  # fmt: skip


def speed_row(name: str, path: Path, channels: list[str], models_dir, whisper, work: Path) -> dict:
    from faster_whisper.vad import get_vad_model

    from grounding_agent.library import Library
    from grounding_agent.library.frames import ocr_engine

    tag = f"{name.split()[0]}-{'-'.join(channels)}"
    os.environ["GROUNDING_AGENT_CACHE"] = str(work / f"cache-{tag}")  # cold caches
    lib_dir = work / f"lib-{tag}"
    lib = Library(lib_dir, create=True, saliency=models_dir, transcriber=whisper)
    models = lib.models(channels)
    # Model loads and the one-time ONNX export are once per `index` run, not per video: before the clock.
    if models.saliency is not None:
        models.saliency.encode_frames(np.zeros((1, 224, 224, 3), np.uint8))
    if models.transcriber is not None:
        _ = models.transcriber.whisper
        get_vad_model()
    if models.reader is not None:
        ocr_engine(models.ocr_threads)
    load_before = os.getloadavg()[0]
    t0, cpu0 = time.perf_counter(), time.process_time()
    report = lib.index([path], channels=channels, models=models)
    wall, cpu = time.perf_counter() - t0, time.process_time() - cpu0  # CPU: every thread of this process
    video_s = sum(v.duration_s for v in lib.videos())
    lib.store.query("PRAGMA wal_checkpoint(TRUNCATE)")  # the WAL folded in: the store's own size
    size = (lib_dir / "library.sqlite").stat().st_size - empty_store_bytes(work)  # SQLite's fixed pages
    lib.close()
    return {"input": name, "channels": "+".join(channels), "videos": report.count("indexed"),
            "video_s": round(video_s, 1), "wall_s": round(wall, 2), "x_real_time": round(video_s / wall, 2),
            "cpu_s": round(cpu, 2), "x_real_time_per_cpu_s": round(video_s / cpu, 2),
            "cpu_s_per_video_s": round(cpu / video_s, 4),
            "store_mb_per_hour": round(size / 1e6 * 3600 / video_s, 2),
            "load_avg_1m": [round(load_before, 2), round(os.getloadavg()[0], 2)]}  # fmt: skip


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--clips", type=int, default=50)
    ap.add_argument("--speed-clips", type=int, default=50)
    ap.add_argument("--out", default="bench/results/library.json")
    args = ap.parse_args(argv)
    from grounding_agent.library import Library
    from tests.assets.build_tiny_models import cached_tiny_models
    from tests.assets.whisper_base import whisper_base_dir
    from tests.librarygen import library_clips

    clip_dir, whisper = cached_tiny_models()["clip"], whisper_base_dir()
    clips = library_clips(args.clips)
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        lib = Library(work / "recall", create=True, saliency=clip_dir, transcriber=whisper)
        t0 = time.perf_counter()
        lib.index([clips[0].path.parent])
        index_s = time.perf_counter() - t0
        rows, lat = recall(lib, clips)
        rows += recall(lib, clips, ["speech", "ocr"])[0]  # without the tiny CLIP's noise
        speed_rows = speed(clips, clip_dir, whisper, work, args.speed_clips) if args.speed_clips else []
        shutil.rmtree(work / "720p", ignore_errors=True)
    result = {"bench": "library", "when": now(), "machine": machine(), "clips": len(clips),
              "recall_index_s": round(index_s, 1), "recall": rows, "search_latency": lat, "speed": speed_rows,
              "ray": None}  # fmt: skip  # the two-node Ray row: bench/library_ray (the Ray engineer's hook)
    Path(args.out).write_text(json.dumps(result, indent=2) + "\n", encoding="utf-8")
    return 0


if __name__ == "__main__":
    sys.exit(main())
