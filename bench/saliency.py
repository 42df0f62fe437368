"""Benchmark CLIP saliency on CPU: vision backends (fp32 torch vs ONNX Runtime fp32 / int8) and the cache.

    .venv/bin/python bench/saliency.py                 # ViT-B/32 architecture, random weights, 64 frames
    .venv/bin/python bench/saliency.py --frames 32 --batch-size 8 --threads 2

The model is the full-size CLIP ViT-B/32 architecture with random weights (`build_clip_vit_b32`, built
once under ~/.cache/grounding-agent/bench/); speed does not depend on the weight values. Frames are
real (the shared Charades clip Y1HGC), preprocessed once by the model's processor so only the vision
tower is timed. Per backend, min / median / max of interleaved rounds (every backend once per round):
frames/s by wall clock and by process CPU time (the fairer number on a shared machine), the share of the
compute floor (this CPU's own fp32 matmul rate, measured first, over the tower's FLOPs per frame), one-time
setup (ONNX export / quantisation / session), and equivalence to fp32 torch (cosine of each frame's
embedding: min and mean). The CPU's int8/bf16 matrix flags (VNNI, AMX) are recorded: they decide what int8
can buy. Then a full `ClipSaliency.curve` call on the clip:
cache miss (decode + encode + store) vs hits: the same call again in a fresh scorer (frames and text
from disk), and a new query (text tower runs: first in the process, and on a warm scorer).
Prints a table and writes bench/results/saliency.json.
"""

from __future__ import annotations

import argparse
import functools
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

from grounding_agent.io import write_json_atomic

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
from bench._common import cpuinfo, machine, now

CACHE = Path(os.environ.get("GA_CACHE_DIR", Path.home() / ".cache" / "grounding-agent")) / "bench"
CLIP = REPO.parent / "shared" / "data" / "videos" / "univtg_charades_Y1HGC.mp4"
QUERY = "a person walks in a doorway drinking some coffee."


def ensure_model() -> Path:
    """ViT-B/32 with random weights, built once (in a temp folder, then renamed: never half-written)."""
    from tests.assets.build_tiny_models import build_clip_vit_b32

    final = CACHE / "clip_vit_b32_random"
    if not (final / "config.json").is_file():
        CACHE.mkdir(parents=True, exist_ok=True)
        tmp = Path(tempfile.mkdtemp(prefix="clip_vit_b32.", dir=CACHE))
        print("building CLIP ViT-B/32 (random weights, once) ...", flush=True)
        build_clip_vit_b32(tmp)
        os.replace(tmp, final)
    return final


def timed(fn):
    wall, cpu = time.perf_counter(), time.process_time()
    out = fn()
    return out, time.perf_counter() - wall, time.process_time() - cpu


def _encode_all(encode, batches) -> np.ndarray:
    return np.concatenate([encode(b) for b in batches])


def cpu_flags() -> list[str]:
    """The CPU's int8 / bf16 matrix-instruction flags (what int8 and bf16 speed depends on)."""
    flags = (cpuinfo("flags") or "").split()
    wanted = ("avx2", "avx512f", "avx512_vnni", "avx_vnni", "avx512_bf16", "amx_bf16", "amx_int8", "amx_tile")
    return [f for f in wanted if f in flags]


def matmul_rate(threads: int, n: int = 1024, seconds: float = 2.0) -> dict:
    """The CPU's own fp32 matmul rate (torch, `threads` threads): GFLOP/s per wall second and per CPU-second.

    The vision tower is nearly all matmuls of this kind, so frames/s x FLOPs/frame over this rate is how
    close a backend runs to the compute floor.
    """
    import torch

    a, b = torch.randn(n, n), torch.randn(n, n)
    for _ in range(3):
        a @ b  # warm-up: thread pool, kernel choice
    count, t0, c0 = 0, time.perf_counter(), time.process_time()
    while time.perf_counter() - t0 < seconds:
        a @ b
        count += 1
    wall, cpu = time.perf_counter() - t0, time.process_time() - c0
    flops = 2.0 * n**3 * count
    return {
        "n": n,
        "threads": threads,
        "gflops_per_s": flops / wall / 1e9,
        "gflops_per_cpu_s": flops / cpu / 1e9,
    }


def vision_flops_per_frame(model) -> float:
    """FLOPs of one 224-px frame through the vision tower and projection (torch's FLOP counter)."""
    import torch
    from torch.utils.flop_counter import FlopCounterMode

    size = int(model.config.vision_config.image_size)
    with torch.no_grad(), FlopCounterMode(display=False) as counter:
        model.get_image_features(pixel_values=torch.zeros(1, 3, size, size))
    return float(counter.get_total_flops())


def bench_backends(
    model_dir: Path, n_frames: int, batch_size: int, work: Path, rounds: int, floor: dict
) -> tuple[list[dict], dict]:
    import torch
    from transformers import AutoModel, AutoProcessor

    from grounding_agent.highlights.vision_backends import BACKENDS
    from grounding_agent.highlights.vision_backends import unit as _unit
    from grounding_agent.media.decode import sample_frames

    model = AutoModel.from_pretrained(model_dir, dtype="float32").eval()
    processor = AutoProcessor.from_pretrained(model_dir)
    flops = vision_flops_per_frame(model)
    frames = sample_frames(CLIP, max_frames=n_frames, max_pixels=400 * 225)
    batch = torch.from_numpy(frames.pixels).permute(0, 3, 1, 2)  # as ClipSaliency.encode_frames passes them
    pixels, prep_s, prep_cpu = timed(lambda: processor.image_processor(images=batch, return_tensors="pt"))
    pixels = pixels["pixel_values"].float().numpy()
    prep = {
        "frames": len(pixels),
        "frames_per_s": len(pixels) / prep_s,
        "frames_per_cpu_s": len(pixels) / prep_cpu,
    }

    batches = [pixels[i : i + batch_size] for i in range(0, len(pixels), batch_size)]
    encoders, setup = {}, {}
    for name, build in BACKENDS.items():
        encoders[name], setup[name], _ = timed(functools.partial(build, model, work / name))
        encoders[name](pixels[:batch_size])  # warm-up: first-call allocations, oneDNN/ORT kernel selection
    walls = {name: [] for name in encoders}
    cpus = {name: [] for name in encoders}
    outs = {}
    for r in range(rounds):  # interleaved: background load hits every backend alike
        for name, encode in encoders.items():
            out, wall, cpu = timed(functools.partial(_encode_all, encode, batches))
            walls[name].append(wall)
            cpus[name].append(cpu)
            outs[name] = _unit(out)
            print(f"  [{r + 1}/{rounds}] {name:10s} {len(pixels) / wall:6.1f} frames/s", flush=True)
    floor_fps = floor["gflops_per_s"] * 1e9 / flops
    floor_fps_cpu = floor["gflops_per_cpu_s"] * 1e9 / flops
    rows, reference = [], outs["torch"]
    for name in encoders:
        cos = (outs[name] * reference).sum(axis=1)
        fps = sorted(len(pixels) / w for w in walls[name])
        fps_cpu = statistics.median(len(pixels) / c for c in cpus[name])
        rows.append(
            {
                "backend": name,
                "frames": len(pixels),
                "batch_size": batch_size,
                "rounds": rounds,
                "setup_s": setup[name],
                "frames_per_s": statistics.median(fps),
                "frames_per_s_min": fps[0],
                "frames_per_s_max": fps[-1],
                "frames_per_cpu_s": fps_cpu,
                # FLOP-equivalent share of the measured fp32 matmul rate (int8 can exceed 1)
                "share_of_fp32_matmul_rate": statistics.median(fps) / floor_fps,
                "share_of_fp32_matmul_rate_per_cpu_s": fps_cpu / floor_fps_cpu,
                "cos_min": float(cos.min()),
                "cos_mean": float(cos.mean()),
            }
        )
    base = rows[0]
    for r in rows:
        r["speedup_wall"] = r["frames_per_s"] / base["frames_per_s"]
        r["speedup_cpu"] = r["frames_per_cpu_s"] / base["frames_per_cpu_s"]
    prep["vision_gflops_per_frame"] = flops / 1e9
    prep["compute_floor_frames_per_s"] = floor_fps
    return rows, prep


def bench_cache(model_dir: Path, backend: str, work: Path) -> dict:
    """Miss: decode + preprocess + encode + store. The one-time ONNX export is done beforehand."""
    from grounding_agent.highlights.clip import ClipSaliency

    cache = work / "embeddings"
    ClipSaliency.from_pretrained(model_dir, backend=backend, cache_dir=cache).encode_frames(
        np.zeros((1, 224, 224, 3), np.uint8)
    )
    miss_sal = ClipSaliency.from_pretrained(model_dir, backend=backend, cache_dir=cache)
    curve, miss_s, _ = timed(lambda: miss_sal.curve(CLIP, QUERY))
    repeat, cold, warm, loads = [], [], [], []
    for i in range(3):  # fresh scorers (nothing in memory), median of three: the machine is shared
        sal = ClipSaliency.from_pretrained(model_dir, backend=backend, cache_dir=cache)
        # the same call again from a fresh scorer: frames and text both come from the disk cache
        repeat.append(timed(lambda: sal.curve(CLIP, QUERY))[1])  # noqa: B023 (called at once)
        # a new query: the text tower runs; the first time in a process it also pages in its weights
        cold.append(timed(lambda: sal.curve(CLIP, f"someone opens door number {i}"))[1])  # noqa: B023
        warm.append(timed(lambda: sal.curve(CLIP, f"someone closes window number {i}"))[1])  # noqa: B023
        loads.append(timed(lambda: sal.embed(CLIP))[1])  # noqa: B023
        assert (sal.stats.hits, sal.stats.frames_encoded, sal.stats.texts_encoded) == (4, 0, 2)
    repeat_s, cold_s, warm_s, load_s = (statistics.median(x) for x in (repeat, cold, warm, loads))
    return {
        "backend": backend,
        "frames": len(curve),
        "fps": miss_sal.fps,
        "miss_s": miss_s,
        "hit_same_call_s": repeat_s,
        "hit_new_query_cold_process_s": cold_s,
        "hit_new_query_warm_s": warm_s,
        "hit_embeddings_only_s": load_s,
        "speedup_same_call": miss_s / repeat_s,
        "speedup_new_query_cold": miss_s / cold_s,
        "speedup_new_query_warm": miss_s / warm_s,
    }


def print_table(rows: list[dict], prep: dict, cache: dict) -> None:
    r0 = rows[0]
    print(f"\nvision tower, CLIP ViT-B/32 (random weights, {prep['vision_gflops_per_frame']:.1f} GFLOP/frame), "
          f"{r0['frames']} frames, batch {r0['batch_size']}, min/median/max of {r0['rounds']} interleaved rounds")  # fmt: skip
    heads = (
        "frames/s min/med/max",
        "frames/CPU-s",
        "x torch",
        "x (CPU)",
        "% floor",
        "% fl/CPU",
        "cos min",
        "setup s",
    )
    widths = (22, 13, 8, 8, 8, 9, 8, 8)
    print(f"{'backend':10s} " + " ".join(f"{h:>{w}s}" for h, w in zip(heads, widths, strict=True)))
    for r in rows:
        print(
            f"{r['backend']:10s} {r['frames_per_s_min']:6.1f} /{r['frames_per_s']:6.1f} /{r['frames_per_s_max']:6.1f}"
            f" {r['frames_per_cpu_s']:13.2f} {r['speedup_wall']:8.2f} {r['speedup_cpu']:8.2f}"
            f" {100 * r['share_of_fp32_matmul_rate']:7.0f}% {100 * r['share_of_fp32_matmul_rate_per_cpu_s']:8.0f}%"
            f" {r['cos_min']:8.4f} {r['setup_s']:8.1f}"
        )
    print(
        f"compute floor (this CPU's fp32 matmul rate / FLOPs per frame): {prep['compute_floor_frames_per_s']:.1f} frames/s"
    )
    print(
        f"preprocessing (CLIPProcessor, batched uint8 tensor): {prep['frames_per_s']:.0f} frames/s,"
        f" {prep['frames_per_cpu_s']:.0f} frames/CPU-s"
    )
    print(f"cpu flags: {' '.join(cpu_flags())}")
    if cache is None:
        return
    what = f"{cache['frames']} frames at {cache['fps']:g} fps, {cache['backend']}"
    print(f"\ncache, ClipSaliency.curve on {CLIP.name} ({what}):")
    rows = [
        ("miss (decode + preprocess + encode + store)", cache["miss_s"], 1.0),
        ("hit, same call again (fresh scorer)", cache["hit_same_call_s"], cache["speedup_same_call"]),
        (
            "hit, new query, first in process",
            cache["hit_new_query_cold_process_s"],
            cache["speedup_new_query_cold"],
        ),
        ("hit, new query, warm scorer", cache["hit_new_query_warm_s"], cache["speedup_new_query_warm"]),
    ]
    for label, seconds, speedup in rows:
        print(f"  {label:46s} {seconds:8.3f} s  {speedup:7.0f}x")
    print(f"  {'loading the cached frame embeddings alone':46s} {cache['hit_embeddings_only_s']:8.4f} s")


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--frames", type=int, default=64)
    p.add_argument("--batch-size", type=int, default=16)
    p.add_argument("--threads", type=int, default=os.cpu_count(), help="torch and ONNX Runtime threads")
    p.add_argument("--rounds", type=int, default=3, help="interleaved rounds per backend (default 3)")
    p.add_argument("--skip-cache", action="store_true", help="only the backends (skip the cache section)")
    p.add_argument("--out", type=Path, default=REPO / "bench" / "results" / "saliency.json")
    args = p.parse_args()

    os.environ["GROUNDING_AGENT_THREADS"] = str(args.threads)
    import torch

    from grounding_agent.defaults import HIGHLIGHTS

    torch.set_num_threads(args.threads)
    model_dir = ensure_model()
    floor = matmul_rate(args.threads)
    print(
        f"fp32 matmul: {floor['gflops_per_s']:.0f} GFLOP/s, {floor['gflops_per_cpu_s']:.0f} GFLOP/CPU-s",
        flush=True,
    )
    with tempfile.TemporaryDirectory(prefix="bench-saliency-") as tmp:
        rows, prep = bench_backends(model_dir, args.frames, args.batch_size, Path(tmp), args.rounds, floor)
        cache = None if args.skip_cache else bench_cache(model_dir, HIGHLIGHTS.backend, Path(tmp))
    print_table(rows, prep, cache)
    result = {
        "bench": "saliency",
        "when": now(),
        "machine": machine(threads=args.threads, torch=torch.__version__, cpu_flags=cpu_flags()),
        "fp32_matmul": floor,
        "model": "CLIP ViT-B/32 architecture (CLIPConfig defaults), random weights, fp32",
        "backends": rows,
        "preprocessing": prep,
        "cache": cache,
    }
    write_json_atomic(args.out, result)
    print(f"\nwrote {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
