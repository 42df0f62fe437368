"""An eval run a reviewer can trust: run.json says where and with what it was made (git, packages, date,
host, GT policy, --prior-train's sha256, the weights' fingerprint); a resume refuses a changed prior or
model but not a new date or host; the report says plainly when its numbers are not a result; `--raw-gt`
works on `run` as on `score`."""

from __future__ import annotations

import argparse
import hashlib
import json
import re
import shutil
import struct
from datetime import datetime
from pathlib import Path

import pytest

from eval import runner
from eval.settings import check_settings, model_identity
from grounding_agent.errors import ConfigError, DatasetError
from grounding_agent.grounders.base import BaseGrounder, Grounding
from grounding_agent.grounders.parsing import ParseFailure
from grounding_agent.types import Moment
from tests.test_hostile_eval import sta as sta  # noqa: F401 (a fixture)
from tests.test_hostile_eval import tree_hashes
from tests.test_hostile_options import assert_one_line_error, run_cli

DATA = Path(__file__).resolve().parents[2] / "shared" / "data"
STA = DATA / "charades_sta"
VIDEOS = DATA / "videos"


def eval_run(capsys, sta: Path, out: Path, *extra) -> tuple[int, str, str]:
    return run_cli(
        capsys, "eval", "run", "--dataset", "charades-sta", "--gt", sta, "--out", out, "--no-progress", *extra
    )


def run_json(out: Path) -> dict:
    return json.loads((out / "run.json").read_text())


def test_run_json_records_provenance(capsys, sta, tmp_path) -> None:
    out = tmp_path / "run"
    rc, _, err = eval_run(capsys, sta, out, "--backend", "prior", "--limit", "5")
    assert rc == 0, err
    saved = run_json(out)
    prov = saved["provenance"]
    assert datetime.fromisoformat(prov["date"]).utcoffset().total_seconds() == 0  # UTC, ISO
    assert re.fullmatch(r"[0-9a-f]{40}", prov["git"]["commit"]) and isinstance(prov["git"]["dirty"], bool)
    assert prov["packages"]["grounding-agent"] and "torch" in prov["packages"] and "vllm" in prov["packages"]
    host = prov["host"]
    assert host["hostname"] and host["cpu"] and host["cpu_count"] >= 1 and isinstance(host["gpus"], list)
    # The GT policy and what it changed: 562 test ends past the video are clipped (SOURCES.md).
    assert saved["gt_policy"] == {
        "clip_to_duration": True,
        "drop_inverted": True,
        "changes": {"clipped_end": 562},
    }
    train = sta.with_name("charades_sta_train.txt")
    assert saved["dataset_files"]["prior_train"]["sha256"] == hashlib.sha256(train.read_bytes()).hexdigest()


def test_resume_refuses_a_changed_prior_train_file(capsys, sta, tmp_path) -> None:
    out = tmp_path / "run"
    assert eval_run(capsys, sta, out, "--backend", "prior", "--limit", "5")[0] == 0
    train = sta.with_name("charades_sta_train.txt")
    train.write_text("".join(train.read_text().splitlines(keepends=True)[:-100]))  # another training set
    before = tree_hashes(tmp_path)
    rc, out_text, err = eval_run(capsys, sta, out, "--backend", "prior", "--limit", "20")
    assert_one_line_error(rc, err, "dataset_files.prior_train.sha256", "--force-resume")
    assert tree_hashes(tmp_path) == before


def test_resume_allows_a_new_date_and_host_and_records_them(capsys, sta, tmp_path) -> None:
    out = tmp_path / "run"
    assert eval_run(capsys, sta, out, "--backend", "uniform", "--limit", "5")[0] == 0
    saved = run_json(out)
    saved["provenance"]["date"] = "2020-01-01T00:00:00+00:00"
    saved["provenance"]["host"] = {"hostname": "another-machine", "cpu": "elsewhere", "gpus": ["H100"]}
    saved["provenance"]["git"] = {"commit": "0" * 40, "dirty": False}
    (out / "run.json").write_text(json.dumps(saved))
    rc, _, err = eval_run(capsys, sta, out, "--backend", "uniform", "--limit", "5")
    assert rc == 0, err
    resumed = run_json(out)
    assert resumed["provenance"]["date"] == "2020-01-01T00:00:00+00:00"  # the first run's, kept
    assert len(resumed["resumes"]) == 1 and resumed["resumes"][0]["date"] > "2020"
    assert "forced_resumes" not in resumed


def write_safetensors(path: Path, tensors: dict[str, bytes], metadata: dict | None = None) -> None:
    """A real safetensors file: 8-byte header length, JSON header, then the raw data."""
    header, offset = {}, 0
    for name, data in tensors.items():
        header[name] = {"dtype": "U8", "shape": [len(data)], "data_offsets": [offset, offset + len(data)]}
        offset += len(data)
    if metadata:
        header["__metadata__"] = metadata
    raw = json.dumps(header).encode()
    path.write_bytes(struct.pack("<Q", len(raw)) + raw + b"".join(tensors.values()))


def hf_model(folder: Path, weights: bytes = b"\x01" * 64) -> argparse.Namespace:
    folder.mkdir(exist_ok=True)
    (folder / "config.json").write_text('{"model_type": "qwen2_5_vl"}')
    write_safetensors(folder / "model-00001-of-00002.safetensors", {"a": weights})
    write_safetensors(folder / "model-00002-of-00002.safetensors", {"b": b"\x02" * 64})
    index = {"weight_map": {"a": "model-00001-of-00002.safetensors", "b": "model-00002-of-00002.safetensors"}}
    (folder / "model.safetensors.index.json").write_text(json.dumps(index))
    return argparse.Namespace(backend="hf", model=str(folder), adapter=None)


def test_hf_model_identity_fingerprints_the_weights_not_only_the_config(tmp_path) -> None:
    args = hf_model(tmp_path / "model")
    first = model_identity(args)
    assert first["weights"]["files"] == 3 and re.fullmatch(r"[0-9a-f]{64}", first["weights"]["sha256"])
    before = tree_hashes(tmp_path)
    assert model_identity(args) == first and tree_hashes(tmp_path) == before  # stable, reads only
    hf_model(tmp_path / "model", weights=b"\x03" * 64)  # a fine-tune: same config, same header, new values
    tuned = model_identity(args)
    assert tuned["config_sha256"] == first["config_sha256"] and tuned["weights"] != first["weights"]


def test_resume_refuses_changed_weights(tmp_path) -> None:
    """check_settings compares the weights' fingerprint: a resume with another checkpoint is refused."""
    args = hf_model(tmp_path / "model")
    out = tmp_path / "run"
    out.mkdir()
    old = {"options": {"backend": "hf"}, "model": model_identity(args), "provenance": {"date": "x"}}
    (out / "run.json").write_text(json.dumps(old))
    hf_model(tmp_path / "model", weights=b"\x04" * 64)
    new = {"options": {"backend": "hf"}, "model": model_identity(args), "provenance": {"date": "y"}}
    with pytest.raises(ConfigError, match=r"model\.weights\.sha256"):
        check_settings(out, new, force=False)
    moved = {**old, "provenance": {"date": "later", "host": {"hostname": "other"}}}
    assert check_settings(out, moved, force=False)["model"] == old["model"]  # date/host alone: allowed


# --- reports that say when a number is not a result ---------------------------------------------------


class FallbackGrounderForTests(BaseGrounder):
    """Replaces the model only: the first `fallbacks` queries it sees get what a grounder returns when no
    sample parsed (the whole video, score 0); the others a real-looking answer."""

    needs_pixels = False
    name = "scripted"

    def __init__(self, fallbacks: int):
        self.left = fallbacks

    async def aground(self, video, query, *, top_k=1, frames=None) -> Grounding:
        if self.left > 0:
            self.left -= 1
            g = Grounding([Moment(0.0, video.duration_s, 0.0)], raw_text=["I cannot tell"])
            g.failures.append(ParseFailure("I cannot tell", "no_moment"))
            g.info["fallback"] = "whole_video"
            return g
        return Grounding([Moment(0.0, video.duration_s / 4, 0.9)], raw_text=["0 - 5 seconds"])


def args_for(gt: Path, out: Path, *extra: str) -> argparse.Namespace:
    return runner.build_parser().parse_args(
        ["--dataset", "charades-sta", "--gt", str(gt), "--out", str(out), "--no-progress", "--concurrency", "1",
         "--backend", "vllm", *extra]
    )  # fmt: skip


@pytest.fixture
def small_gt(tmp_path: Path) -> Path:
    """Eight real Charades-STA test lines (the first eight) as a complete dataset of their own."""
    gt = tmp_path / "small" / "charades_sta_test.txt"
    gt.parent.mkdir()
    gt.write_text("".join((STA / "charades_sta_test.txt").read_text().splitlines(keepends=True)[:8]))
    shutil.copy(STA / "Charades_v1_test.csv", gt.with_name("Charades_v1_test.csv"))
    return gt


def our_row(report: str) -> str:
    return next(line for line in report.splitlines() if "| ours |" in line)


def test_all_fallback_run_is_headlined_not_a_result(small_gt, tmp_path) -> None:
    out = tmp_path / "run"
    res = runner.run(args_for(small_gt, out), [FallbackGrounderForTests(8)])
    report = (out / "report.md").read_text()
    assert "**NOT A RESULT: all 8 answers were fallbacks" in report.splitlines()[2]  # under the title
    assert "**" not in our_row(report) and "not a result" in our_row(report)
    assert "R1@0.3" in res.result["brief"]  # the number exists, and is labelled as no result
    assert json.loads((out / "metrics.json").read_text())["verdict"].startswith("NOT A RESULT")


def test_mostly_fallback_run_gives_the_share(small_gt, tmp_path) -> None:
    out = tmp_path / "run"
    runner.run(args_for(small_gt, out), [FallbackGrounderForTests(6)])
    report = (out / "report.md").read_text()
    assert "**NOT A RESULT: 6 of 8 queries (75.0%) have no model answer (6 fallbacks, 0 errors)**" in report
    assert "**" not in our_row(report)


def test_a_few_fallbacks_keep_the_result_with_a_warning(small_gt, tmp_path) -> None:
    out = tmp_path / "run"
    runner.run(args_for(small_gt, out), [FallbackGrounderForTests(1)])
    report = (out / "report.md").read_text()
    assert "NOT A RESULT" not in report and our_row(report).startswith("| **")
    assert "- **WARNING (answers)**: 1 of 8 queries (12.5%) scored without a model answer" in report


class PixelGrounderForTests(FallbackGrounderForTests):
    needs_pixels = True


def test_failed_run_has_no_bold_metrics_row(small_gt, tmp_path) -> None:
    """Every video missing (exit 2): the report is still written, and says the run failed."""
    out, videos = tmp_path / "run", tmp_path / "videos"
    videos.mkdir()
    with pytest.raises(DatasetError, match="videos missing"):
        runner.run(args_for(small_gt, out, "--videos", str(videos)), [PixelGrounderForTests(0)])
    report = (out / "report.md").read_text()
    assert (
        "**NOT A RESULT: the run failed (4 videos missing); 8 of 8 queries failed (video_missing 8)**"
        in report
    )
    assert "**" not in our_row(report)


def test_subset_run_is_marked_incomplete(capsys, sta, tmp_path) -> None:
    out = tmp_path / "run"
    rc, text, err = eval_run(capsys, sta, out, "--backend", "uniform", "--limit", "12")
    assert rc == 0, err
    assert text.splitlines()[0].endswith("(INCOMPLETE: a subset of the queries)")
    assert "**" not in our_row(text) and "(subset)" in our_row(text)


def test_baseline_counts_absent_videos(capsys, sta, tmp_path) -> None:
    """A model-free baseline needs no video, but its report says how many are absent under --videos."""
    out = tmp_path / "run"
    rc, text, err = eval_run(
        capsys, sta, out, "--backend", "uniform", "--videos", VIDEOS, "--video-pattern", "*_{vid}.mp4"
    )
    assert rc == 0, err
    assert "- missing videos: 1332 of 1334 absent under --videos (not needed" in text
    assert our_row(text).startswith("| **uniform** |")  # complete, every answer a (blind) answer
    assert json.loads((out / "metrics.json").read_text())["videos"] == {
        "total": 1334,
        "absent": 1332,
        "needed": False,
    }


# --- --raw-gt on run -----------------------------------------------------------------------------------


def test_raw_gt_on_run_scores_as_score_does(capsys, sta, tmp_path) -> None:
    for flag, out in (((), tmp_path / "clipped"), (("--raw-gt",), tmp_path / "raw")):
        rc, _, err = eval_run(capsys, sta, out, "--backend", "prior", *flag)
        assert rc == 0, err
        run_metrics = json.loads((out / "metrics.json").read_text())["brief"]
        rc, scored, err = run_cli(
            capsys, "eval", "score", "--dataset", "charades-sta", "--gt", sta,
            "--pred", out / "predictions.jsonl", "--json", *flag,
        )  # fmt: skip
        assert rc == 0, err
        assert run_metrics == pytest.approx(json.loads(scored))
        assert run_json(out)["gt_policy"]["clip_to_duration"] is not bool(flag)
    clipped = json.loads((tmp_path / "clipped" / "metrics.json").read_text())["brief"]
    raw = json.loads((tmp_path / "raw" / "metrics.json").read_text())["brief"]
    assert raw != clipped  # 562 GT ends differ
    before = tree_hashes(tmp_path / "raw")
    rc, _, err = eval_run(capsys, sta, tmp_path / "raw", "--backend", "prior")  # resume without the flag
    assert_one_line_error(rc, err, "options.raw_gt: True -> False")
    assert tree_hashes(tmp_path / "raw") == before
