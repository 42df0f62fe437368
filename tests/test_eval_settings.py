"""eval run records every setting in run.json, refuses a resume with other settings, records a forced one;
reports are honest (model name, N of M queries, counts beside metrics, parsed-only subset)."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import pytest

from eval import runner
from grounding_agent.errors import ConfigError
from grounding_agent.grounders.base import BaseGrounder, Grounding
from grounding_agent.grounders.parsing import ParseFailure
from grounding_agent.types import Moment


class ScriptedGrounderForTests(BaseGrounder):
    """Replaces the model only: answers 'first tenth' for queries without 'x', and for queries containing
    'x' returns what a grounder returns when no sample parsed (the whole-video fallback)."""

    needs_pixels = False
    name = "scripted"

    def __init__(self):
        self.calls = 0

    async def aground(self, video, query, *, top_k=1, frames=None) -> Grounding:
        self.calls += 1
        if "x" in query.split():
            g = Grounding([Moment(0.0, video.duration_s, 0.0)], raw_text=["I cannot tell"])
            g.failures.append(ParseFailure("I cannot tell", "no_moment"))
            g.info["fallback"] = "whole_video"
            return g
        return Grounding([Moment(0.0, video.duration_s / 10, 0.9)], raw_text=["0.0 - 3.0 seconds"])


@pytest.fixture
def small_gt(tmp_path) -> Path:
    gt = tmp_path / "charades_sta_test.txt"
    gt.write_text("3MSZA 0 3##walk in\n3MSZA 2 4##x y\nAMT7R 0 2##sit down\nAMT7R 1 9##x again\n")
    (tmp_path / "Charades_v1_test.csv").write_text("id,length\n3MSZA,30.0\nAMT7R,20.0\n")
    return gt


def every_option(tmp_path: Path, gt: Path) -> list[str]:
    model, adapter, videos = tmp_path / "model", tmp_path / "adapter", tmp_path / "videos"
    for d in (model, adapter, videos):
        d.mkdir(exist_ok=True)
    (model / "config.json").write_text('{"model_type": "qwen2_5_vl"}')
    (adapter / "adapter_model.safetensors").write_bytes(b"lora weights")
    return [
        "--dataset", "charades-sta", "--gt", str(gt), "--durations", str(gt.with_name("Charades_v1_test.csv")),
        "--videos", str(videos), "--video-pattern", "*_{vid}.mp4", "--vids", "3MSZA,AMT7R", "--limit", "4",
        "--backend", "vllm", "--model", str(model), "--adapter", str(adapter),
        "--server", "http://127.0.0.1:9/v1", "--server", "http://127.0.0.1:10/v1",
        "--top-k", "3", "--fps", "1.5", "--max-frames", "12", "--max-pixels", "50176", "--prompt", "reasoning",
        "--samples", "3", "--structured", "--quantization", "4bit", "--timeout", "30",
        "--agent", "--explain", "--planner", "rule", "--planner-model", "tiny-lora", "--saliency-model", "clip",
        "--verify", "--explain-llm", "--step-top-k", "4", "--before-tolerance-s", "0.5", "--long-video-s", "100",
        "--max-vlm-calls", "6", "--prior-train", str(gt), "--seed", "7",
        "--out", str(tmp_path / "run"), "--concurrency", "2", "--allow-missing", "--log-samples", "--no-progress",
    ]  # fmt: skip


def test_every_option_is_recorded_and_a_changed_resume_is_refused_unless_forced(tmp_path, small_gt):
    argv = every_option(tmp_path, small_gt)
    parser = runner.build_parser()
    g = ScriptedGrounderForTests()
    res = runner.run(parser.parse_args(argv), [g])
    assert g.calls == 4
    saved = json.loads((tmp_path / "run" / "run.json").read_text())
    dests = {a.dest for a in parser._actions if a.dest != "help"}
    assert set(saved["options"]) == dests  # every option, none left out
    opts = saved["options"]
    assert (opts["seed"], opts["samples"], opts["prompt"], opts["top_k"], opts["agent"]) == (
        7,
        3,
        "reasoning",
        3,
        True,
    )
    assert opts["server"] == ["http://127.0.0.1:9/v1", "http://127.0.0.1:10/v1"]
    assert saved["package_version"] and saved["package_version"] != "unknown"
    model = saved["model"]
    assert model["name"] == str((tmp_path / "model").resolve())
    assert model["config_sha256"] == hashlib.sha256(b'{"model_type": "qwen2_5_vl"}').hexdigest()
    assert model["adapter_sha256"] == hashlib.sha256(b"lora weights").hexdigest()
    assert saved["prompt"]["name"] == "grounding_reasoning" and saved["prompt"]["version"]
    gt = saved["dataset_files"]["gt"]
    assert gt["sha256"] == hashlib.sha256(small_gt.read_bytes()).hexdigest() and gt["queries"] == 4
    assert saved["selected_queries"] == 4 and "durations" in saved["dataset_files"]

    # One setting changed: refused, naming it; nothing was re-run.
    changed = [*argv[: argv.index("--seed")], "--seed", "8", *argv[argv.index("--seed") + 2 :]]
    with pytest.raises(ConfigError, match=r"1 differ: options.seed: 7 -> 8\).*--force-resume"):
        runner.run(parser.parse_args(changed), [g])
    # Runtime options (concurrency, servers, progress) may change freely.
    runner.run(parser.parse_args([*argv, "--concurrency", "5"]), [g])
    assert g.calls == 4
    # --force-resume: accepted and recorded, first settings kept.
    runner.run(parser.parse_args([*changed, "--force-resume", "--retry-errors"]), [g])
    saved = json.loads((tmp_path / "run" / "run.json").read_text())
    assert saved["options"]["seed"] == 7
    assert [f["changed"] for f in saved["forced_resumes"]] == [{"options.seed": [7, 8]}]
    assert res.result["model"] == f"{tmp_path / 'model'} + adapter {tmp_path / 'adapter'}"


def test_report_is_honest_about_fallbacks_subset_and_parsed_only(tmp_path, small_gt):
    out = tmp_path / "run"
    args = runner.build_parser().parse_args(
        ["--dataset", "charades-sta", "--gt", str(small_gt), "--backend", "vllm", "--model", "served-name",
         "--vids", "3MSZA", "--out", str(out), "--no-progress", "--top-k", "1"]
    )  # fmt: skip
    res = runner.run(args, [ScriptedGrounderForTests()])
    r = res.result
    assert (r["num_queries"], r["dataset_queries"], r["subset"]) == (2, 4, True)
    assert r["status"] == {"ok": 1, "parse_failure": 0, "fallback": 1, "error": 0}
    assert r["fallbacks"] == 1 and r["parse_failures"] == 1
    # The fallback (whole video, IoU 0.1) drags R1@0.3 down; the parsed-only subset shows the answer read.
    assert r["brief"]["R1@0.3"] == 50.0 and r["parsed_only"]["num_queries"] == 1
    assert r["parsed_only"]["brief"]["R1@0.3"] == 100.0
    report = (out / "report.md").read_text()
    assert report.startswith("# served-name on charades-sta")
    assert "- queries: 2 of 4 queries" in report and "**WARNING**: subset: 2 of 4" in report
    assert (
        "1 fallbacks (no readable answer" in report and "| served-name (parsed only, 1 queries) |" in report
    )
    assert (
        "vllm on" not in report and json.loads((out / "metrics.json").read_text())["model"] == "served-name"
    )


def test_video_pattern_resolves_prefixed_names_and_refuses_ambiguity(tmp_path):
    d = tmp_path / "v"
    d.mkdir()
    for name in ("timer1_charades_OHOFG.mp4", "univtg_charades_Y1HGC.mkv", "x_Y1HGC.webm", "notes_OHOFG.txt"):
        (d / name).write_bytes(b"")
    f = runner.VideoFinder(d, "*_charades_{vid}.*")
    assert f.find("OHOFG") == d / "timer1_charades_OHOFG.mp4"
    assert f.find("Y1HGC") == d / "univtg_charades_Y1HGC.mkv" and f.find("NOPE") is None
    with pytest.raises(ConfigError, match="2 files match video Y1HGC"):
        runner.VideoFinder(d, "*{vid}*").find("Y1HGC")
    assert runner.VideoFinder(d, "*_{vid}.webm").find("Y1HGC") == d / "x_Y1HGC.webm"
    with pytest.raises(ConfigError, match="must name a file with"):
        runner.VideoFinder(d, "*.mp4")
    assert runner.VideoFinder(d).find("OHOFG") is None  # default: exactly {vid}.<ext>


def test_other_datasets_run_and_analyze_prints_the_breakdown(tmp_path, capsys):
    from eval import analyze

    gt = tmp_path / "val_1.json"
    gt.write_text(
        '{"v_a": {"duration": 100.0, "timestamps": [[0, 20], [50, 90]], "sentences": ["a man walks then runs", "he sits"]},'
        ' "v_b": {"duration": 40.0, "timestamps": [[0, 8]], "sentences": ["a dog barks before it jumps over the fence"]}}'
    )
    out = tmp_path / "run"
    rc = runner.main(["--dataset", "activitynet-captions", "--gt", str(gt), "--backend", "uniform",
                      "--out", str(out), "--no-progress", "--log-samples"])  # fmt: skip
    assert rc == 0 and "# uniform on activitynet-captions" in capsys.readouterr().out
    samples = [json.loads(x) for x in (out / "samples.jsonl").read_text().splitlines()]
    assert [s["qid"] for s in samples] == [0, 1, 2] and samples[0]["ious"][0] == pytest.approx(1.0)
    assert analyze.main([str(out), "--worst", "2"]) == 0
    text = capsys.readouterr().out
    for part in ("top-1 IoU histogram", "by query length", "by GT length", "by video length",
                 "queries with a relation word", "worst 2 (lowest top-1 IoU)", "then", "before"):  # fmt: skip
        assert part in text, part
    (out / "samples.jsonl").unlink()  # rebuilt from run.json + predictions.jsonl
    assert analyze.main([str(out), "--json"]) == 0
    b = json.loads(capsys.readouterr().out)
    assert b["overall"]["n"] == 3 and sum(b["iou_histogram"].values()) == 3
    assert b["by_relation_word"]["then"]["n"] == 1 and b["worst"][0]["iou"] <= b["worst"][-1]["iou"]


def test_a_moved_gt_resumes_but_an_edited_one_is_refused(tmp_path, small_gt):
    def argv(gt):
        return ["--dataset", "charades-sta", "--gt", str(gt), "--backend", "uniform", "--out", str(tmp_path / "run"),
                "--no-progress"]  # fmt: skip

    parser = runner.build_parser()
    runner.run(parser.parse_args(argv(small_gt)))
    moved = tmp_path / "moved"
    moved.mkdir()
    for f in (small_gt, small_gt.with_name("Charades_v1_test.csv")):
        (moved / f.name).write_bytes(f.read_bytes())
    runner.run(parser.parse_args(argv(moved / small_gt.name)))  # same content elsewhere: resumes
    (moved / small_gt.name).write_text(small_gt.read_text().replace("walk in", "walk out"))
    with pytest.raises(ConfigError, match=r"1 differ: dataset_files.gt.sha256"):
        runner.run(parser.parse_args(argv(moved / small_gt.name)))


def test_agent_runs_per_query_through_the_shared_option_spec(tmp_path):
    gt = tmp_path / "charades_sta_test.txt"
    gt.write_text("3MSZA 0 9##person opens the door then walks out\nAMT7R 0 2##person sits down\n")
    gt.with_name("Charades_v1_test.csv").write_text("id,length\n3MSZA,30.0\nAMT7R,20.0\n")
    out = tmp_path / "run"
    args = runner.build_parser().parse_args(
        ["--dataset", "charades-sta", "--gt", str(gt), "--backend", "uniform", "--agent", "--step-top-k", "3",
         "--out", str(out), "--no-progress", "--log-samples"]
    )  # fmt: skip
    res = runner.run(args)
    rows = {r["qid"]: r for r in map(json.loads, (out / "predictions.jsonl").read_text().splitlines())}
    steps = [s["text"] for s in rows[0]["plan"]["steps"]]
    assert (
        rows[0]["agent"] and len(steps) == 2 and steps[0] == "person opens the door"
    )  # planned, then composed
    assert rows[1]["agent"] and len(rows[1]["plan"]["steps"]) == 1  # --agent: every query
    assert 1 <= len(rows[0]["pred_relevant_windows"]) <= 5 and res.result["status"]["ok"] == 2
    saved = json.loads((out / "run.json").read_text())["options"]
    assert (saved["agent"], saved["step_top_k"]) == (True, 3)
    # Without --agent a baseline ignores the query: no agent.
    args = runner.build_parser().parse_args(
        ["--dataset", "charades-sta", "--gt", str(gt), "--backend", "uniform", "--out", str(tmp_path / "b"), "--no-progress"]
    )  # fmt: skip
    runner.run(args)
    assert not any(
        "agent" in json.loads(x) for x in (tmp_path / "b" / "predictions.jsonl").read_text().splitlines()
    )
