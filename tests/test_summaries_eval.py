"""TVSum / SumMe evaluation: the real `ydata-tvsum50.mat` (loader, Otani et al.'s human row, random ~ 0, the
dataset's own gt_score as a prediction), both prediction shapes, a SumMe file built here with known F1, and
every bad input as one error line (exit 2, nothing printed or written)."""

from __future__ import annotations

import json
import re
import shlex
from pathlib import Path

import numpy as np
import pytest
import yaml
from scipy import io, stats

from grounding_agent.benchmarks.summaries import SummaryAnnotation, load_summe, load_tvsum
from grounding_agent.benchmarks.summary_metrics import (
    human_agreement,
    kendall_tau_b,
    keyshot_summary,
    rank_correlations,
    score_summaries,
    spearman_rho,
    summary_f1,
)
from grounding_agent.benchmarks.summary_predictions import hold_to_frames, load_summary_predictions
from grounding_agent.errors import ConfigError
from tests.test_hostile_options import assert_one_line_error, run_cli
from tests.test_hostile_options import empty_cwd as empty_cwd  # noqa: F401 (a fixture)

REPO = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def tvsum_path(shared_data) -> Path:
    return shared_data / "tvsum" / "ydata-tvsum50.mat"


@pytest.fixture(scope="module")
def tvsum(tvsum_path) -> list[SummaryAnnotation]:
    return load_tvsum(tvsum_path)


def _write_jsonl(path: Path, rows: list[dict]) -> Path:
    path.write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
    return path


# --- SumMe, built here: 300 frames at 10 fps (15 shots of 2 s), 3 annotators ------------------------------

SUMME_FRAMES, SUMME_FPS = 300, 10.0


def _summe_users() -> np.ndarray:
    users = np.zeros((SUMME_FRAMES, 3))
    users[0:20, 0] = users[100:120, 0] = 1  # A: exactly the prediction's summary below -> F1 1
    users[0:40, 1] = 1  # B: half of it, plus as much outside -> F1 0.5
    users[200:240, 2] = 1  # C: none of it -> F1 0
    return users


def _summe_prediction() -> list[float]:
    scores = np.full(SUMME_FRAMES, 0.1)
    scores[0:20] = scores[100:120] = 0.9  # the budget (45 frames) holds two 20-frame shots: these two
    return scores.tolist()


@pytest.fixture(scope="module")
def summe_dir(tmp_path_factory) -> Path:
    gt = tmp_path_factory.mktemp("summe") / "GT"
    gt.mkdir()
    users = _summe_users()
    for name in ("Air_Force_One", "Jumps"):
        io.savemat(
            gt / f"{name}.mat",
            {"user_score": users, "gt_score": users.mean(axis=1, keepdims=True), "nFrames": [[SUMME_FRAMES]],
             "FPS": [[SUMME_FPS]], "video_duration": [[SUMME_FRAMES / SUMME_FPS]]},
        )  # fmt: skip
    return gt


@pytest.fixture(scope="module")
def summe_pred(summe_dir) -> Path:
    rows = [{"vid": "Air_Force_One", "frame_scores": _summe_prediction()}]
    rows.append({"vid": "Jumps", "timestamps_s": [0.0, 2.0, 10.0, 12.0], "scores": [0.9, 0.1, 0.9, 0.1]})
    return _write_jsonl(summe_dir.parent / "pred.jsonl", rows)


# --- the loader ------------------------------------------------------------------------------------------


def test_tvsum_loader_reads_the_50_videos(tvsum) -> None:
    first = tvsum[0]
    assert len(tvsum) == 50 and len({a.vid for a in tvsum}) == 50
    assert (first.vid, first.nframes, first.duration_s, first.category) == (
        "AwmHb44_ouw",
        10597,
        353.593,
        "VT",
    )
    assert first.title.startswith("#1306 How to change tires") and first.user_scores.shape == (20, 10597)
    assert first.fps == pytest.approx(29.97, abs=0.01) and set(np.unique(first.user_scores)) == {
        1,
        2,
        3,
        4,
        5,
    }


def test_tvsum_shots_are_the_annotations_two_second_shots(tvsum) -> None:
    """Every annotator's score is constant within each shot; shots tile the video and last about 2 s."""
    for ann in tvsum:
        s = ann.shots
        assert s[0, 0] == 0 and s[-1, 1] == ann.nframes and (s[1:, 0] == s[:-1, 1]).all()
        starts = ann.user_scores[:, s[:, 0]]
        assert (np.repeat(starts, s[:, 1] - s[:, 0], axis=1) == ann.user_scores).all(), ann.vid
        assert 1.4 < ((s[:, 1] - s[:, 0]) / ann.fps).min() and ((s[:, 1] - s[:, 0]) / ann.fps).max() < 3.0


# --- metrics ---------------------------------------------------------------------------------------------


def test_rank_correlations_equal_scipys_with_ties_and_constants() -> None:
    rng = np.random.default_rng(3)
    users = rng.integers(1, 6, (4, 500)).astype(float)
    users[3] = 2.0  # a constant annotator: undefined, left out of the mean
    for pred in (rng.random(500), rng.integers(0, 4, 500).astype(float)):
        want_tau = [stats.kendalltau(pred, u).statistic for u in users[:3]]
        want_rho = [stats.spearmanr(pred, u).statistic for u in users[:3]]
        assert np.allclose(kendall_tau_b(pred, users)[:3], want_tau)
        assert np.allclose(spearman_rho(pred, users)[:3], want_rho)
        assert np.isnan(kendall_tau_b(pred, users)[3]) and np.isnan(spearman_rho(pred, users)[3])
        assert rank_correlations(pred, users) == pytest.approx((np.mean(want_tau), np.mean(want_rho)))
    continuous = rng.random((2, 5000))  # too many levels for a contingency table: scipy's count
    assert kendall_tau_b(continuous[0], continuous[1:])[0] == pytest.approx(
        stats.kendalltau(continuous[0], continuous[1]).statistic
    )
    assert rank_correlations(np.zeros(500), users) == (0.0, 0.0)  # a constant prediction ranks nothing


def test_rank_correlations_known_values() -> None:
    # pred 1,2,3,4 vs user 1,2,4,3: 5 concordant, 1 discordant pairs -> tau 4/6; rho = 1 - 6*2/(4*15) = 0.8.
    tau, rho = rank_correlations(np.array([1.0, 2, 3, 4]), np.array([[1.0, 2, 4, 3], [1.0, 2, 3, 4]]))
    assert tau == pytest.approx((4 / 6 + 1) / 2)
    assert rho == pytest.approx((0.8 + 1) / 2)


def test_human_agreement_on_continuous_scores_is_the_mean_over_pairs() -> None:
    rng = np.random.default_rng(4)
    users = rng.random((3, 3000))  # continuous: the pairwise path without contingency tables
    shots = np.array([[i, i + 100] for i in range(0, 3000, 100)])
    ann = SummaryAnnotation("v", "", "", 100.0, 30.0, 3000, users, shots, "scores", users.mean(axis=0))
    pairs = [(0, 1), (0, 2), (1, 2)]
    row = human_agreement([ann])
    assert row["kendall_tau"] == pytest.approx(
        np.mean([stats.kendalltau(users[a], users[b]).statistic for a, b in pairs])
    )
    assert row["spearman_rho"] == pytest.approx(
        np.mean([stats.spearmanr(users[a], users[b]).statistic for a, b in pairs])
    )


def test_keyshot_summary_fills_the_budget_and_shifts_negative_scores() -> None:
    shots = np.array([[0, 10], [10, 20], [20, 40], [40, 50]])
    scores = np.repeat([-1.0, 3.0, 5.0, -2.0], [10, 10, 20, 10])
    mask = keyshot_summary(scores, shots, 0.6)  # 30 frames: shots 1 and 2
    assert mask.nonzero()[0].tolist() == list(range(10, 40))
    assert keyshot_summary(scores - 10, shots, 0.6).sum() == 30  # all negative: same choice, not empty
    with pytest.raises(ConfigError, match="ratio"):
        keyshot_summary(scores, shots, 0.0)


def test_summary_f1_and_a_knapsack_that_beats_greedy() -> None:
    users = np.array([[1, 1, 0, 0], [0, 1, 1, 0]], dtype=bool)
    predicted = np.array([1, 1, 0, 0], dtype=bool)
    assert summary_f1(predicted, users, "max") == pytest.approx(1.0)
    assert summary_f1(predicted, users, "mean") == pytest.approx((1.0 + 0.5) / 2)
    with pytest.raises(ValueError, match="reduce"):
        summary_f1(predicted, users, "median")
    # 10 frames, budget 30% = 3 frames: shots of length 2 (mean 0.9) + 1 (0.8) beat a 3-frame one (mean 0.95).
    scores = np.array([0.9, 0.9, 0.8, 1.0, 1.0, 0.85, 0.1, 0.1, 0.1, 0.1])
    shots = np.array([[0, 2], [2, 3], [3, 6], [6, 10]])
    assert keyshot_summary(scores, shots, 0.3).nonzero()[0].tolist() == [0, 1, 2]


# --- predictions -----------------------------------------------------------------------------------------


def test_timestamps_are_held_to_frames() -> None:
    held = hold_to_frames(np.array([0.5, 1.0]), np.array([1.0, 2.0]), nframes=5, fps=2.0)
    assert held.tolist() == [1.0, 1.0, 2.0, 2.0, 2.0]  # frame 0 (before 0.5 s) takes the first score


def test_both_prediction_shapes_read_the_same_scores(tvsum, tmp_path) -> None:
    ann = tvsum[1]
    rng = np.random.default_rng(5)
    frame_scores = rng.random(ann.nframes)
    times = (np.arange(ann.nframes) / ann.fps).tolist()
    a = _write_jsonl(tmp_path / "a.jsonl", [{"vid": ann.vid, "frame_scores": frame_scores.tolist()}])
    b = _write_jsonl(
        tmp_path / "b.jsonl", [{"vid": ann.vid, "timestamps_s": times, "scores": frame_scores.tolist()}]
    )
    got_a, got_b = load_summary_predictions(a, tvsum)[ann.vid], load_summary_predictions(b, tvsum)[ann.vid]
    assert np.array_equal(got_a, frame_scores) and np.array_equal(got_b, frame_scores)


# --- SumMe -----------------------------------------------------------------------------------------------


def test_summe_built_here_scores_the_known_f1(summe_dir, summe_pred) -> None:
    videos = load_summe(summe_dir)
    assert [v.vid for v in videos] == ["Air_Force_One", "Jumps"] and load_summe(summe_dir / "Jumps.mat")[
        0
    ].nframes == 300
    assert videos[0].shots.shape == (15, 2) and videos[0].user_kind == "selections"
    row = score_summaries(videos, load_summary_predictions(summe_pred, videos))
    assert row["f1_avg"] == pytest.approx(50.0) and row["f1_max"] == pytest.approx(100.0)
    users = _summe_users().T
    want_tau = np.mean([stats.kendalltau(_summe_prediction(), u).statistic for u in users])
    assert row["kendall_tau"] == pytest.approx(want_tau)
    human = human_agreement(videos)  # A-B 0.5, A-C 0, B-C 0
    assert human["f1_avg"] == pytest.approx(100 * (0.25 + 0.25 + 0) / 3)
    assert human["f1_max"] == pytest.approx(100 * (0.5 + 0.5 + 0) / 3)


def test_cli_scores_summe(capsys, summe_dir, summe_pred, empty_cwd) -> None:
    rc, out, err = run_cli(
        capsys, "eval", "score", "--dataset", "summe", "--gt", summe_dir, "--pred", summe_pred, "--json"
    )
    assert rc == 0, err
    assert json.loads(out)["f1_max"] == pytest.approx(100.0) and list(empty_cwd.iterdir()) == []


# --- the real TVSum through the CLI ----------------------------------------------------------------------


def _docs_command() -> list[str]:
    line = next(
        line for line in (REPO / "docs" / "eval.md").read_text(encoding="utf-8").splitlines()
        if re.match(r"grounding-agent eval score --dataset tvsum .*--human", line)
    )  # fmt: skip
    return shlex.split(line)[1:]


@pytest.mark.slow
def test_docs_human_command_prints_the_published_ceiling(capsys, tvsum_path, empty_cwd) -> None:
    """The command of docs/eval.md as written (on the real file): the human row is Otani et al.'s, to the
    published precision, and so is anchors.yaml's; random is 0.000."""
    argv = [str(tvsum_path) if a == "ydata-tvsum50.mat" else a for a in _docs_command()]
    rc, out, err = run_cli(capsys, *argv)
    assert rc == 0, err
    rows = {line.split()[0]: line.split()[1:] for line in out.splitlines()[2:]}
    assert rows["human"][:2] == ["0.177", "0.204"] and rows["random"][:2] == ["0.000", "0.000"]
    anchors = {
        r["system"].split()[0]: r["metrics"]
        for r in yaml.safe_load((REPO / "eval" / "anchors.yaml").read_text())["tvsum"]
    }
    assert anchors["Human"] == {"kendall_tau": 0.177, "spearman_rho": 0.204}
    assert anchors["Random"] == {"kendall_tau": 0.0, "spearman_rho": 0.0}
    assert list(empty_cwd.iterdir()) == []


@pytest.mark.slow
def test_cli_scores_tvsum_gt_score_high(capsys, tvsum, tvsum_path, tmp_path) -> None:
    """TVSum's own gt_score (the annotators' mean) as a prediction correlates far above one annotator
    with another; half the videos as timestamps, the other half as frame scores."""
    rows = []
    for i, ann in enumerate(tvsum):
        if i % 2:
            rows.append({"vid": ann.vid, "frame_scores": ann.gt_score.tolist()})
        else:
            rows.append({"vid": ann.vid, "timestamps_s": (np.arange(ann.nframes) / ann.fps).tolist(),
                         "scores": ann.gt_score.tolist()})  # fmt: skip
    pred = _write_jsonl(tmp_path / "gt.jsonl", rows)
    rc, out, err = run_cli(
        capsys, "eval", "score", "--dataset", "tvsum", "--gt", tvsum_path, "--pred", pred, "--json"
    )
    assert rc == 0, err
    got = json.loads(out)
    assert got["kendall_tau"] == pytest.approx(0.378, abs=1e-3) and got["spearman_rho"] == pytest.approx(
        0.473, abs=1e-3
    )
    assert got["f1_avg"] > 35 and got["f1_max"] > 65  # random: 14.7 / 29.2


# --- bad input: one line, exit 2, nothing printed or written ---------------------------------------------


@pytest.fixture(scope="module")
def bad_mats(tmp_path_factory, summe_dir) -> dict[str, Path]:
    import h5py

    d = tmp_path_factory.mktemp("bad_mats")
    (d / "text.mat").write_text("not a mat file\n")
    with h5py.File(d / "other.mat", "w") as f:
        f.create_dataset("x", data=np.zeros(3))
    with h5py.File(d / "fields.mat", "w") as f:
        f.create_group("tvsum50").create_dataset("video", data=np.zeros(3))
    return {"text": d / "text.mat", "other": d / "other.mat", "fields": d / "fields.mat",
            "summe": summe_dir / "Jumps.mat", "folder": d}  # fmt: skip


@pytest.mark.parametrize(
    ("case", "fragment"),
    [("text", "not an HDF5"), ("other", "no struct tvsum50"), ("fields", "has no field"),
     ("summe", "--dataset summe"), ("folder", "is a folder")],
)  # fmt: skip
def test_a_mat_that_is_not_tvsum_is_one_line(capsys, bad_mats, empty_cwd, case, fragment) -> None:
    rc, out, err = run_cli(capsys, "eval", "score", "--dataset", "tvsum", "--gt", bad_mats[case], "--human")
    assert_one_line_error(rc, err, fragment)
    assert out == "" and list(empty_cwd.iterdir()) == []


def test_tvsum_predictions_of_the_wrong_length_or_nan_are_one_line(
    capsys, tvsum, tvsum_path, tmp_path, empty_cwd
) -> None:
    ann = tvsum[0]
    short = _write_jsonl(
        tmp_path / "short.jsonl", [{"vid": ann.vid, "frame_scores": [0.5] * (ann.nframes - 1)}]
    )
    nan = tmp_path / "nan.jsonl"
    nan.write_text(
        json.dumps({"vid": ann.vid, "frame_scores": [0.5] * ann.nframes}).replace("0.5", "NaN", 1) + "\n"
    )
    for path, fragment in ((short, "10596 frame_scores"), (nan, "NaN")):
        rc, out, err = run_cli(
            capsys, "eval", "score", "--dataset", "tvsum", "--gt", tvsum_path, "--pred", path, "--json"
        )
        assert_one_line_error(rc, err, fragment, path.name)
        assert out == "" and list(empty_cwd.iterdir()) == []


BAD_ROWS = {
    "unknown vid": ([{"vid": "nope", "frame_scores": [0.1] * 300}], "not in the annotations"),
    "duplicate vid": ([{"vid": "Jumps", "frame_scores": [0.1] * 300}] * 2, "appears twice"),
    "vid not a string": ([{"vid": 7, "frame_scores": [0.1] * 300}], "vid must be"),
    "bool scores": ([{"vid": "Jumps", "frame_scores": [True] * 300}], "list of numbers"),
    "both shapes": (
        [{"vid": "Jumps", "frame_scores": [0.1] * 300, "timestamps_s": [0], "scores": [1]}],
        "not both",
    ),
    "timestamps back": ([{"vid": "Jumps", "timestamps_s": [0, 2, 1], "scores": [1, 2, 3]}], "increasing"),
    "lengths differ": ([{"vid": "Jumps", "timestamps_s": [0, 1], "scores": [1]}], "one score per timestamp"),
    "missing video": ([{"vid": "Jumps", "frame_scores": [0.1] * 300}], "--allow-missing"),
}


@pytest.mark.parametrize("case", list(BAD_ROWS))
def test_bad_summary_predictions_are_one_line(capsys, summe_dir, tmp_path, empty_cwd, case) -> None:
    rows, fragment = BAD_ROWS[case]
    pred = _write_jsonl(tmp_path / "pred.jsonl", rows)
    rc, out, err = run_cli(capsys, "eval", "score", "--dataset", "summe", "--gt", summe_dir, "--pred", pred)
    assert_one_line_error(rc, err, fragment)
    assert out == "" and list(empty_cwd.iterdir()) == []


def test_allow_missing_scores_a_missing_video_as_zero(capsys, summe_dir, summe_pred, tmp_path) -> None:
    one = _write_jsonl(
        tmp_path / "one.jsonl", [{"vid": "Air_Force_One", "frame_scores": _summe_prediction()}]
    )
    argv = ["eval", "score", "--dataset", "summe", "--gt", summe_dir, "--json"]
    rc, out, err = run_cli(capsys, *argv, "--pred", one, "--allow-missing")
    assert rc == 0, err
    assert json.loads(out)["f1_max"] == pytest.approx(50.0)  # 100 for one video, 0 for the other


@pytest.mark.parametrize(
    ("extra", "fragment"),
    [(["--ratio", "0"], "--ratio"), (["--ratio", "1.5"], "--ratio"), (["--ratio", "nan"], "--ratio"), ([], "--human")],
)  # fmt: skip
def test_a_budget_of_zero_or_over_100_percent_is_one_line(
    capsys, summe_dir, empty_cwd, extra, fragment
) -> None:
    rc, out, err = run_cli(capsys, "eval", "score", "--dataset", "summe", "--gt", summe_dir, *extra)
    assert_one_line_error(rc, err, fragment)
    assert out == "" and list(empty_cwd.iterdir()) == []


def test_human_is_for_summary_datasets_only(capsys, summe_pred, empty_cwd) -> None:
    rc, out, err = run_cli(
        capsys,
        "eval",
        "score",
        "--dataset",
        "charades-sta",
        "--gt",
        summe_pred,
        "--pred",
        summe_pred,
        "--human",
    )
    assert_one_line_error(rc, err, "--human")
    assert out == ""
