"""Scale-out on Ray: `index --ray` (every channel: the tiny random-weight CLIP, real Whisper base, real RapidOCR)
and `eval run --ray` on a real two-node cluster on 127.0.0.1 give the store and the rows a one-process run gives.

The cluster (`bench/_ray.py`) runs in private network and PID namespaces, so it sees loopback only and
stops only its own processes; it needs root (unshare). Whisper runs greedy on one CTranslate2 thread on
both sides, which is deterministic: its words and times are compared exactly, as the OCR rows are; frame
vectors to 1e-5 (torch's thread count may differ between a Ray worker and this process).
"""

from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path

import numpy as np
import pytest

from bench._ray import ADDRESS, BIN, can_start, two_node_cluster
from grounding_agent.cli import main
from grounding_agent.library import Library
from tests.librarygen import library_clips

pytestmark = [pytest.mark.slow, pytest.mark.skipif(not can_start(), reason="needs root for unshare")]

SPEECH_CLIPS = 2


def _media(folder: Path) -> Path:
    """Two clips that speak a sentence and show a title, one silent titled clip, a broken file, a copy."""
    folder.mkdir()
    for clip in library_clips(8)[:SPEECH_CLIPS]:  # the clips tests/test_library.py makes (cached)
        shutil.copy(clip.path, folder / clip.path.name)
    subprocess.run(
        ["ffmpeg", "-nostdin", "-loglevel", "error", "-y", "-f", "lavfi",
         "-i", "color=c=black:size=320x180:rate=10:duration=4", "-vf",
         "drawtext=text='SILENT TITLE':fontsize=28:fontcolor=white:x=(w-tw)/2:y=(h-th)/2:enable='between(t,1,3)'",
         "-c:v", "libx264", "-preset", "ultrafast", "-pix_fmt", "yuv420p", str(folder / "silent.mp4")],
        check=True,
    )  # fmt: skip
    (folder / "broken.mp4").write_bytes(b"not a video")  # skipped with the same reason on both
    shutil.copy(folder / "clip000.mp4", folder / "clip000_copy.mp4")  # a duplicate, found the same way
    return folder


def _store(folder: Path) -> dict[str, dict]:
    """path -> everything the store holds of that video: its row, words, text rows, shots, frames."""
    out = {}
    with Library(folder) as lib:
        store = lib.store
        for vid, path, fingerprint, duration_s, channels, models in store.query(
            "SELECT id, path, fingerprint, duration_s, channels, models FROM videos"
        ):
            speech = store.document(vid, "speech")
            frames = store.query(
                "SELECT f.time_s, v.embedding FROM frames f JOIN frame_vectors v ON v.id = f.id "
                "WHERE f.video_id = ? ORDER BY f.id",
                (vid,),
            )
            out[path] = {
                "row": (fingerprint, duration_s, channels, models),
                "has_audio": speech["has_audio"],
                "words": [tuple(w) for s in speech["segments"] for w in s["words"]],  # text, start, end, p
                "texts": store.query(
                    "SELECT kind, start_s, end_s, text FROM texts WHERE video_id = ? ORDER BY id", (vid,)
                ),
                "shots": store.shots(vid),
                "times_s": [t for t, _ in frames],
                "vectors": np.stack([np.frombuffer(e, np.float32) for _, e in frames]),
            }
    return out


def _predictions(out: Path) -> dict:
    rows = [json.loads(line) for line in (out / "predictions.jsonl").read_text().splitlines()]
    return {r["qid"]: {k: v for k, v in r.items() if k not in ("timings_s", "worker")} for r in rows}


def test_index_and_eval_on_two_nodes_match_one_process(
    tmp_path: Path, shared_data: Path, tiny_models: dict[str, Path], whisper_base: Path, capsys, monkeypatch
) -> None:
    media = _media(tmp_path / "media")
    # Separate model caches: the cluster must compute every record itself, not read the local run's.
    monkeypatch.setenv("GROUNDING_AGENT_CACHE", str(tmp_path / "cache-local"))
    gt = shared_data / "charades_sta" / "charades_sta_test.txt"
    index = ["index", str(media), "--saliency-model", str(tiny_models["clip"]), "--asr-model", str(whisper_base),
             "--json"]  # fmt: skip
    run = ["eval", "run", "--dataset", "charades-sta", "--gt", str(gt), "--grounder", "prior", "--limit", "40",
           "--no-progress"]  # fmt: skip
    assert main([*index, "--library", str(tmp_path / "local-lib")]) == 0
    local = json.loads(capsys.readouterr().out)
    assert main([*run, "--out", str(tmp_path / "local-eval")]) == 0
    done = two_node_cluster([
        f"{BIN}/python -c 'import ray; ray.init(address=\"{ADDRESS}\"); print(\"nodes\", len(ray.nodes()))'",
        " ".join([f"{BIN}/grounding-agent", *index, "--library", str(tmp_path / "ray-lib"), "--ray", ADDRESS])
        + f" > {tmp_path}/ray-index.json",
        " ".join([f"{BIN}/grounding-agent", *run, "--out", str(tmp_path / "ray-eval"), "--ray", ADDRESS]),
    ], env={"GROUNDING_AGENT_CACHE": str(tmp_path / "cache-ray")})  # fmt: skip
    assert done.returncode == 0, done.stderr[-3000:]
    assert "nodes 2" in done.stdout
    for channel in ("embeddings", "transcripts", "ocr"):  # the cluster's workers computed every channel
        assert list((tmp_path / "cache-ray" / channel).iterdir()), channel

    on_ray = json.loads((tmp_path / "ray-index.json").read_text())
    strip = lambda report: [(r["path"], r["status"], r["reason"]) for r in report["rows"]]  # noqa: E731
    assert strip(on_ray) == strip(local)
    statuses = [r[1] for r in strip(local)]
    assert statuses.count("indexed") == SPEECH_CLIPS + 1 and any("duplicate" in r[2] for r in strip(local))

    here, there = _store(tmp_path / "local-lib"), _store(tmp_path / "ray-lib")
    assert sorted(there) == sorted(here) and len(here) == SPEECH_CLIPS + 1
    for path, mine in here.items():
        theirs = there[path]
        assert mine["vectors"].shape == theirs["vectors"].shape and len(mine["vectors"]) >= 4, path
        np.testing.assert_allclose(theirs.pop("vectors"), mine.pop("vectors"), atol=1e-5)
        assert theirs == mine, path
    # What was compared is real content: each speaking clip's words and title, the silent one's title only.
    spoken = [v for p, v in here.items() if not p.endswith("silent.mp4")]
    assert all(v["has_audio"] and len(v["words"]) >= 4 for v in spoken)
    assert all({"speech", "ocr"} == {k for k, *_ in v["texts"]} for v in spoken)
    silent = next(v for p, v in here.items() if p.endswith("silent.mp4"))
    assert not silent["has_audio"] and [t[3] for t in silent["texts"]] == ["SILENT TITLE"]

    assert _predictions(tmp_path / "ray-eval") == _predictions(tmp_path / "local-eval")
    local_metrics = json.loads((tmp_path / "local-eval" / "metrics.json").read_text())
    ray_metrics = json.loads((tmp_path / "ray-eval" / "metrics.json").read_text())
    assert ray_metrics["brief"] == local_metrics["brief"]
