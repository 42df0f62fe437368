"""Scale-out on Ray: `index --ray` and `eval run --ray` on a real two-node cluster on 127.0.0.1 give the rows a
one-process run gives.

The cluster (`bench/_ray.py`) runs in private network and PID namespaces, so it sees loopback only and
stops only its own processes; it needs root (unshare).
"""

from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path

import pytest

from bench._ray import ADDRESS, BIN, can_start, two_node_cluster
from grounding_agent.cli import main
from grounding_agent.library import Library

pytestmark = [pytest.mark.slow, pytest.mark.skipif(not can_start(), reason="needs root for unshare")]


def _titled_clips(folder: Path) -> Path:
    folder.mkdir()
    for name, title in (("a.mp4", "FIRST TITLE"), ("b.mp4", "SECOND TITLE"), ("c.mp4", "THIRD TITLE")):
        subprocess.run(
            ["ffmpeg", "-nostdin", "-loglevel", "error", "-y", "-f", "lavfi",
             "-i", "color=c=black:size=320x180:rate=10:duration=4", "-vf",
             f"drawtext=text='{title}':fontsize=28:fontcolor=white:x=(w-tw)/2:y=(h-th)/2:enable='between(t,1,3)'",
             "-c:v", "libx264", "-preset", "ultrafast", "-pix_fmt", "yuv420p", str(folder / name)],
            check=True,
        )  # fmt: skip
    (folder / "broken.mp4").write_bytes(b"not a video")  # skipped with the same reason on both
    shutil.copy(folder / "a.mp4", folder / "a_copy.mp4")  # a duplicate, found the same way
    return folder


def _library_rows(folder: Path) -> list[tuple]:
    """Every video's path, fingerprint, duration, channels and its on-screen text document."""
    with Library(folder) as lib:
        rows = [(str(v.path), v.fingerprint, v.duration_s, v.channels, lib.store.document(v.video_id, "ocr"))
                for v in lib.videos()]  # fmt: skip
    return sorted(rows, key=lambda r: r[0])


def _predictions(out: Path) -> dict:
    rows = [json.loads(line) for line in (out / "predictions.jsonl").read_text().splitlines()]
    return {r["qid"]: {k: v for k, v in r.items() if k not in ("timings_s", "worker")} for r in rows}


def test_index_and_eval_on_two_nodes_match_one_process(
    tmp_path: Path, shared_data: Path, capsys, monkeypatch
) -> None:
    # Separate model caches: the cluster must compute every record itself, not read the local run's OCR.
    monkeypatch.setenv("GROUNDING_AGENT_CACHE", str(tmp_path / "cache-local"))
    media = _titled_clips(tmp_path / "media")
    gt = shared_data / "charades_sta" / "charades_sta_test.txt"
    index = ["index", str(media), "--no-visual", "--no-speech", "--json"]
    run = ["eval", "run", "--dataset", "charades-sta", "--gt", str(gt), "--grounder", "prior", "--limit", "40",
           "--no-progress"]  # fmt: skip
    assert main([*index, "--library", str(tmp_path / "local-lib")]) == 0
    local = json.loads(capsys.readouterr().out)
    assert main([*run, "--out", str(tmp_path / "local-eval")]) == 0
    address = ADDRESS
    done = two_node_cluster([
        f"{BIN}/python -c 'import ray; ray.init(address=\"{address}\"); print(\"nodes\", len(ray.nodes()))'",
        " ".join([f"{BIN}/grounding-agent", *index, "--library", str(tmp_path / "ray-lib"), "--ray", address])
        + f" > {tmp_path}/ray-index.json",
        " ".join([f"{BIN}/grounding-agent", *run, "--out", str(tmp_path / "ray-eval"), "--ray", address]),
    ], env={"GROUNDING_AGENT_CACHE": str(tmp_path / "cache-ray")})  # fmt: skip
    assert done.returncode == 0, done.stderr[-3000:]
    assert list((tmp_path / "cache-ray").rglob("*")), "the cluster's workers computed (and cached) nothing"
    assert "nodes 2" in done.stdout
    on_ray = json.loads((tmp_path / "ray-index.json").read_text())
    strip = lambda report: [(r["path"], r["status"], r["reason"]) for r in report["rows"]]  # noqa: E731
    assert strip(on_ray) == strip(local)
    assert [r[1] for r in strip(local)].count("indexed") == 3 and any(
        "duplicate" in r[2] for r in strip(local)
    )
    rows = _library_rows(tmp_path / "local-lib")
    assert len(rows) == 3 and all(r[4] for r in rows)  # each with its on-screen text
    assert _library_rows(tmp_path / "ray-lib") == rows
    assert _predictions(tmp_path / "ray-eval") == _predictions(tmp_path / "local-eval")
    local_metrics = json.loads((tmp_path / "local-eval" / "metrics.json").read_text())
    ray_metrics = json.loads((tmp_path / "ray-eval" / "metrics.json").read_text())
    assert ray_metrics["brief"] == local_metrics["brief"]
