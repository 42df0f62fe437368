"""Benchmark frame sampling against what users pick today, side by side, in one run.

    .venv/bin/python bench/decode.py                                  # the full matrix (hours on 2 cores)
    .venv/bin/python bench/decode.py --minutes 10 60 --long-bframes 3 --rounds 3
    .venv/bin/python bench/decode.py --minutes 10 --bframes 3 0 --samplings 1fps 64 --methods ours torchcodec_exact

Methods (each in a fresh subprocess: warm page cache, clean peak RSS; imports timed apart as `import_s`):
  ours                  grounding_agent.media.video.sample_frames (GOP runs in parallel threads; the default)
  ours_serial           the same with one decoding thread (the decoder's own frame threading): the lever
  ours_stream           signals.iter_frame_chunks (60 s at a time, each chunk dropped once consumed): what a
                        streaming consumer (saliency, coarse passes) holds; peak RSS should not grow with length
  ours_stream_keyframes the same with keyframes_only=True: the coarse pass over a long video
  decord_get_batch      indices from the average fps, one get_batch call
  pyav_seek             seek to each target, decode forward to it (64 frames only: at 1 fps it decodes
                        every GOP ~15 times over)
  pyav_sequential       decode every frame in order, keep the first at or after each target
  torchcodec_exact      torchcodec VideoDecoder(seek_mode="exact").get_frames_played_at(targets), all cores
  torchcodec_approx     the same with seek_mode="approximate"
  torchcodec_stream     torchcodec exact, 60 s of targets per call, each chunk dropped: the streaming peer
  ffmpeg_fps            `ffmpeg -vf fps=R -f rawvideo -pix_fmt rgb24 pipe:` read into numpy (1 fps only)
  floor_all             `ffmpeg -f null`: decode every frame, no conversion (the decode floor)
  floor_nonref          the same with `-skip_frame noref` (the floor for sparse sampling with B-frames)
  floor_keyframes       the same with `-skip_frame nokey` (what a keyframe-only coarse pass costs)

Videos: testsrc2 encoded once with libx264 preset medium (CABAC, 3 B-frames, or none with --bframes 0), GOP
250, cached under ~/.cache/grounding-agent/bench/; longer videos are that 10-min encode joined end to end
with ffmpeg's concat demuxer (stream copy: the same encoder settings, minutes instead of hours to make).
Samplings: `1fps` (every second of the video) and `64` (64 frames spread evenly). On videos longer than
10 min, 1 fps runs only our streaming methods and the keyframe floor: holding every frame of an hour of
720p is 10 GB (the point of streaming). Rounds are interleaved (round 1 of every method, then round 2, ...),
so a background load hits every method alike; reported min / median / max of wall and CPU seconds, peak RSS,
minor page faults (fresh pages the kernel zeroed: their cost varies a lot in this VM),
and whether the timestamps agree with ours within one frame and the pixels are identical. Prints a table
and writes bench/results/decode.json.
"""

from __future__ import annotations

import argparse
import hashlib
import importlib
import json
import math
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from grounding_agent.io import write_json_atomic

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
from bench._common import machine, spread

CACHE = Path(os.environ.get("GA_CACHE_DIR", Path.home() / ".cache" / "grounding-agent")) / "bench"
METHODS = (
    "ours",
    "ours_serial",
    "ours_stream",
    "ours_stream_keyframes",
    "decord_get_batch",
    "pyav_seek",
    "pyav_sequential",
    "torchcodec_exact",
    "torchcodec_approx",
    "torchcodec_stream",
    "ffmpeg_fps",
    "floor_all",
    "floor_nonref",
    "floor_keyframes",
)
FLOORS = ("floor_all", "floor_nonref", "floor_keyframes")
STREAMING = ("ours_stream", "ours_stream_keyframes", "torchcodec_stream")
# Not the same frames as ours by design: no timestamp / pixel comparison.
NOT_COMPARED = (*FLOORS, "ours_stream_keyframes")
# Methods that make no sense for a sampling (see the module docstring).
SKIP = {
    "1fps": {"pyav_seek"},
    "64": {"pyav_sequential", "ffmpeg_fps", "floor_all", "floor_nonref", *STREAMING},
}
# 1 fps past 10 min: only what does not hold every frame (and the cheap keyframe floor); torchcodec's
# streaming peer runs at 10 min (past that it adds 3 min a round per hour of video, and RSS is ours to show).
LONG_1FPS = {"ours_stream", "ours_stream_keyframes", "floor_keyframes"}
IMPORTS = {  # by the method's first word
    "ours": ("grounding_agent.media.video", "grounding_agent.highlights.curves"),
    "decord": ("decord",),
    "pyav": ("av",),
    "torchcodec": ("torchcodec.decoders",),
    "ffmpeg": ("av",),
}
STREAM_CHUNK = 60  # targets per streamed call: signals.DEFAULT_CHUNK_S at 1 fps
BASE_S = 600  # the encode that longer videos are joined from


# --- video generation -------------------------------------------------------------------------------


def ensure_video(
    width: int, height: int, duration_s: int, bframes: int, fps: int = 30, gop: int = 250
) -> Path:
    """Generate (once) a testsrc2 clip with x264 medium + CABAC; written to a temp name, then renamed.

    Past `BASE_S` (a whole number of times it), the base encode is joined end to end by stream copy.
    """
    path = CACHE / f"x264medium_{width}x{height}_{fps}fps_{duration_s}s_bf{bframes}.mp4"
    tmp = path.with_suffix(".part.mp4")
    while not path.exists() and tmp.exists() and time.time() - tmp.stat().st_mtime < 60:
        time.sleep(10)  # another run is generating it right now
    if path.exists():
        return path
    if duration_s > BASE_S and duration_s % BASE_S:
        raise SystemExit(
            f"--minutes past {BASE_S // 60} must be multiples of {BASE_S // 60}, got {duration_s / 60:g}"
        )
    base = ensure_video(width, height, BASE_S, bframes, fps, gop) if duration_s > BASE_S else None
    CACHE.mkdir(parents=True, exist_ok=True)
    print(f"generating {path.name} (once) ...", flush=True)
    t0 = time.perf_counter()
    common = ["ffmpeg", "-nostdin", "-loglevel", "error", "-y"]
    if base is None:
        source = f"testsrc2=size={width}x{height}:rate={fps}:duration={duration_s}"
        subprocess.run(
            [*common, "-f", "lavfi", "-i", source,
             "-c:v", "libx264", "-preset", "medium", "-coder", "cabac", "-bf", str(bframes), "-g", str(gop),
             "-pix_fmt", "yuv420p", "-movflags", "+faststart", str(tmp)],
            check=True,
        )  # fmt: skip
    else:
        with tempfile.NamedTemporaryFile("w", suffix=".txt") as listing:
            listing.write(f"file '{base}'\n" * (duration_s // BASE_S))
            listing.flush()
            subprocess.run(
                [*common, "-f", "concat", "-safe", "0", "-i", listing.name, "-c", "copy",
                 "-movflags", "+faststart", str(tmp)],
                check=True,
            )  # fmt: skip
    os.replace(tmp, path)
    print(f"  {time.perf_counter() - t0:.0f} s, {path.stat().st_size / 1e6:.0f} MB", flush=True)
    return path


# --- workers (one per subprocess) -------------------------------------------------------------------


def _usage(who: int) -> tuple[float, float]:
    r = resource.getrusage(who)
    return r.ru_utime + r.ru_stime, r.ru_maxrss / 1024


def _faults() -> int:
    """Minor page faults so far (this process and its children): fresh pages the kernel had to zero."""
    return sum(resource.getrusage(who).ru_minflt for who in (resource.RUSAGE_SELF, resource.RUSAGE_CHILDREN))


def targets_for(sampling: str, duration_s: float):
    """The target times every method is asked for: k / 1 s, or 64 spread evenly (ours' own rule)."""
    import numpy as np

    if sampling == "1fps":
        return np.arange(int(np.ceil(duration_s - 1e-9))) * 1.0
    return np.arange(64) * (duration_s / 64)


def worker(method: str, path: str, sampling: str, duration_s: float) -> dict:
    """Sample with one method; returns timings, peak RSS, timestamps and a pixel digest."""
    import numpy as np

    targets = targets_for(sampling, duration_s)
    kw = {"fps": 1.0} if sampling == "1fps" else {"max_frames": 64}
    pixels = None
    timestamps: list[float] = []
    digest = None
    # Imports are a once-per-process cost (torch's alone is seconds): timed apart, not in wall_s.
    t_import = time.perf_counter()
    for module in IMPORTS.get(method.split("_")[0], ()):
        importlib.import_module(module)
    import_s = time.perf_counter() - t_import
    t0, (c0, _), faults0 = time.perf_counter(), _usage(resource.RUSAGE_SELF), _faults()
    if method in ("ours", "ours_serial"):
        from grounding_agent.media import decode as video

        if method == "ours_serial":
            video._DECODE_WORKERS = 1
        frames = video.sample_frames(path, **kw)
        pixels, timestamps = frames.pixels, frames.timestamps_s.tolist()
    elif method in ("ours_stream", "ours_stream_keyframes"):
        from grounding_agent.media.decode import iter_frame_chunks

        digest = hashlib.sha1()  # the chunks are not kept: hash them as they come
        for chunk in iter_frame_chunks(path, fps=1.0, keyframes_only=method == "ours_stream_keyframes"):
            timestamps += chunk.timestamps_s.tolist()
            for frame in chunk.pixels:
                digest.update(frame.data)
    elif method == "torchcodec_stream":
        from torchcodec.decoders import VideoDecoder

        digest = hashlib.sha1()
        decoder = VideoDecoder(path, seek_mode="exact", num_ffmpeg_threads=0, dimension_order="NHWC")
        for chunk in np.array_split(targets, max(1, math.ceil(len(targets) / STREAM_CHUNK))):
            batch = decoder.get_frames_played_at(seconds=chunk.tolist())
            timestamps += batch.pts_seconds.tolist()
            for frame in batch.data.numpy():
                digest.update(np.ascontiguousarray(frame).data)
    elif method == "decord_get_batch":
        import decord

        reader = decord.VideoReader(path)
        n, avg_fps = len(reader), reader.get_avg_fps()
        indices = np.unique(np.round(targets * avg_fps).astype(int).clip(0, n - 1))
        pixels = reader.get_batch(indices.tolist()).asnumpy()
        timestamps = reader.get_frame_timestamp(indices)[:, 0].astype(np.float64).tolist()
    elif method in ("pyav_seek", "pyav_sequential"):
        pixels, timestamps = _pyav(path, targets, seek=method == "pyav_seek")
    elif method.startswith("torchcodec"):
        from torchcodec.decoders import VideoDecoder

        mode = "exact" if method == "torchcodec_exact" else "approximate"
        decoder = VideoDecoder(path, seek_mode=mode, num_ffmpeg_threads=0, dimension_order="NHWC")
        batch = decoder.get_frames_played_at(seconds=targets.tolist())
        pixels, timestamps = batch.data.numpy(), batch.pts_seconds.tolist()
    elif method == "ffmpeg_fps":
        pixels, timestamps = _ffmpeg_fps(path, targets)
    elif method in FLOORS:
        skip = {
            "floor_all": [],
            "floor_nonref": ["-skip_frame", "noref"],
            "floor_keyframes": ["-skip_frame", "nokey"],
        }
        subprocess.run(
            ["ffmpeg", "-nostdin", "-loglevel", "error", *skip[method], "-i", path, "-map", "0:v:0", "-f", "null", "-"],
            check=True,
        )  # fmt: skip
    else:
        raise SystemExit(f"unknown method {method}")
    wall_s, faults = time.perf_counter() - t0, _faults() - faults0
    cpu_self, rss_self = _usage(resource.RUSAGE_SELF)
    cpu_kids, rss_kids = _usage(resource.RUSAGE_CHILDREN)
    digest = digest if method in STREAMING else hashlib.sha1()
    for frame in pixels if pixels is not None else ():  # frame by frame: no second copy of the output
        digest.update(np.ascontiguousarray(frame).data)
    return {
        "wall_s": wall_s,
        "import_s": import_s,
        "cpu_s": cpu_self - c0 + cpu_kids,
        "peak_rss_mb": max(rss_self, rss_kids),
        "minor_faults": faults,
        "n_frames": len(timestamps),
        "timestamps_s": [round(float(t), 6) for t in timestamps],
        "pixel_sha1": digest.hexdigest() if pixels is not None or method in STREAMING else None,
    }


def _pyav(path: str, targets, *, seek: bool):
    import av
    import numpy as np

    out, stamps = [], []
    with av.open(path) as container:
        stream = container.streams.video[0]
        stream.thread_type = "AUTO"
        frames = None if seek else container.decode(stream)
        for t in targets:
            if seek:
                container.seek(int(t / stream.time_base), stream=stream, backward=True)
                frames = container.decode(stream)
            for frame in frames:
                if frame.time >= t - 1e-6:
                    out.append(frame.to_ndarray(format="rgb24"))
                    stamps.append(frame.time)
                    break
    return np.stack(out), stamps


def _ffmpeg_fps(path: str, targets):
    """ffmpeg's fps filter to an rgb24 pipe; its timestamps are the output grid (k / rate)."""
    import av
    import numpy as np

    with av.open(path) as container:
        s = container.streams.video[0]
        w, h = s.codec_context.width, s.codec_context.height
    proc = subprocess.run(
        ["ffmpeg", "-nostdin", "-loglevel", "error", "-i", path, "-map", "0:v:0", "-vf", "fps=1",
         "-f", "rawvideo", "-pix_fmt", "rgb24", "pipe:"],
        check=True, stdout=subprocess.PIPE,
    )  # fmt: skip
    pixels = np.frombuffer(proc.stdout, np.uint8).reshape(-1, h, w, 3)
    return pixels, [float(t) for t in np.arange(len(pixels))]


def run_worker(method: str, path: Path, sampling: str, duration_s: float) -> dict:
    with tempfile.NamedTemporaryFile(suffix=".json") as out:
        cmd = [sys.executable, __file__, "--worker", method, "--video", str(path), "--sampling", sampling,
               "--duration", str(duration_s), "--worker-out", out.name]  # fmt: skip
        subprocess.run(cmd, check=True, cwd=REPO, env={**os.environ, "PYTHONPATH": str(REPO)})
        return json.loads(Path(out.name).read_text())


def warm_page_cache(path: Path) -> None:
    with path.open("rb") as f:
        while f.read(1 << 24):
            pass


# --- one video x sampling ---------------------------------------------------------------------------


def agree_within_one_frame(ours: list[float], other: list[float], avg_fps: float) -> tuple[bool, float]:
    """Same count and every timestamp within one frame duration; returns (ok, max abs diff in s)."""
    if len(ours) != len(other):
        return False, float("inf")
    worst = max((abs(a - b) for a, b in zip(ours, other)), default=0.0)
    return worst <= 1.0 / avg_fps + 1e-3, worst


def bench_case(path: Path, sampling: str, methods: list[str], rounds: int) -> dict:
    from grounding_agent.media.video import open_video

    video = open_video(path)
    warm_page_cache(path)
    chosen = [m for m in methods if m not in SKIP[sampling]]
    if sampling == "1fps" and video.duration_s > BASE_S + 1:
        chosen = [m for m in chosen if m in LONG_1FPS]
    runs: dict[str, list[dict]] = {m: [] for m in chosen}
    for r in range(rounds):  # interleaved, so background load hits every method alike
        for m in chosen:
            res = run_worker(m, path, sampling, video.duration_s)
            runs[m].append(res)
            print(f"  [{r + 1}/{rounds}] {m:21s} wall {res['wall_s']:7.2f} s  cpu {res['cpu_s']:7.2f} s  "
                  f"rss {res['peak_rss_mb']:6.0f} MB", flush=True)  # fmt: skip
    reference = next((m for m in ("ours", "ours_stream") if m in runs), None)  # what the others must match
    ours = runs[reference][0] if reference else None
    table = {}
    for m, rs in runs.items():
        first = rs[0]
        row = {
            "wall_s": spread([x["wall_s"] for x in rs]),
            "import_s": spread([x["import_s"] for x in rs]),
            "cpu_s": spread([x["cpu_s"] for x in rs]),
            "peak_rss_mb": spread([x["peak_rss_mb"] for x in rs]),
            "minor_faults": spread([x["minor_faults"] for x in rs]),
            "n_frames": first["n_frames"],
            "wall_s_all": [round(x["wall_s"], 3) for x in rs],
        }
        if ours is not None and m not in NOT_COMPARED:
            ok, worst = agree_within_one_frame(ours["timestamps_s"], first["timestamps_s"], video.avg_fps)
            row |= {"timestamps_within_one_frame": ok, "max_timestamp_diff_s": worst,
                    "pixels_identical_to_ours": first["pixel_sha1"] == ours["pixel_sha1"]}  # fmt: skip
        table[m] = row
    if reference:
        for row in table.values():  # > 1: ours is faster
            row["ours_speedup_wall"] = row["wall_s"]["median"] / table[reference]["wall_s"]["median"]
    return {"video": video.to_dict() | {"path": path.name}, "sampling": sampling, "rounds": rounds,
            "reference": reference, "methods": table}  # fmt: skip


def print_case(case: dict) -> None:
    v = case["video"]
    print(f"\n{v['path']}: {v['duration_s'] / 60:.0f} min, {v['width']}x{v['height']}, {v['num_frames']} frames; "
          f"sampling {case['sampling']}; min/median/max of {case['rounds']} interleaved rounds")  # fmt: skip
    print(f"{'method':21s} {'frames':>6s} {'wall s (min/med/max)':>22s} {'cpu s med':>9s} {'rss MB':>7s} "
          f"{'ours x':>7s} {'ts ok':>6s} {'same px':>7s}")  # fmt: skip
    for m, r in case["methods"].items():
        w = r["wall_s"]
        print(f"{m:21s} {r['n_frames']:6d} {w['min']:6.2f} /{w['median']:6.2f} /{w['max']:6.2f} "
              f"{r['cpu_s']['median']:9.2f} {r['peak_rss_mb']['max']:7.0f} {r.get('ours_speedup_wall', 0):7.2f} "
              f"{r.get('timestamps_within_one_frame', '-')!s:>6s} {r.get('pixels_identical_to_ours', '-')!s:>7s}")  # fmt: skip


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument(
        "--minutes", type=int, nargs="+", default=[10, 60, 120], help="video lengths (default 10 60 120)"
    )
    p.add_argument("--bframes", type=int, nargs="+", default=[3, 0], help="B-frame settings (default 3 0)")
    p.add_argument("--samplings", nargs="+", choices=["1fps", "64"], default=["1fps", "64"])
    p.add_argument("--methods", nargs="+", choices=METHODS, default=list(METHODS))
    p.add_argument("--rounds", type=int, default=3, help="interleaved rounds per method (default 3)")
    p.add_argument(
        "--long-bframes",
        type=int,
        nargs="+",
        help="B-frame settings past 10 min (default: those of --bframes)",
    )
    p.add_argument("--size", default="1280x720", help="resolution (default 1280x720)")
    p.add_argument("--out", type=Path, default=REPO / "bench" / "results" / "decode.json")
    p.add_argument("--worker", choices=METHODS, help=argparse.SUPPRESS)
    p.add_argument("--video", help=argparse.SUPPRESS)
    p.add_argument("--sampling", help=argparse.SUPPRESS)
    p.add_argument("--duration", type=float, help=argparse.SUPPRESS)
    p.add_argument("--worker-out", help=argparse.SUPPRESS)
    args = p.parse_args()

    if args.worker:
        Path(args.worker_out).write_text(
            json.dumps(worker(args.worker, args.video, args.sampling, args.duration))
        )
        return 0

    cases: list[dict] = []
    t0 = time.time()

    def save() -> None:  # after every case, so a long run that is stopped still leaves its results
        result = {
            "bench": "decode",
            "when": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(t0)),
            "machine": machine(),
            "cases": cases,
        }
        write_json_atomic(args.out, result)

    # Length outermost: a run stopped early has every method on the shorter videos.
    w, h = map(int, args.size.split("x"))
    for minutes in args.minutes:
        for bframes in args.bframes if minutes * 60 <= BASE_S else args.long_bframes or args.bframes:
            path = ensure_video(w, h, minutes * 60, bframes)
            for sampling in args.samplings:
                print(f"{path.name}, {sampling}:", flush=True)
                cases.append(bench_case(path, sampling, args.methods, args.rounds) | {"b_frames": bframes})
                print_case(cases[-1])
                save()
    for case in cases:
        print_case(case)
    print(f"\nwrote {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
