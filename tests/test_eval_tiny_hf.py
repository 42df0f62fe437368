"""The tiny random-weight Qwen2.5-VL (HF backend) over the Charades-STA queries of the two shared clips,
found by --video-pattern: fallbacks counted, "N of M queries", per-query samples, `eval analyze`."""

from __future__ import annotations

import json

import pytest

from grounding_agent.cli import main
from tests.conftest import VIDEOS, sidecar

pytestmark = [pytest.mark.slow, pytest.mark.integration]


def test_tiny_hf_model_on_the_shared_charades_clips(tiny_models, shared_data, real_clips, tmp_path, capsys):
    out = tmp_path / "run"
    gt = shared_data / "charades_sta" / "charades_sta_test.txt"
    rc = main(
        ["eval", "run", "--dataset", "charades-sta", "--gt", str(gt), "--videos", str(VIDEOS),
         "--video-pattern", "*_charades_{vid}.mp4", "--vids", "Y1HGC,OHOFG",
         "--backend", "hf", "--model", str(tiny_models["qwen2_5_vl"]), "--fps", "1", "--max-frames", "4",
         "--concurrency", "2", "--out", str(out), "--no-progress", "--log-samples"]
    )  # fmt: skip
    report = capsys.readouterr().out
    assert rc == 0
    expected = {
        (clip.split("_")[-1].removesuffix(".mp4"), q["query"])
        for clip in ("univtg_charades_Y1HGC.mp4", "timer1_charades_OHOFG.mp4")
        for q in sidecar(real_clips[clip])["queries"]
    }
    rows = [json.loads(line) for line in (out / "predictions.jsonl").read_text().splitlines()]
    assert {(r["vid"], r["query"]) for r in rows} == expected and len(rows) == len(expected) == 8
    assert all("error" not in r and r["raw_text"] for r in rows)  # the model answered every query
    metrics = json.loads((out / "metrics.json").read_text())
    fell_back = sum(bool(r.get("grounder", {}).get("fallback")) for r in rows)
    assert metrics["fallbacks"] == fell_back and metrics["status"]["fallback"] == fell_back
    assert metrics["parsed_only"]["num_queries"] == 8 - fell_back
    assert metrics["parse_failures"] == sum(len(r["parse_failures"]) for r in rows)
    assert metrics["model"] == tiny_models["qwen2_5_vl"].name
    assert f"# {tiny_models['qwen2_5_vl'].name} on charades-sta" in report
    assert "- queries: 8 of 3720 queries" in report and "**WARNING**: subset: 8 of 3720" in report
    assert f"{fell_back} fallbacks (no readable answer" in report
    run_json = json.loads((out / "run.json").read_text())
    assert run_json["model"]["config_sha256"] and run_json["prompt"]["name"] == "grounding_multi"

    samples = [json.loads(line) for line in (out / "samples.jsonl").read_text().splitlines()]
    assert sorted(s["qid"] for s in samples) == sorted(r["qid"] for r in rows)
    assert all(
        s["video"].startswith(str(VIDEOS)) and len(s["ious"]) == len(s["pred_windows"]) for s in samples
    )
    assert {s["parse_status"] for s in samples} <= {"ok", "parse_failure", "fallback"}

    assert main(["eval", "analyze", str(out), "--worst", "3"]) == 0
    text = capsys.readouterr().out
    assert text.startswith("8 queries: R1@0.5") and "by video length" in text and "worst 3" in text
