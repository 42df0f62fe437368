"""`grounding-agent eval score|run` through the real entry point."""

from __future__ import annotations

import json

import pytest

from grounding_agent.cli import eval as eval_cli
from grounding_agent.cli import main
from grounding_agent.errors import ConfigError


@pytest.fixture(scope="module")
def files(shared_data):
    return {
        "sta_gt": shared_data / "charades_sta" / "charades_sta_test.txt",
        "tan": shared_data / "predictions" / "vmr_axiou_2dtan" / "2dtan_charades_sta_test_preds.jsonl",
        "qvh_gt": shared_data / "qvhighlights" / "highlight_val_release.jsonl",
        "mdetr": shared_data / "predictions" / "moment_detr" / "sample_val_preds.jsonl",
        "mdetr_metrics": shared_data / "predictions" / "moment_detr" / "sample_val_preds_metrics_raw.json",
    }


def test_score_json_charades_keys_and_values(files, capsys):
    rc = main(
        [
            "eval",
            "score",
            "--dataset",
            "charades-sta",
            "--gt",
            str(files["sta_gt"]),
            "--pred",
            str(files["tan"]),
            "--json",
        ]
    )
    out = json.loads(capsys.readouterr().out)
    assert rc == 0
    assert list(out) == ["R1@0.3", "R1@0.5", "R1@0.7", "R5@0.3", "R5@0.5", "R5@0.7", "mIoU"]
    assert round(out["R1@0.5"], 2) == 42.80 and out["R1@0.5"] != round(out["R1@0.5"], 2)  # unrounded


@pytest.mark.slow
def test_score_json_qvhighlights_keys_are_moment_detr_brief_plus_two(files, capsys):
    rc = main(
        [
            "eval",
            "score",
            "--dataset",
            "qvhighlights",
            "--gt",
            str(files["qvh_gt"]),
            "--pred",
            str(files["mdetr"]),
            "--json",
        ]
    )
    out = json.loads(capsys.readouterr().out)
    published = json.loads(files["mdetr_metrics"].read_text())["brief"]
    assert rc == 0 and set(out) == set(published) | {"MR-full-R1@0.3", "MR-full-mIoU"}
    assert all(abs(round(out[k], 2) - v) <= 0.01 + 1e-9 for k, v in published.items())


def test_score_table_and_raw_gt(files, capsys):
    args = [
        "eval",
        "score",
        "--dataset",
        "charades-sta",
        "--gt",
        str(files["sta_gt"]),
        "--pred",
        str(files["tan"]),
    ]
    assert main(args) == 0
    table = capsys.readouterr().out
    assert "3720 queries" in table and "R1@0.5   42.80" in table
    assert main([*args, "--raw-gt"]) == 0
    assert "R1@0.5   42.23" in capsys.readouterr().out


def test_score_user_errors_are_one_line_exit_2(files, tmp_path, capsys):
    partial = tmp_path / "partial.jsonl"
    partial.write_text(files["tan"].read_text().splitlines()[0] + "\n")
    base = ["eval", "score", "--dataset", "charades-sta", "--gt", str(files["sta_gt"])]
    assert main([*base, "--pred", str(partial)]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: 3719 of 3720 GT queries have no prediction") and err.count("\n") == 1
    assert main([*base, "--pred", str(partial), "--allow-missing", "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["R1@0.5"] in (0.0, 100.0 / 3720)
    assert main([*base, "--pred", str(tmp_path / "nope.jsonl")]) == 2
    assert "nope.jsonl: not found" in capsys.readouterr().err


def test_eval_run_executes_the_recipe(files, tmp_path, capsys):
    out = tmp_path / "run"
    rc = main(
        [
            "eval",
            "run",
            "--dataset",
            "charades-sta",
            "--gt",
            str(files["sta_gt"]),
            "--grounder",
            "uniform",
            "--limit",
            "12",
            "--out",
            str(out),
            "--no-progress",
        ]
    )
    assert rc == 0
    assert len((out / "predictions.jsonl").read_text().splitlines()) == 12
    assert json.loads((out / "metrics.json").read_text())["num_queries"] == 12
    assert "| uniform (subset) | ours |" in capsys.readouterr().out  # a subset is never bold
    assert main(["eval", "run", "--help"]) == 0
    assert "--concurrency" in capsys.readouterr().out


def test_eval_run_without_the_recipes_says_to_reinstall(monkeypatch, capsys):
    import importlib.util

    monkeypatch.setattr(importlib.util, "find_spec", lambda name: None)
    with pytest.raises(ConfigError, match="recipe module eval.runner not found: reinstall"):
        eval_cli.recipe_module("run")
    assert main(["eval", "analyze", "x"]) == 2
    assert "recipe module eval.analyze not found" in capsys.readouterr().err


@pytest.mark.parametrize(
    "extra, message",
    [
        (["--concurrency", "0"], "--concurrency must be >= 1"),
        (["--top-k", "-3"], "--top-k must be >= 1"),
        (["--fps", "nan"], "--fps"),
        (
            ["--video-pattern", "*.mp4", "--videos", "."],
            "--video-pattern '\\*.mp4' must name a file with \\{vid\\}",
        ),
    ],
)
def test_eval_run_bad_options_exit_2_and_leave_nothing(files, tmp_path, capsys, extra, message):
    out = tmp_path / "run"
    argv = ["eval", "run", "--dataset", "charades-sta", "--gt", str(files["sta_gt"]), "--backend", "uniform",
            "--out", str(out), "--no-progress", *extra]  # fmt: skip
    assert main(argv) == 2
    import re

    assert re.search(message, capsys.readouterr().err)
    assert not out.exists()


def test_eval_run_missing_gt_and_wrong_dataset_say_so(files, tmp_path, capsys):
    out = tmp_path / "run"
    missing = tmp_path / "data" / "charades_sta_test.txt"
    common = ["--backend", "uniform", "--out", str(out), "--no-progress"]
    assert main(["eval", "run", "--dataset", "charades-sta", "--gt", str(missing), *common]) == 2
    assert f"error: {missing}: not found" in capsys.readouterr().err
    assert main(["eval", "run", "--dataset", "qvhighlights", "--gt", str(files["sta_gt"]), *common]) == 2
    err = capsys.readouterr().err
    assert "pass --dataset charades-sta" in err and "truncated" not in err
    assert not out.exists()
