"""Benchmark scale-out on Ray: `index --ray` and `eval run --ray` on a local two-node cluster against one process.

    sudo .venv/bin/python bench/library_ray.py            # root: the cluster runs in private namespaces

Index: 6 generated 10 s 1280x720 clips with on-screen titles, OCR channel (real RapidOCR; the visual and
speech channels need model folders on every node, see docs/scale-out.md), indexed by one `grounding-agent
index` process and by `index --ray` on a head and a worker node of one CPU each (both on this machine, so
the cluster cannot be faster here: it measures the overhead and checks the rows). Eval: `eval run
--grounder prior` over 200 Charades-STA queries, one process against `--ray`. Walls are whole commands
(model loading included); the cluster's own start is timed apart. Writes bench/results/library_ray.json.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from bench._common import machine, now
from bench._ray import ADDRESS, BIN, can_start, two_node_cluster
from grounding_agent.io import write_json_atomic

CLIPS, SECONDS = 6, 10
GT = REPO.parent / "shared" / "data" / "charades_sta" / "charades_sta_test.txt"


def make_clips(folder: Path) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    for i in range(CLIPS):
        subprocess.run(
            ["ffmpeg", "-nostdin", "-loglevel", "error", "-y", "-f", "lavfi",
             "-i", f"testsrc2=size=1280x720:rate=25:duration={SECONDS}", "-vf",
             f"drawtext=text='TITLE NUMBER {i}':fontsize=64:fontcolor=white:box=1:boxcolor=black:"
             f"x=(w-tw)/2:y=(h-th)/2:enable='between(t,3,7)'",
             "-c:v", "libx264", "-preset", "ultrafast", "-pix_fmt", "yuv420p", str(folder / f"clip{i}.mp4")],
            check=True,
        )  # fmt: skip
    return folder


def main() -> int:
    if not can_start():
        print("needs root (unshare) for the private-namespace cluster", file=sys.stderr)
        return 2
    work = Path(tempfile.mkdtemp(prefix="ga-ray-bench-"))
    media = make_clips(work / "media")
    index = [f"{BIN}/grounding-agent", "index", str(media), "--no-visual", "--no-speech", "--json"]
    run = [f"{BIN}/grounding-agent", "eval", "run", "--dataset", "charades-sta", "--gt", str(GT),
           "--grounder", "prior", "--limit", "200", "--no-progress"]  # fmt: skip
    walls = {}
    for name, cmd in (("index_local", [*index, "--library", str(work / "lib-local")]),
                      ("eval_local", [*run, "--out", str(work / "eval-local")])):  # fmt: skip
        t0 = time.perf_counter()  # a cold model cache of its own: nothing computed before is read back
        env = {**os.environ, "GROUNDING_AGENT_CACHE": str(work / f"cache-{name}")}
        out = subprocess.run(cmd, capture_output=True, text=True, check=True, env=env).stdout
        walls[name] = time.perf_counter() - t0
        if name == "index_local":
            local_rows = json.loads(out)["rows"]
    t0 = time.perf_counter()
    done = two_node_cluster([
        "echo STARTED $(date +%s.%N)",
        " ".join([*index, "--library", str(work / "lib-ray"), "--ray", ADDRESS]) + f" > {work}/ray-index.json",
        "echo INDEXED $(date +%s.%N)",
        " ".join([*run, "--out", str(work / "eval-ray"), "--ray", ADDRESS]) + " > /dev/null",
        "echo EVALUATED $(date +%s.%N)",
    ], timeout_s=900, env={"GROUNDING_AGENT_CACHE": str(work / "cache-ray")})  # fmt: skip
    total = time.perf_counter() - t0
    if done.returncode != 0:
        print(done.stderr[-3000:], file=sys.stderr)
        return 1
    marks = {
        line.split()[0]: float(line.split()[1]) for line in done.stdout.splitlines() if line[:1].isupper()
    }
    walls["index_ray"] = marks["INDEXED"] - marks["STARTED"]
    walls["eval_ray"] = marks["EVALUATED"] - marks["INDEXED"]
    walls["cluster_start_stop"] = total - walls["index_ray"] - walls["eval_ray"]
    ray_rows = json.loads((work / "ray-index.json").read_text())["rows"]
    key = lambda rows: [(r["path"], r["status"], r["reason"]) for r in rows]  # noqa: E731
    preds = {}
    for side in ("local", "ray"):
        lines = (work / f"eval-{side}" / "predictions.jsonl").read_text().splitlines()
        preds[side] = {r["qid"]: r["pred_relevant_windows"] for r in map(json.loads, lines)}
    video_s = CLIPS * SECONDS
    result = {
        "bench": "library_ray", "when": now(), "machine": machine(),
        "cluster": "two `ray start` nodes of 1 CPU each on 127.0.0.1 (one machine)",
        "index": {"clips": CLIPS, "video_s": video_s, "size": "1280x720", "channels": ["ocr"],
                  "local_s": round(walls["index_local"], 2), "ray_s": round(walls["index_ray"], 2),
                  "local_x_realtime": round(video_s / walls["index_local"], 2),
                  "ray_x_realtime": round(video_s / walls["index_ray"], 2),
                  "overhead_s": round(walls["index_ray"] - walls["index_local"], 2),
                  "same_rows": key(local_rows) == key(ray_rows)},
        "eval": {"queries": 200, "grounder": "prior", "local_s": round(walls["eval_local"], 2),
                 "ray_s": round(walls["eval_ray"], 2), "overhead_s": round(walls["eval_ray"] - walls["eval_local"], 2),
                 "same_predictions": preds["local"] == preds["ray"]},
        "cluster_start_stop_s": round(walls["cluster_start_stop"], 2),
    }  # fmt: skip
    write_json_atomic(REPO / "bench" / "results" / "library_ray.json", result)
    print(json.dumps(result, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
