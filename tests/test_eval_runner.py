"""The eval runner recipe: resumable predictions, error policy, concurrency, dispatch over servers, SIGKILL +
resume."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from eval import runner
from grounding_agent.benchmarks.datasets import load_charades_sta
from grounding_agent.errors import ConfigError, DatasetError, ServerError
from grounding_agent.grounders.base import BaseGrounder, Grounding
from grounding_agent.grounders.baselines import RandomGrounder
from grounding_agent.types import Moment, Video

REPO = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def sta_test(shared_data) -> Path:
    return shared_data / "charades_sta" / "charades_sta_test.txt"


def args_for(gt: Path, out: Path, *extra: str):
    return runner.build_parser().parse_args(
        ["--dataset", "charades-sta", "--gt", str(gt), "--out", str(out), "--no-progress", *extra]
    )


def lines(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text().splitlines()]


class FakePixelGrounderForTests(BaseGrounder):
    """Stands in for a model-backed grounder: needs pixels, answers the first tenth of the video,
    counts calls and the most queries in flight; raises ServerError for queries containing 'FAIL'."""

    needs_pixels = True

    def __init__(self, name: str = "fake", latency_s: float = 0.0):
        self.name = name
        self.latency_s = latency_s
        self.calls = 0
        self.in_flight = 0
        self.max_in_flight = 0
        self.seen: list = []

    async def aground(self, video, query, *, top_k=1, frames=None) -> Grounding:
        self.calls += 1
        if self.needs_pixels:  # as a real grounder: its own sampling, off the event loop
            frames = await asyncio.to_thread(self.frames_for, video, frames, {})
        self.seen.append((video, frames))
        self.in_flight += 1
        self.max_in_flight = max(self.max_in_flight, self.in_flight)
        try:
            await asyncio.sleep(self.latency_s)
            if "FAIL" in query:
                raise ServerError("fake server down")
            return Grounding([Moment(0.0, video.duration_s / 10)], timings_s={"model": self.latency_s})
        finally:
            self.in_flight -= 1


def test_read_done_cuts_a_torn_last_line_and_refuses_a_broken_middle(tmp_path):
    p = tmp_path / "predictions.jsonl"
    p.write_text('{"qid": 0, "pred_relevant_windows": []}\n{"qid": 1, "pred_rel')
    assert list(runner.read_done(p)) == [0]
    assert p.read_text() == '{"qid": 0, "pred_relevant_windows": []}\n'
    p.write_text('{"qid": 0}\nnot json\n{"qid": 2}\n')
    with pytest.raises(DatasetError, match=":2: broken line"):
        runner.read_done(p)


def test_run_writes_predictions_metrics_and_report_then_resumes_without_work(sta_test, tmp_path):
    out = tmp_path / "run"
    res = runner.run(args_for(sta_test, out, "--grounder", "uniform", "--limit", "30"))
    rows = lines(out / runner.PREDICTIONS)
    assert sorted(r["qid"] for r in rows) == list(range(30))
    assert all(len(r["pred_relevant_windows"]) == 5 for r in rows)  # default top-k 5 for Charades-STA
    saved = json.loads((out / "metrics.json").read_text())
    assert saved["num_queries"] == 30 and set(saved["brief"]) == {
        "R1@0.3",
        "R1@0.5",
        "R1@0.7",
        "R5@0.3",
        "R5@0.5",
        "R5@0.7",
        "mIoU",
    }
    assert saved["brief"] == res.result["brief"]
    report = (out / "report.md").read_text()
    assert (
        "| uniform (subset) | ours |" in report  # --limit: a subset, not bold
        and "2D-TAN (Conv)" in report
        and "microsoft/2D-TAN README" in report
    )
    # Resuming a finished run does no work and gives the same metrics.
    unused = FakePixelGrounderForTests()
    again = runner.run(args_for(sta_test, out, "--grounder", "uniform", "--limit", "30"), grounders=[unused])
    assert unused.calls == 0 and again.result["metrics"] == res.result["metrics"]
    with pytest.raises(
        ConfigError, match=r"other settings \(2 differ: model.name: 'uniform' -> 'random'; options.backend"
    ):
        runner.run(args_for(sta_test, out, "--grounder", "random", "--limit", "30"))


def test_missing_videos_and_grounder_errors_are_recorded_and_counted(sta_test, shared_data, tmp_path):
    anns = load_charades_sta(sta_test).annotations
    videos = tmp_path / "videos"
    videos.mkdir()
    out = tmp_path / "run"
    fake = FakePixelGrounderForTests()
    with pytest.raises(DatasetError, match="3 videos missing under .*--allow-missing"):
        runner.run(
            args_for(sta_test, out, "--grounder", "vllm", "--videos", str(videos), "--limit", "6"), [fake]
        )
    report = (out / "report.md").read_text()  # written before failing, listing them
    assert "missing videos: 3MSZA, AMT7R, YVKIV" in report
    res = runner.run(
        args_for(
            sta_test, out, "--grounder", "vllm", "--videos", str(videos), "--limit", "6", "--allow-missing"
        ),
        [fake],
    )
    assert fake.calls == 0 and res.result["missing_videos"] == ["3MSZA", "AMT7R", "YVKIV"]
    assert res.result["status"]["error"] == 6 and res.result["parsed_only"]["num_queries"] == 0
    assert res.result["errors"] == {"video_missing": 6}
    assert res.result["brief"]["R5@0.3"] == 0.0  # errors score as misses
    row = lines(out / runner.PREDICTIONS)[0]
    assert row["pred_relevant_windows"] == [] and row["error"]["kind"] == "video_missing"
    assert anns[0].vid in row["error"]["message"]
    # The videos appear (empty placeholder files are enough for a grounder that is handed a probed Video):
    # --retry-errors re-runs exactly the error lines.
    res = runner.run(
        args_for(sta_test, out, "--grounder", "vllm", "--limit", "6", "--retry-errors"), [_Probeless()]
    )
    assert res.result["errors"] == {} and len(lines(out / runner.PREDICTIONS)) == 6


@pytest.mark.slow
def test_pixel_grounder_gets_the_real_video_and_its_frames(sta_test, real_clips, tmp_path):
    videos = tmp_path / "videos"
    videos.mkdir()
    (videos / "Y1HGC.mp4").symlink_to(real_clips["univtg_charades_Y1HGC.mp4"])
    fake = FakePixelGrounderForTests()
    fake.max_frames = 8
    res = runner.run(
        args_for(
            sta_test, tmp_path / "run", "--grounder", "vllm", "--videos", str(videos), "--vids", "Y1HGC"
        ),
        [fake],
    )
    assert fake.calls == 2 and res.result["errors"] == {}
    for video, frames in fake.seen:
        assert video.duration_s == pytest.approx(30.74, abs=0.05)  # from the file, not the csv (30.62)
        assert len(frames) == 8 and frames.timestamps_s[-1] < video.duration_s
    with pytest.raises(ConfigError, match="--backend hf needs --model"):
        runner.build_workers(runner.resolve_options(args_for(sta_test, tmp_path / "x", "--backend", "hf")))


class _Probeless(FakePixelGrounderForTests):
    """FakePixelGrounderForTests variant that reads only the duration, so no video file is probed."""

    needs_pixels = False


def test_grounder_errors_become_error_lines(tmp_path):
    gt = tmp_path / "charades_sta_test.txt"
    gt.write_text("3MSZA 1 5##walk\n3MSZA 2 4##FAIL here\n")
    (tmp_path / "Charades_v1_test.csv").write_text("id,length\n3MSZA,30.0\n")
    res = runner.run(args_for(gt, tmp_path / "run", "--grounder", "vllm"), [_Probeless()])
    assert res.result["errors"] == {"ServerError": 1}
    assert res.result["num_queries"] == 2


def test_concurrency_is_bounded_and_each_video_stays_on_one_server(sta_test, tmp_path):
    fakes = [_Probeless("a", latency_s=0.01), _Probeless("b", latency_s=0.01)]
    runner.run(
        args_for(sta_test, tmp_path / "run", "--grounder", "vllm", "--limit", "40", "--concurrency", "3"),
        fakes,
    )
    assert [f.calls for f in fakes] == [20, 20]  # 14 videos of 1-6 queries: balanced without splitting one
    videos = [{video.path.stem for video, _ in f.seen} for f in fakes]
    assert videos[0] and videos[1] and not videos[0] & videos[1]
    assert 1 < sum(f.max_in_flight for f in fakes) and max(f.max_in_flight for f in fakes) <= 3


def _anns(*counts: int) -> list:
    from grounding_agent.benchmarks.datasets import Annotation

    return [
        Annotation(f"{v}-{i}", f"v{v}", "q", 30.0, ((0.0, 1.0),))
        for v, n in enumerate(counts)
        for i in range(n)
    ]


def test_dispatch_keeps_videos_whole_splits_only_a_video_past_the_fair_share_and_interleaves():
    order = runner.dispatch(_anns(3, 3, 2), 2)
    assert sorted(a.qid for a, _ in order) == sorted(a.qid for a in _anns(3, 3, 2))  # each query once
    on = {}
    for a, w in order:
        on.setdefault(a.vid, set()).add(w)
    assert all(len(ws) == 1 for ws in on.values()) and on["v0"] != on["v1"]
    assert [w for _, w in order][:4] == [0, 1, 0, 1]  # both servers busy from the first queries on
    long = runner.dispatch(_anns(10, 1), 2)  # one long video: split 6 + 4, the short one fills up
    assert sorted(sum(w == k for _, w in long) for k in (0, 1)) == [5, 6]
    assert runner.dispatch(_anns(2, 2), 1) == [(a, 0) for a in _anns(2, 2)]


def test_vids_filter_and_random_baseline_is_order_independent(sta_test, tmp_path):
    anns = load_charades_sta(sta_test).annotations
    vid = anns[10].vid
    res = runner.run(
        args_for(sta_test, tmp_path / "run", "--grounder", "random", "--vids", vid, "--seed", "3")
    )
    rows = lines(tmp_path / "run" / runner.PREDICTIONS)
    assert {r["vid"] for r in rows} == {vid} and res.result["num_queries"] == sum(a.vid == vid for a in anns)
    g = RandomGrounder(seed=3)
    a = anns[10]
    direct = g.ground(Video(Path(f"{a.vid}.mp4"), a.duration_s, 0, 0, 0, 0), a.query, top_k=5).moments
    assert next(r for r in rows if r["qid"] == a.qid)["pred_relevant_windows"] == [
        m.to_window() for m in direct
    ]
    with pytest.raises(ConfigError, match="no queries selected"):
        runner.run(args_for(sta_test, tmp_path / "other", "--grounder", "random", "--vids", "NOPE"))


@pytest.mark.slow
def test_sigkill_midway_then_resume_gives_all_3720_queries_and_the_uninterrupted_metrics(sta_test, tmp_path):
    common = ["--dataset", "charades-sta", "--gt", str(sta_test), "--grounder", "prior", "--no-progress"]
    cmd = [sys.executable, str(REPO / "eval" / "runner.py"), *common, "--out", str(tmp_path / "killed")]
    pred_path = tmp_path / "killed" / runner.PREDICTIONS
    # 3720 queries x 20 ms / 4 in flight ~ 19 s: plenty of time to kill it midway.
    proc = subprocess.Popen([*cmd, "--delay-s", "0.02", "--concurrency", "4"], stdout=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + 120
        while (
            not pred_path.exists() or pred_path.read_bytes().count(b"\n") < 500
        ) and time.monotonic() < deadline:
            assert proc.poll() is None, "runner exited before it could be killed"
            time.sleep(0.05)
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait()
    finally:
        if proc.poll() is None:
            proc.kill()
    written = pred_path.read_bytes().count(b"\n")
    assert 500 <= written < 3720 and not (tmp_path / "killed" / "metrics.json").exists()

    resumed = subprocess.run([*cmd, "--concurrency", "8"], capture_output=True, text=True, timeout=300)
    assert resumed.returncode == 0, resumed.stderr
    qids = [r["qid"] for r in lines(pred_path)]
    assert len(qids) == 3720 and set(qids) == set(range(3720))

    fresh = runner.run(runner.build_parser().parse_args([*common, "--out", str(tmp_path / "fresh")]))
    killed = json.loads((tmp_path / "killed" / "metrics.json").read_text())
    assert killed["metrics"] == fresh.result["metrics"] and killed["num_queries"] == 3720


@pytest.mark.integration
@pytest.mark.slow
def test_end_to_end_tiny_vlm_through_live_vllm_on_the_shared_clips(
    vllm_server, sta_test, real_clips, tmp_path
):
    videos = tmp_path / "videos"
    videos.mkdir()
    (videos / "Y1HGC.mp4").symlink_to(real_clips["univtg_charades_Y1HGC.mp4"])
    (videos / "OHOFG.mp4").symlink_to(real_clips["timer1_charades_OHOFG.mp4"])
    out = tmp_path / "run"
    rc = runner.main(
        [
            "--dataset",
            "charades-sta",
            "--gt",
            str(sta_test),
            "--videos",
            str(videos),
            "--vids",
            "Y1HGC,OHOFG",
            "--grounder",
            "vllm",
            "--server",
            vllm_server.base_url,
            "--model",
            vllm_server.adapter,
            "--concurrency",
            "4",
            "--out",
            str(out),
            "--no-progress",
        ]
    )
    assert rc == 0
    rows = lines(out / runner.PREDICTIONS)
    expected_qids = [
        i for i, a in enumerate(load_charades_sta(sta_test).annotations) if a.vid in ("Y1HGC", "OHOFG")
    ]
    assert sorted(r["qid"] for r in rows) == expected_qids and len(expected_qids) == 8
    for r in rows:
        assert "error" not in r and r["raw_text"]  # the model answered; unparseable answers are recorded
        assert r["grounder"]["model"] == vllm_server.adapter  # the LoRA adapter answered, not the base model
        assert r["pred_relevant_windows"] or r["parse_failures"]
        assert all(0 <= s <= e <= 35.3 for s, e, _ in r["pred_relevant_windows"])  # within the clip
        assert r["timings_s"]["model"] > 0 and r["timings_s"]["decode"] > 0
    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics["num_queries"] == 8 and all(0.0 <= v <= 100.0 for v in metrics["brief"].values())
    assert metrics["parse_failures"] == sum(len(r["parse_failures"]) for r in rows)
