"""Benchmark frame sampling on a long video: our sampler vs naive decord `get_batch` vs PyAV seek-per-frame.

    .venv/bin/python bench/decode.py                  # 10-min 720p H.264, 1 fps, plus the 2-hour memory run
    .venv/bin/python bench/decode.py --repeats 3 --fps 0.5 --bframes 3 --skip-long

Videos are generated once with ffmpeg (testsrc2, libx264 ultrafast, GOP 250) and cached under
~/.cache/grounding-agent/bench/: one as ultrafast makes it (no B-frames: every frame is a reference, so
1-fps sampling must decode them all) and one with 3 B-frames like x264's default presets and most real
H.264 (non-reference frames can be skipped). Every measurement runs in a fresh subprocess (clean peak RSS, no
in-process caches); the file is read once first so all methods see a warm page cache. Reported: wall and
CPU seconds (median over repeats; CPU time is the fairer number on a shared machine), peak RSS, and
whether each method's timestamps agree with ours within one frame and its pixels are identical.
The long run samples a 2-hour video at 1 fps to show memory stays bounded by the sampled frames.
Prints a table and writes bench/results/decode.json.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import platform
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from grounding_agent.io import write_json_atomic

REPO = Path(__file__).resolve().parents[1]
CACHE = Path(os.environ.get("GA_CACHE_DIR", Path.home() / ".cache" / "grounding-agent")) / "bench"
METHODS = ("ours", "decord_get_batch", "pyav_seek")


# --- video generation -------------------------------------------------------------------------------


def ensure_video(width: int, height: int, fps: int, duration_s: int, gop: int, bframes: int = 0) -> Path:
    """Generate (once) a testsrc2 H.264 clip; written to a temp name and renamed, so never half-written."""
    suffix = f"_bf{bframes}" if bframes else ""
    path = CACHE / f"testsrc2_{width}x{height}_{fps}fps_{duration_s}s_g{gop}{suffix}.mp4"
    if path.exists():
        return path
    CACHE.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".part.mp4")
    print(f"generating {path.name} (once) ...", flush=True)
    t0 = time.perf_counter()
    subprocess.run(
        [
            "ffmpeg",
            "-nostdin",
            "-loglevel",
            "error",
            "-y",
            "-f",
            "lavfi",
            "-i",
            f"testsrc2=size={width}x{height}:rate={fps}:duration={duration_s}",
            "-c:v",
            "libx264",
            "-preset",
            "ultrafast",
            "-g",
            str(gop),
            "-bf",
            str(bframes),
            "-pix_fmt",
            "yuv420p",
            "-movflags",
            "+faststart",
            str(tmp),
        ],
        check=True,
    )
    os.replace(tmp, path)
    print(f"  {time.perf_counter() - t0:.0f} s, {path.stat().st_size / 1e6:.0f} MB", flush=True)
    return path


# --- workers (one per subprocess) -------------------------------------------------------------------


def _cpu_s() -> float:
    r = resource.getrusage(resource.RUSAGE_SELF)
    return r.ru_utime + r.ru_stime


def worker(method: str, path: str, fps: float, max_pixels: int | None) -> dict:
    """Sample at `fps` with one method; returns timings, peak RSS, timestamps and a pixel digest."""
    import numpy as np

    t0, c0 = time.perf_counter(), _cpu_s()
    if method == "ours":
        from grounding_agent.video import sample_frames

        frames = sample_frames(path, fps=fps, max_pixels=max_pixels)
        pixels, timestamps = frames.pixels, frames.timestamps_s
    elif method == "decord_get_batch":
        # What a user writes first: indices from the average fps, one get_batch call.
        import decord

        reader = decord.VideoReader(path)
        n, avg_fps = len(reader), reader.get_avg_fps()
        indices = np.unique(
            np.round(np.arange(0, n / avg_fps, 1.0 / fps) * avg_fps).astype(int).clip(0, n - 1)
        )
        pixels = reader.get_batch(indices.tolist()).asnumpy()
        timestamps = reader.get_frame_timestamp(indices)[:, 0].astype(np.float64)
    elif method == "pyav_seek":
        # Seek to each target time, decode forward to the first frame at or after it.
        import av

        out, stamps = [], []
        with av.open(path) as container:
            stream = container.streams.video[0]
            stream.thread_type = "AUTO"
            duration_s = float(stream.duration * stream.time_base)
            for t in np.arange(0, duration_s, 1.0 / fps):
                container.seek(int(t / stream.time_base), stream=stream, backward=True)
                for frame in container.decode(stream):
                    if frame.time >= t - 1e-6:
                        out.append(frame.to_ndarray(format="rgb24"))
                        stamps.append(frame.time)
                        break
        pixels, timestamps = np.stack(out), np.asarray(stamps)
    else:
        raise SystemExit(f"unknown method {method}")
    wall_s, cpu_s = time.perf_counter() - t0, _cpu_s() - c0
    peak_rss_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # before hashing
    digest = hashlib.sha1()
    for frame in pixels:  # frame by frame: no second copy of the output
        digest.update(np.ascontiguousarray(frame).data)
    return {
        "wall_s": wall_s,
        "cpu_s": cpu_s,
        "peak_rss_mb": peak_rss_mb,
        "n_frames": len(timestamps),
        "output_mb": pixels.nbytes / 2**20,
        "frame_shape": list(pixels.shape[1:]),
        "timestamps_s": [float(t) for t in timestamps],
        "pixel_sha1": digest.hexdigest(),
    }


def run_worker(method: str, path: Path, fps: float, max_pixels: int | None) -> dict:
    with tempfile.NamedTemporaryFile(suffix=".json") as out:
        cmd = [
            sys.executable,
            __file__,
            "--worker",
            method,
            "--video",
            str(path),
            "--fps",
            str(fps),
            "--worker-out",
            out.name,
        ]
        if max_pixels:
            cmd += ["--max-pixels", str(max_pixels)]
        subprocess.run(cmd, check=True, cwd=REPO, env={**os.environ, "PYTHONPATH": str(REPO)})
        return json.loads(Path(out.name).read_text())


def warm_page_cache(path: Path) -> None:
    with path.open("rb") as f:
        while f.read(1 << 24):
            pass


# --- comparisons ------------------------------------------------------------------------------------


def agree_within_one_frame(ours: list[float], other: list[float], avg_fps: float) -> tuple[bool, float]:
    """Same count and every timestamp within one frame duration; returns (ok, max abs diff in s)."""
    if len(ours) != len(other):
        return False, float("inf")
    worst = max((abs(a - b) for a, b in zip(ours, other)), default=0.0)
    return worst <= 1.0 / avg_fps + 1e-3, worst


def bench_speed(path: Path, fps: float, repeats: int) -> dict:
    from grounding_agent.video import open_video

    video = open_video(path)
    warm_page_cache(path)
    runs: dict[str, list[dict]] = {m: [] for m in METHODS}
    for r in range(repeats):  # interleaved, so background load hits every method alike
        for m in METHODS:
            if m == "pyav_seek" and r > 0:
                continue  # 3-4x slower than the others: one run places it
            res = run_worker(m, path, fps, None)
            runs[m].append(res)
            print(
                f"  [{r + 1}/{repeats}] {m:17s} wall {res['wall_s']:6.1f} s  cpu {res['cpu_s']:6.1f} s",
                flush=True,
            )
    ours = runs["ours"][0]
    table = {}
    for m in METHODS:
        first = runs[m][0]
        ok, worst = agree_within_one_frame(ours["timestamps_s"], first["timestamps_s"], video.avg_fps)
        table[m] = {
            "wall_s_median": statistics.median(x["wall_s"] for x in runs[m]),
            "cpu_s_median": statistics.median(x["cpu_s"] for x in runs[m]),
            "wall_s_all": [round(x["wall_s"], 3) for x in runs[m]],
            "cpu_s_all": [round(x["cpu_s"], 3) for x in runs[m]],
            "peak_rss_mb": max(x["peak_rss_mb"] for x in runs[m]),
            "n_frames": first["n_frames"],
            "timestamps_agree_within_one_frame": ok,
            "max_timestamp_diff_s": worst,
            "pixels_identical_to_ours": first["pixel_sha1"] == ours["pixel_sha1"],
        }
    base = table["decord_get_batch"]
    for m in METHODS:
        table[m]["speedup_wall_vs_decord"] = base["wall_s_median"] / table[m]["wall_s_median"]
        table[m]["speedup_cpu_vs_decord"] = base["cpu_s_median"] / table[m]["cpu_s_median"]
    return {"video": video.to_dict() | {"path": path.name}, "fps": fps, "repeats": repeats, "methods": table}


def bframes_of(path: Path) -> bool:
    import av

    with av.open(str(path)) as container:
        return bool(container.streams.video[0].codec_context.has_b_frames)


def bench_memory(path: Path, fps: float, max_pixels: int) -> dict:
    from grounding_agent.video import open_video

    video = open_video(path)
    warm_page_cache(path)
    res = run_worker("ours", path, fps, max_pixels)
    frame_bytes = video.width * video.height * 3
    return {
        "video": video.to_dict() | {"path": path.name},
        "fps": fps,
        "max_pixels": max_pixels,
        "n_frames_sampled": res["n_frames"],
        "wall_s": res["wall_s"],
        "cpu_s": res["cpu_s"],
        "peak_rss_mb": res["peak_rss_mb"],
        "output_mb": res["output_mb"],
        "all_frames_decoded_mb": video.num_frames * frame_bytes / 2**20,
    }


def print_table(speed: dict) -> None:
    v = speed["video"]
    print(
        f"\n{v['path']}: {v['duration_s']:.0f} s, {v['width']}x{v['height']}, {v['avg_fps']:.0f} fps, "
        f"{v['num_frames']} frames, B-frames: {speed['b_frames']}; sampling at {speed['fps']} fps, "
        f"median of {speed['repeats']} (pyav_seek: 1 run)"
    )
    print(
        f"{'method':18s} {'frames':>6s} {'wall s':>8s} {'cpu s':>8s} {'x wall':>7s} {'x cpu':>7s} "
        f"{'rss MB':>7s} {'ts ok':>6s} {'max dt s':>9s} {'same px':>8s}"
    )
    for m, r in speed["methods"].items():
        print(
            f"{m:18s} {r['n_frames']:6d} {r['wall_s_median']:8.2f} {r['cpu_s_median']:8.2f} "
            f"{r['speedup_wall_vs_decord']:7.2f} {r['speedup_cpu_vs_decord']:7.2f} {r['peak_rss_mb']:7.0f} "
            f"{r['timestamps_agree_within_one_frame']!s:>6s} {r['max_timestamp_diff_s']:9.4f} "
            f"{r['pixels_identical_to_ours']!s:>8s}"
        )


def print_memory(memory: dict) -> None:
    if memory:
        v = memory["video"]
        print(
            f"\nbounded memory: {v['path']} ({v['duration_s'] / 3600:.1f} h, {v['num_frames']} frames) at "
            f"{memory['fps']} fps, max_pixels {memory['max_pixels']}: {memory['n_frames_sampled']} frames in "
            f"{memory['wall_s']:.1f} s; peak RSS {memory['peak_rss_mb']:.0f} MB for {memory['output_mb']:.0f} MB "
            f"of output (all frames decoded would be {memory['all_frames_decoded_mb']:.0f} MB)"
        )


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--fps", type=float, default=1.0, help="sampling rate (default 1)")
    p.add_argument("--repeats", type=int, default=2, help="runs per method, interleaved (default 2)")
    p.add_argument("--minutes", type=int, default=10, help="length of the 720p speed video (default 10)")
    p.add_argument("--long-hours", type=float, default=2.0, help="length of the memory-run video (default 2)")
    p.add_argument(
        "--bframes", type=int, nargs="+", default=[0, 3], help="B-frame settings to test (default 0 3)"
    )
    p.add_argument("--skip-long", action="store_true", help="skip the bounded-memory run")
    p.add_argument("--out", type=Path, default=REPO / "bench" / "results" / "decode.json")
    p.add_argument("--worker", choices=METHODS, help=argparse.SUPPRESS)
    p.add_argument("--video", help=argparse.SUPPRESS)
    p.add_argument("--worker-out", help=argparse.SUPPRESS)
    p.add_argument("--max-pixels", type=int, help=argparse.SUPPRESS)
    args = p.parse_args()

    if args.worker:
        Path(args.worker_out).write_text(
            json.dumps(worker(args.worker, args.video, args.fps, args.max_pixels))
        )
        return 0

    sys.path.insert(0, str(REPO))
    speeds = []
    for bframes in args.bframes:
        path = ensure_video(1280, 720, 30, args.minutes * 60, 250, bframes)
        print(f"{path.name}:", flush=True)
        speeds.append(bench_speed(path, args.fps, args.repeats) | {"b_frames": bframes_of(path)})
    long_video = None if args.skip_long else ensure_video(320, 180, 10, int(args.long_hours * 3600), 250)
    memory = bench_memory(long_video, args.fps, 160 * 90) if long_video else None
    for speed in speeds:
        print_table(speed)
    print_memory(memory)
    result = {
        "bench": "decode",
        "when": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "machine": {
            "cpus": os.cpu_count(),
            "platform": platform.platform(),
            "load_avg_1m": os.getloadavg()[0],
        },
        "speed": speeds,
        "memory": memory,
    }
    write_json_atomic(args.out, result)
    print(f"\nwrote {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
