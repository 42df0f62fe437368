"""Benchmark scale-out on Ray: `index --ray` and `eval run --ray` on a local two-node cluster against one process.

    sudo .venv/bin/python bench/library_ray.py            # root: the cluster runs in private namespaces

Index: 6 generated 5 s 1280x720 clips that speak a sentence (espeak-ng) and show a title (drawtext), all three
channels: the tiny random-weight CLIP (tests/assets), real Whisper base, real RapidOCR; indexed by one
`grounding-agent index` process and by `index --ray` on a head and a worker node of one CPU each (both on
this machine, so the cluster cannot be faster here: it measures the overhead and checks the store). Eval:
`eval run --grounder prior` over 200 Charades-STA queries, one process against `--ray`. Walls are whole
commands (model loading included); the cluster's own start is timed apart; each side has a cold model cache
of its own. The load average is recorded before and after: other work on the machine moves every wall.
Writes bench/results/library_ray.json.
"""

from __future__ import annotations

import json
import os
import shutil
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

CLIPS, SIZE = 6, (1280, 720)
GT = REPO.parent / "shared" / "data" / "charades_sta" / "charades_sta_test.txt"


def make_clips(folder: Path) -> tuple[Path, float]:
    """The clips (tests/librarygen.py, cached by recipe) copied into `folder`; their seconds of video."""
    from tests.librarygen import DURATION_S, library_clips

    folder.mkdir(parents=True, exist_ok=True)
    for clip in library_clips(CLIPS, size=SIZE):
        shutil.copy(clip.path, folder / clip.path.name)
    return folder, CLIPS * DURATION_S


def same_store(a: Path, b: Path) -> dict:
    """Whether two libraries hold the same videos, words and times, text rows (exactly) and vectors (1e-5)."""
    import numpy as np

    from grounding_agent.library import Library

    def rows(folder: Path) -> dict:
        with Library(folder) as lib:
            out = {}
            for vid, path in lib.store.query("SELECT id, path FROM videos"):
                speech = lib.store.document(vid, "speech") or {"segments": []}
                texts = lib.store.query("SELECT kind, start_s, end_s, text FROM texts WHERE video_id = ? ORDER BY id",
                                        (vid,))  # fmt: skip
                blobs = lib.store.query("SELECT v.embedding FROM frames f JOIN frame_vectors v ON v.id = f.id "
                                        "WHERE f.video_id = ? ORDER BY f.id", (vid,))  # fmt: skip
                vectors = np.stack([np.frombuffer(e, np.float32) for (e,) in blobs])
                out[path] = ([w for s in speech["segments"] for w in s["words"]], texts, vectors)
            return out

    x, y = rows(a), rows(b)
    same_vectors = x.keys() == y.keys() and all(
        x[k][2].shape == y[k][2].shape and np.allclose(x[k][2], y[k][2], atol=1e-5) for k in x
    )
    return {
        "videos": len(x),
        "same_videos": sorted(x) == sorted(y),
        "same_words": all(x[k][0] == y.get(k, [None])[0] for k in x),
        "same_text_rows": all(x[k][1] == y.get(k, [None, None])[1] for k in x),
        "same_vectors": bool(same_vectors),
        "words": sum(len(v[0]) for v in x.values()),
        "text_rows": sum(len(v[1]) for v in x.values()),
    }


def main() -> int:
    if not can_start():
        print("needs root (unshare) for the private-namespace cluster", file=sys.stderr)
        return 2
    from tests.assets.build_tiny_models import cached_tiny_models
    from tests.assets.whisper_base import whisper_base_dir

    clip_model, whisper = cached_tiny_models()["clip"], whisper_base_dir()
    work = Path(tempfile.mkdtemp(prefix="ga-ray-bench-"))
    media, video_s = make_clips(work / "media")
    load_before = os.getloadavg()[0]
    index = [f"{BIN}/grounding-agent", "index", str(media), "--saliency-model", str(clip_model),
             "--asr-model", str(whisper), "--json"]  # fmt: skip
    run = [f"{BIN}/grounding-agent", "eval", "run", "--dataset", "charades-sta", "--gt", str(GT),
           "--grounder", "prior", "--limit", "200", "--no-progress"]  # fmt: skip
    walls, loads = {}, {}
    for name, cmd in (("index_local", [*index, "--library", str(work / "lib-local")]),
                      ("eval_local", [*run, "--out", str(work / "eval-local")])):  # fmt: skip
        loads[name] = round(os.getloadavg()[0], 2)
        t0 = time.perf_counter()  # a cold model cache of its own: nothing computed before is read back
        env = {**os.environ, "GROUNDING_AGENT_CACHE": str(work / f"cache-{name}")}
        out = subprocess.run(cmd, capture_output=True, text=True, check=True, env=env).stdout
        walls[name] = time.perf_counter() - t0
        if name == "index_local":
            local_rows = json.loads(out)["rows"]
    loads["cluster"] = round(os.getloadavg()[0], 2)
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
    result = {
        "bench": "library_ray", "when": now(), "machine": machine(load_avg_1m_before=load_before),
        "cluster": "two `ray start` nodes of 1 CPU each on 127.0.0.1 (one machine)",
        "index": {"clips": CLIPS, "video_s": video_s, "size": f"{SIZE[0]}x{SIZE[1]}",
                  "channels": ["visual (tiny random CLIP)", "speech (Whisper base)", "ocr (RapidOCR)"],
                  "local_s": round(walls["index_local"], 2), "ray_s": round(walls["index_ray"], 2),
                  "local_x_realtime": round(video_s / walls["index_local"], 2),
                  "ray_x_realtime": round(video_s / walls["index_ray"], 2),
                  "overhead_s": round(walls["index_ray"] - walls["index_local"], 2),
                  "same_rows": key(local_rows) == key(ray_rows),
                  "store": same_store(work / "lib-local", work / "lib-ray")},
        "eval": {"queries": 200, "grounder": "prior", "local_s": round(walls["eval_local"], 2),
                 "ray_s": round(walls["eval_ray"], 2), "overhead_s": round(walls["eval_ray"] - walls["eval_local"], 2),
                 "same_predictions": preds["local"] == preds["ray"]},
        "cluster_start_stop_s": round(walls["cluster_start_stop"], 2),
        "load_avg_1m_at_start": loads,
    }  # fmt: skip
    write_json_atomic(REPO / "bench" / "results" / "library_ray.json", result)
    print(json.dumps(result, indent=2))
    shutil.rmtree(work, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
