"""Benchmark start-up: cold process time of the light CLI commands, and where a `ground --backend hf` run goes.

    .venv/bin/python bench/startup.py                  # 5 interleaved rounds
    .venv/bin/python bench/startup.py --rounds 3 --model ~/.cache/grounding-agent/tiny-models-*/qwen2_5_vl

Part 1: each light command (`--help`, `probe`, `plan`, `eval score`, `ground --backend vllm` against a
local OpenAI-compatible test double that answers at once, in a process of its own) runs as a fresh
`grounding-agent` console-script process, interpreter start to exit, with bytecode compiled as after an
install (one untimed warm-up run each); reported: wall and CPU seconds (min / median / max of interleaved
rounds) and whether torch / transformers were imported (they must not be; checked by the start-up test's
runner). `ground` runs twice: as installed here, and with trio hidden (a shim module that raises
ImportError) as on a user's install without the dev extra, whose selenium brings trio, which httpcore2
(httpx2's transport, the grounder's HTTP client) imports whenever present (~65 ms).
Part 2: one `ground --backend hf` on the tiny Qwen2.5-VL (built offline), in a fresh process, split into
imports (ours, torch, torchvision, transformers' processor and model modules), model load, decode,
preprocess, generate and the rest (process wall minus all of those: interpreter start, parsing, output).
The tiny model's compute is negligible: with a real 7B model generate dominates.
Prints a table and writes bench/results/startup.json.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from grounding_agent.io import write_json_atomic

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
CLIP = REPO.parent / "shared" / "data" / "videos" / "timer1_charades_OHOFG.mp4"
DATA = REPO.parent / "shared" / "data"

from bench._common import machine, spread

# The start-up test's runner (reports the heavy modules a command loads) and its server double.
from tests.test_startup import _RUNNER, FAKE_SERVER

CONSOLE_SCRIPT = Path(sys.executable).with_name("grounding-agent")

COMMANDS = {
    "--help": ["--help"],
    "probe": ["probe", str(CLIP)],
    "plan": ["plan", "the person opens the door, then sits down"],
    "eval score": ["eval", "score", "--dataset", "charades-sta",
                   "--gt", str(DATA / "charades_sta" / "charades_sta_test.txt"),
                   "--pred", str(DATA / "predictions" / "vmr_axiou_2dtan" / "2dtan_charades_sta_test_preds.jsonl")],
    "ground --backend vllm": ["ground", str(CLIP), "person sits down", "--backend", "vllm", "--server", "SERVER"],
}  # fmt: skip
# The same `ground` as a user's install without the dev extra runs it: selenium (dev) brings trio, which
# httpcore2 (httpx2's transport) imports whenever it is installed.
WITHOUT_TRIO = "ground --backend vllm, no trio"
COMMANDS[WITHOUT_TRIO] = COMMANDS["ground --backend vllm"]

_HF_CHILD = """
import json, sys, time
t, cpu = {}, {}
c0 = time.process_time()
def mark(name, t0):
    global c0
    t[name] = time.perf_counter() - t0
    cpu[name], c0 = time.process_time() - c0, time.process_time()
t0 = time.perf_counter(); import grounding_agent.cli.ground, grounding_agent.grounders.hf; mark("import ours", t0)
t0 = time.perf_counter(); import torch; mark("import torch", t0)
t0 = time.perf_counter(); import torchvision; mark("import torchvision (torch._dynamo via ops)", t0)
t0 = time.perf_counter(); import transformers.image_processing_utils, transformers.processing_utils
mark("import transformers processors (scipy.optimize via loss)", t0)
t0 = time.perf_counter(); from transformers import AutoModelForImageTextToText, AutoProcessor
import transformers.models.qwen2_5_vl.modeling_qwen2_5_vl, transformers.models.qwen2_5_vl.processing_qwen2_5_vl
mark("import transformers model", t0)
from grounding_agent.grounders.hf import HFGrounder
t0 = time.perf_counter(); g = HFGrounder(sys.argv[1], max_frames=32); mark("model load", t0)
t0 = time.perf_counter(); r = g.ground(sys.argv[2], "person sits down"); total = time.perf_counter() - t0
ground_cpu = time.process_time() - c0
for k in ("decode", "preprocess", "model"):
    t["generate" if k == "model" else k] = r.timings_s.get(k, 0.0)
t["ground: other"] = total - sum(r.timings_s.get(k, 0.0) for k in ("decode", "preprocess", "model"))
cpu["ground (decode + preprocess + generate + other)"] = ground_cpu
print("TIMES " + json.dumps({"wall": t, "cpu": cpu}))
"""


def _children_cpu_s() -> float:
    r = resource.getrusage(resource.RUSAGE_CHILDREN)
    return r.ru_utime + r.ru_stime


# What a user's install has: bytecode compiled (this workplace sets PYTHONDONTWRITEBYTECODE=1, which
# would recompile our modules in every run: ~0.1 s no user pays).
ENV = {k: v for k, v in os.environ.items() if k != "PYTHONDONTWRITEBYTECODE"}


def _hide_trio() -> str:
    """A folder whose `trio` module raises ImportError: put first on PYTHONPATH, trio looks uninstalled."""
    folder = tempfile.mkdtemp(prefix="bench-no-trio-")
    Path(folder, "trio.py").write_text('raise ImportError("hidden by bench/startup.py")\n')
    return folder


NO_TRIO_ENV = {**ENV, "PYTHONPATH": _hide_trio()}


def cold(argv: list[str], url: str, env: dict[str, str] = ENV) -> tuple[float, float]:
    """(wall s, CPU s) of one fresh `grounding-agent ARGV` process, interpreter start to exit."""
    argv = [a.replace("SERVER", url) for a in argv]
    t0, c0 = time.perf_counter(), _children_cpu_s()
    proc = subprocess.run([str(CONSOLE_SCRIPT), *argv], capture_output=True, text=True, cwd=REPO, env=env)
    wall, cpu = time.perf_counter() - t0, _children_cpu_s() - c0
    if proc.returncode != 0:
        raise SystemExit(f"grounding-agent {' '.join(argv)} failed:\n{proc.stderr[-2000:]}")
    return wall, cpu


def heavy_modules(argv: list[str]) -> list[str]:
    """The heavy modules (torch, transformers, ...) a command loads (the start-up test's runner; untimed)."""
    proc = subprocess.run([sys.executable, "-c", _RUNNER, *argv], capture_output=True, text=True, cwd=REPO)
    return json.loads(proc.stdout.rsplit("LOADED ", 1)[1])["modules"]


@contextlib.contextmanager
def fake_server():
    """The start-up test's OpenAI-compatible double in a process of its own (as a vLLM server is); its URL."""
    code = FAKE_SERVER + "print(server.server_address[1], flush=True)\nserver.serve_forever()\n"
    proc = subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE, text=True)
    try:
        yield f"http://127.0.0.1:{int(proc.stdout.readline())}/v1"
    finally:
        proc.terminate()
        proc.wait(timeout=10)


def hf_breakdown(model: Path) -> dict:
    t0, c0 = time.perf_counter(), _children_cpu_s()
    proc = subprocess.run([sys.executable, "-c", _HF_CHILD, str(model), str(CLIP)], capture_output=True,
                          text=True, cwd=REPO, env={**ENV, "TRANSFORMERS_VERBOSITY": "error"})  # fmt: skip
    wall, cpu = time.perf_counter() - t0, _children_cpu_s() - c0
    out = json.loads(proc.stdout.rsplit("TIMES ", 1)[1])
    times, cpus = out["wall"], out["cpu"]
    times["rest (interpreter start, exit)"] = wall - sum(times.values())
    cpus["rest (interpreter start, exit)"] = cpu - sum(cpus.values())
    return {"process_wall_s": wall, "process_cpu_s": cpu, "phases_s": times, "phases_cpu_s": cpus}


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--rounds", type=int, default=5, help="interleaved rounds (default 5)")
    p.add_argument("--model", type=Path, help="tiny Qwen2.5-VL folder (default: build/find the cached one)")
    p.add_argument("--out", type=Path, default=REPO / "bench" / "results" / "startup.json")
    args = p.parse_args()
    model = args.model
    if model is None:
        from tests.assets.build_tiny_models import cached_tiny_models

        model = cached_tiny_models()["qwen2_5_vl"]
    if not CONSOLE_SCRIPT.exists():
        raise SystemExit(f"{CONSOLE_SCRIPT} not found: install the package (make setup)")
    walls: dict[str, list[float]] = {name: [] for name in COMMANDS}
    cpus: dict[str, list[float]] = {name: [] for name in COMMANDS}
    loaded = {name: heavy_modules(argv) for name, argv in COMMANDS.items()}
    hf: list[dict] = []
    with fake_server() as url:
        for argv in COMMANDS.values():  # untimed: compiles our bytecode, warms the page cache
            cold(argv, url)
        for r in range(args.rounds):  # interleaved: background load hits every command alike
            for name, argv in COMMANDS.items():
                wall, cpu = cold(argv, url, NO_TRIO_ENV if name == WITHOUT_TRIO else ENV)
                walls[name].append(wall)
                cpus[name].append(cpu)
            hf.append(hf_breakdown(model))
            print(f"round {r + 1}/{args.rounds} done", flush=True)
    print(f"\ncold process, min / median / max of {args.rounds} interleaved rounds (load avg "
          f"{os.getloadavg()[0]:.1f} on {os.cpu_count()} cpus; CPU s is the fairer figure on a loaded machine)")  # fmt: skip
    for name, ws in walls.items():
        s, c = spread(ws), spread(cpus[name])
        print(f"  {name:24s} wall {s['min']:5.2f} / {s['median']:5.2f} / {s['max']:5.2f}   "
              f"cpu {c['min']:5.2f} / {c['median']:5.2f} / {c['max']:5.2f}   heavy modules: {loaded[name] or 'none'}")  # fmt: skip
    best = min(hf, key=lambda x: x["process_wall_s"])
    print(
        f"\nground --backend hf (tiny Qwen2.5-VL, 35 s clip), fastest of {len(hf)}: {best['process_wall_s']:.2f} s wall, "
        f"{best['process_cpu_s']:.2f} s CPU"
    )
    for key, label in (("phases_s", "wall"), ("phases_cpu_s", "CPU")):
        print(f"  {label} seconds, median (min-max):")
        for phase in best[key]:
            vals = [x[key][phase] for x in hf]
            print(f"    {phase:58s} {statistics.median(vals):6.2f}  ({min(vals):.2f}-{max(vals):.2f})")
    write_json_atomic(args.out, {
        "bench": "startup",
        "when": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "machine": machine(),
        "cold_wall_s": {k: spread(v) | {"all": v} for k, v in walls.items()},
        "cold_cpu_s": {k: spread(v) | {"all": v} for k, v in cpus.items()},
        "heavy_modules_loaded": loaded,
        "hf_ground": hf,
    })  # fmt: skip
    print(f"\nwrote {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
