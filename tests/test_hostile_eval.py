"""Eval files that used to be scored silently or end in a traceback: each is one `error:` line (exit 2)
naming the file, the line and the fix, or is read correctly, and no input or unnamed file changes.

Real annotation files (../shared/data), copied and damaged one line at a time; the model-free baselines
run the `eval run` cases so the module stays fast.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tests.test_hostile_options import assert_one_line_error, run_cli

DATA = Path(__file__).resolve().parents[2] / "shared" / "data"
STA = DATA / "charades_sta"
QVH_VAL = DATA / "qvhighlights" / "highlight_val_release.jsonl"
PREDS_2DTAN = DATA / "predictions" / "vmr_axiou_2dtan" / "2dtan_charades_sta_test_preds.jsonl"
LINE = 7  # the line each case damages (1-based)


def tree_hashes(*roots: Path) -> dict[str, str]:
    """sha256 of every file under (or at) each root: what must not change."""
    out = {}
    for root in roots:
        for p in [root] if root.is_file() else sorted(root.rglob("*")):
            if p.is_file():
                out[str(p)] = hashlib.sha256(p.read_bytes()).hexdigest()
    return out


@pytest.fixture
def sta(tmp_path: Path) -> Path:
    """A copy of the real Charades-STA test split (txt + its durations csv) in a folder of its own."""
    folder = tmp_path / "sta"
    folder.mkdir()
    for name in (
        "charades_sta_test.txt",
        "Charades_v1_test.csv",
        "charades_sta_train.txt",
        "Charades_v1_train.csv",
    ):
        shutil.copy(STA / name, folder / name)
    return folder / "charades_sta_test.txt"


def damage_line(path: Path, lineno: int, edit) -> None:
    lines = path.read_text(encoding="utf-8").splitlines(keepends=True)
    lines[lineno - 1] = edit(lines[lineno - 1])
    path.write_text("".join(lines), encoding="utf-8")


def with_windows(windows_json: str):
    """An edit that replaces the line's pred_relevant_windows with raw JSON text."""

    def edit(line: str) -> str:
        row = json.loads(line)
        row["pred_relevant_windows"] = "@W@"
        return json.dumps(row).replace('"@W@"', windows_json) + "\n"

    return edit


def drop_windows(line: str) -> str:
    row = json.loads(line)
    del row["pred_relevant_windows"]
    return json.dumps(row) + "\n"


HUGE = "1" * 5000
DEEP = "[" * 50000 + "]" * 50000

PRED_CASES = {
    "reversed window": (with_windows("[[20.0, 5.0, 0.9]]"), "reversed"),
    "boolean window": (with_windows("[[true, 5, 0.9]]"), "3 numbers"),
    "boolean score": (with_windows("[[0, 5, false]]"), "3 numbers"),
    "two-number window": (with_windows("[[0, 5]]"), "3 numbers"),
    "windows not a list": (with_windows('"0-5"'), "must be a list"),
    "negative start": (with_windows("[[-3.0, 5.0, 0.9]]"), "negative"),
    "no pred_relevant_windows": (drop_windows, "no pred_relevant_windows"),
    "5000-digit number": (with_windows(f"[[0, {HUGE}, 1]]"), "5000 characters"),
    "5000-digit float": (with_windows(f"[[0, 1.{HUGE}, 1]]"), "characters"),
    "float that overflows to inf": (with_windows("[[0, 1e400, 1]]"), "finite"),
    "50000-deep nesting": (with_windows(DEEP), "nested too deeply"),
    "5000-digit qid": (lambda line: line.replace('"qid": 6', f'"qid": {HUGE}', 1), "5000 characters"),
}


@pytest.mark.parametrize("case", list(PRED_CASES))
def test_score_refuses_a_damaged_prediction_line(capsys, sta, tmp_path, case) -> None:
    edit, fragment = PRED_CASES[case]
    pred = tmp_path / "preds.jsonl"
    shutil.copy(PREDS_2DTAN, pred)
    damage_line(pred, LINE, edit)
    before = tree_hashes(tmp_path)
    rc, out, err = run_cli(capsys, "eval", "score", "--dataset", "charades-sta", "--gt", sta, "--pred", pred)
    assert_one_line_error(rc, err, f"{pred}:{LINE}:", fragment)
    assert out == "" and tree_hashes(tmp_path) == before


def test_an_undamaged_copy_still_scores_the_published_numbers(capsys, sta, tmp_path) -> None:
    """The checks refuse nothing in a real submission: 2D-TAN's numbers (clipped GT) come back."""
    rc, out, err = run_cli(
        capsys, "eval", "score", "--dataset", "charades-sta", "--gt", sta, "--pred", PREDS_2DTAN, "--json"
    )
    assert rc == 0, err
    got = json.loads(out)
    assert round(got["R1@0.5"], 2) == 42.80 and round(got["R1@0.7"], 2) == 23.25


def test_a_zero_length_window_is_scored_not_refused(capsys, sta, tmp_path) -> None:
    """start == end is a real (if useless) answer: IoU 0, scored as a miss, exit 0."""
    pred = tmp_path / "preds.jsonl"
    shutil.copy(PREDS_2DTAN, pred)
    damage_line(pred, 1, with_windows("[[5.0, 5.0, 0.9]]"))
    rc, out, err = run_cli(
        capsys, "eval", "score", "--dataset", "charades-sta", "--gt", sta, "--pred", pred, "--json"
    )
    assert rc == 0, err
    full = run_cli(
        capsys, "eval", "score", "--dataset", "charades-sta", "--gt", sta, "--pred", PREDS_2DTAN, "--json"
    )
    assert json.loads(out)["mIoU"] < json.loads(full[1])["mIoU"]


def test_score_refuses_a_negative_gt_time_in_the_txt(capsys, sta, tmp_path) -> None:
    damage_line(sta, LINE, lambda line: line.split(" ", 1)[0] + " -1.5 " + line.split(" ", 2)[2])
    before = tree_hashes(tmp_path)
    rc, out, err = run_cli(
        capsys, "eval", "score", "--dataset", "charades-sta", "--gt", sta, "--pred", PREDS_2DTAN
    )
    assert_one_line_error(rc, err, f"{sta}:{LINE}:", "negative GT time")
    assert tree_hashes(tmp_path) == before


def _qvh_copy(tmp_path: Path, edit) -> Path:
    gt = tmp_path / "highlight_val_release.jsonl"
    shutil.copy(QVH_VAL, gt)
    damage_line(gt, LINE, edit)
    return gt


def _set(key: str, raw: str):
    def edit(line: str) -> str:
        row = json.loads(line)
        row[key] = "@V@"
        return json.dumps(row).replace('"@V@"', raw) + "\n"

    return edit


GT_CASES = {
    "negative GT start": (_set("relevant_windows", "[[-2, 10]]"), "negative GT time"),
    "5000-digit duration": (_set("duration", HUGE), "5000 characters"),
    "50000-deep nesting": (_set("relevant_windows", DEEP), "nested too deeply"),
}


@pytest.mark.parametrize("case", list(GT_CASES))
def test_score_refuses_a_damaged_qvhighlights_gt_line(capsys, tmp_path, case) -> None:
    edit, fragment = GT_CASES[case]
    gt = _qvh_copy(tmp_path, edit)
    before = tree_hashes(tmp_path)
    rc, out, err = run_cli(capsys, "eval", "score", "--dataset", "qvhighlights", "--gt", gt, "--pred", gt)
    assert_one_line_error(rc, err, f"{gt}:{LINE}:", fragment)
    assert tree_hashes(tmp_path) == before


def test_a_video_twice_in_the_durations_csv_is_named_not_resolved(capsys, sta, tmp_path) -> None:
    """Which length is right cannot be known: the csv's line is named, not the predictions blamed."""
    csv = sta.with_name("Charades_v1_test.csv")
    rows = csv.read_text(encoding="utf-8").splitlines(keepends=True)
    vid = sta.read_text().split()[0]  # the first query's video
    first = next(i for i, r in enumerate(rows, start=1) if r.startswith(vid + ","))
    dup = rows[first - 1].rsplit(",", 1)[0] + ",5.00\n"  # same video, a shorter length
    csv.write_text("".join(rows) + dup, encoding="utf-8")
    before = tree_hashes(tmp_path)
    rc, out, err = run_cli(
        capsys, "eval", "score", "--dataset", "charades-sta", "--gt", sta, "--pred", PREDS_2DTAN
    )
    line = assert_one_line_error(rc, err, f"{csv}:{len(rows) + 1}:", vid, "twice", f"line {first}")
    assert "pred" not in line and tree_hashes(tmp_path) == before


# --- eval run / analyze: a run folder's own files ------------------------------------------------------


def run_uniform(capsys, sta: Path, out: Path, *extra: str) -> tuple[int, str, str]:
    return run_cli(
        capsys, "eval", "run", "--dataset", "charades-sta", "--gt", sta, "--backend", "uniform",
        "--out", out, "--no-progress", *extra,
    )  # fmt: skip


@pytest.fixture
def run_dir(capsys, sta, tmp_path) -> Path:
    out = tmp_path / "run"
    rc, _, err = run_uniform(capsys, sta, out, "--limit", "20", "--log-samples")
    assert rc == 0, err
    return out


def test_analyze_skips_a_torn_last_samples_line_with_one_warning(capsys, run_dir) -> None:
    samples = run_dir / "samples.jsonl"
    data = samples.read_bytes()
    samples.write_bytes(data[: len(data) - 40])  # killed mid-write: the last line is cut
    before = tree_hashes(run_dir)
    rc, out, err = run_cli(capsys, "eval", "analyze", run_dir, "--json")
    assert rc == 0, err
    assert err.strip().startswith("warning: ") and len(err.strip().splitlines()) == 1
    assert f"{samples}:20" in err and json.loads(out)["overall"]["n"] == 19
    assert tree_hashes(run_dir) == before


SAMPLE_CASES = {
    "torn middle line": (lambda line: line[:30] + "\n", "not JSON"),
    "5000-digit number": (
        lambda line: line.replace('"duration_s": ', f'"duration_s": {HUGE}, "x": ', 1),
        "5000",
    ),
    "50000-deep nesting": (lambda line: line.replace('"ious": ', f'"deep": {DEEP}, "ious": ', 1), "nested"),
    "not a samples row": (lambda line: '{"qid": 1}\n', "not a samples row"),
    "zero duration": (lambda line: line.replace('"duration_s": ', '"duration_s": 0, "x": ', 1), "duration_s"),
}


@pytest.mark.parametrize("case", list(SAMPLE_CASES))
def test_analyze_refuses_a_broken_samples_line_naming_it(capsys, run_dir, case) -> None:
    edit, fragment = SAMPLE_CASES[case]
    samples = run_dir / "samples.jsonl"
    damage_line(samples, LINE, edit)
    before = tree_hashes(run_dir)
    rc, out, err = run_cli(capsys, "eval", "analyze", run_dir)
    assert_one_line_error(rc, err, f"{samples}:{LINE}:", fragment)
    assert out == "" and tree_hashes(run_dir) == before


def test_analyze_never_cuts_a_torn_predictions_file_it_only_reads(capsys, run_dir) -> None:
    """Without samples.jsonl analyze rebuilds from predictions.jsonl: a torn tail (a run still writing)
    is skipped, never truncated under the running process."""
    (run_dir / "samples.jsonl").unlink()
    preds = run_dir / "predictions.jsonl"
    preds.write_bytes(preds.read_bytes() + b'{"qid": 20, "pred_rel')
    before = tree_hashes(run_dir)
    rc, out, err = run_cli(capsys, "eval", "analyze", run_dir, "--json")
    assert rc == 0, err
    assert json.loads(out)["overall"]["n"] == 20 and tree_hashes(run_dir) == before


def test_resume_refuses_a_hostile_predictions_line_in_the_run_folder(capsys, sta, run_dir) -> None:
    preds = run_dir / "predictions.jsonl"
    damage_line(preds, LINE, lambda line: '{"qid": ' + DEEP + "}\n")
    before = tree_hashes(run_dir)
    rc, out, err = run_uniform(capsys, sta, run_dir, "--limit", "20", "--log-samples")
    assert_one_line_error(rc, err, f"{preds}:{LINE}:")
    assert tree_hashes(run_dir) == before


HOLDER = """
import fcntl, os, sys, time
fd = os.open(sys.argv[1], os.O_RDWR | os.O_CREAT)
fcntl.flock(fd, fcntl.LOCK_EX)
os.ftruncate(fd, 0); os.write(fd, f"{os.getpid()}\\n".encode())
print("held", flush=True)
time.sleep(60)
"""


def test_a_second_run_into_a_held_folder_is_refused_naming_the_holder(capsys, sta, run_dir) -> None:
    """A run in progress holds run.lock (flock): a second `eval run` into the folder would append
    duplicate rows; it is one line naming the folder and the holder's pid, and changes nothing."""
    holder = subprocess.Popen(
        [sys.executable, "-c", HOLDER, str(run_dir / "run.lock")], stdout=subprocess.PIPE, text=True
    )
    try:
        assert holder.stdout.readline().strip() == "held"
        before = tree_hashes(run_dir)
        rc, out, err = run_uniform(capsys, sta, run_dir, "--limit", "20", "--log-samples")
        assert_one_line_error(rc, err, str(run_dir), f"pid {holder.pid}", "another eval run")
        assert tree_hashes(run_dir) == before
    finally:
        holder.kill()
        holder.wait()
    rc, out, err = run_uniform(capsys, sta, run_dir, "--limit", "20", "--log-samples")  # lock released
    assert rc == 0, err
    qids = [json.loads(x)["qid"] for x in (run_dir / "predictions.jsonl").read_text().splitlines()]
    assert sorted(qids) == list(range(20))


@pytest.mark.slow
def test_two_real_runs_into_one_folder_do_not_duplicate_rows(capsys, sta, tmp_path) -> None:
    """Two `eval run` processes started together into one new folder: one runs, the other is refused."""
    out = tmp_path / "run"
    cmd = [
        str(Path(sys.executable).with_name("grounding-agent")), "eval", "run", "--dataset", "charades-sta",
        "--gt", str(sta), "--backend", "uniform", "--out", str(out), "--no-progress", "--limit", "60",
        "--delay-s", "0.05", "--concurrency", "1",
    ]  # fmt: skip
    env = {**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[1])}
    first = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)
    deadline = time.monotonic() + 60
    while not (out / "run.lock").is_file() and time.monotonic() < deadline:
        time.sleep(0.05)
    second = subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=120)
    first_out, first_err = first.communicate(timeout=120)
    assert first.returncode == 0, first_err
    assert second.returncode == 2 and second.stderr.count("\n") == 1, second.stderr
    assert "another eval run" in second.stderr
    qids = [json.loads(x)["qid"] for x in (out / "predictions.jsonl").read_text().splitlines()]
    assert sorted(qids) == list(range(60))


@pytest.mark.parametrize("command", ["run", "analyze"])
def test_a_hostile_run_json_is_one_line(capsys, sta, run_dir, command) -> None:
    """run.json is read back to resume (run) and to rebuild samples (analyze): deep nesting is refused."""
    (run_dir / "samples.jsonl").unlink()
    (run_dir / "run.json").write_text('{"options": ' + DEEP + "}")
    before = tree_hashes(run_dir)
    if command == "run":
        rc, out, err = run_uniform(capsys, sta, run_dir, "--limit", "20")
    else:
        rc, out, err = run_cli(capsys, "eval", "analyze", run_dir)
    assert_one_line_error(rc, err, str(run_dir / "run.json"), "nested too deeply")
    assert tree_hashes(run_dir) == before
