"""Metrics: reproduce published numbers on real prediction files; small cases with hand-computed answers."""

from __future__ import annotations

import json

import numpy as np
import pytest

from grounding_agent.benchmarks.datasets import (
    Annotation,
    GTPolicy,
    load_charades_sta,
    load_predictions,
    load_qvhighlights,
)
from grounding_agent.benchmarks.metrics import (
    brief,
    charades_sta_metrics,
    detection_ap,
    qvhighlights_metrics,
    ranking_ap,
)
from grounding_agent.errors import DatasetError
from grounding_agent.types import Prediction


def close_after_rounding(ours: float, published: float) -> bool:
    return abs(round(ours, 2) - published) <= 0.01 + 1e-9


# --- reproduction ----------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def qvh_val(shared_data):
    return load_qvhighlights(shared_data / "qvhighlights" / "highlight_val_release.jsonl").annotations


def flatten_moment_detr(metrics_file: dict) -> dict[str, float]:
    """moment_detr's nested metrics json -> our flat names (every number in the file)."""
    flat = {}
    for key, value in metrics_file.items():
        if key == "brief":
            flat.update(value)
        elif key.startswith("HL-min-"):
            flat.update({f"{key}-{k.split('-')[1]}": v for k, v in value.items()})
        else:  # length bucket
            for t, v in value["MR-mAP"].items():
                flat[f"MR-{key}-mAP" if t == "average" else f"MR-{key}-mAP@{t}"] = v
            flat.update({f"MR-{key}-R1@{t}": v for t, v in value["MR-R1"].items()})
    return flat


@pytest.mark.slow
@pytest.mark.parametrize(
    "pred_file, metrics_file",
    [
        ("moment_detr/sample_val_preds.jsonl", "moment_detr/sample_val_preds_metrics_raw.json"),
        ("qd_detr/hl_val_submission.jsonl", "qd_detr/hl_val_submission_metrics.json"),
    ],
)
def test_qvhighlights_reproduces_published_metrics(shared_data, qvh_val, pred_file, metrics_file):
    preds = load_predictions(shared_data / "predictions" / pred_file)
    published = flatten_moment_detr(json.loads((shared_data / "predictions" / metrics_file).read_text()))
    ours = qvhighlights_metrics(qvh_val, preds)
    assert len(published) > 60  # brief + every bucket/threshold + HL levels
    wrong = {k: (round(ours[k], 2), v) for k, v in published.items() if not close_after_rounding(ours[k], v)}
    assert not wrong
    assert set(brief(ours, "qvhighlights")) >= set(
        json.loads((shared_data / "predictions" / metrics_file).read_text())["brief"]
    )


@pytest.fixture(scope="module")
def charades_test(shared_data):
    return shared_data / "charades_sta" / "charades_sta_test.txt"


@pytest.fixture(scope="module")
def tan_preds(shared_data):
    return load_predictions(
        shared_data / "predictions" / "vmr_axiou_2dtan" / "2dtan_charades_sta_test_preds.jsonl"
    )


def test_charades_reproduces_2dtan_with_clipped_gt(charades_test, tan_preds):
    ours = charades_sta_metrics(load_charades_sta(charades_test).annotations, tan_preds)
    published = {
        "R1@0.5": 42.80,
        "R1@0.7": 23.25,
        "R5@0.5": 80.54,
        "R5@0.7": 54.19,
        "R1@0.3": 57.31,
        "mIoU": 39.23,
    }
    assert {k: close_after_rounding(ours[k], v) for k, v in published.items()} == dict.fromkeys(
        published, True
    )
    assert list(ours) == ["R1@0.3", "R1@0.5", "R1@0.7", "R5@0.3", "R5@0.5", "R5@0.7", "mIoU"]


def test_charades_raw_gt_gives_the_unclipped_numbers(charades_test, tan_preds):
    raw = load_charades_sta(charades_test, policy=GTPolicy(clip_to_duration=False)).annotations
    ours = charades_sta_metrics(raw, tan_preds)
    assert close_after_rounding(ours["R1@0.5"], 42.23) and close_after_rounding(ours["R1@0.7"], 21.80)


# --- hand-computed cases ---------------------------------------------------------------------------


def ann(qid, windows, duration=100.0, **kw) -> Annotation:
    return Annotation(qid, "v", "q", duration, tuple(map(tuple, windows)), **kw)


def pred(qid, windows, saliency=None) -> Prediction:
    return Prediction(qid, "v", "q", [list(w) for w in windows], saliency)


def test_charades_recall_and_miou_small():
    anns = [ann(0, [[0, 10]]), ann(1, [[20, 30]])]
    preds = {
        0: pred(0, [[0, 10, 1.0]]),  # IoU 1
        1: pred(1, [[0, 5, 0.9], [20, 28, 0.8]]),  # top-1 IoU 0, second 0.8
    }
    m = charades_sta_metrics(anns, preds)
    assert m["R1@0.5"] == pytest.approx(50.0) and m["R5@0.7"] == pytest.approx(100.0)
    assert m["mIoU"] == pytest.approx(50.0)


def test_missing_and_unknown_predictions():
    anns = [ann(0, [[0, 10]]), ann(1, [[20, 30]])]
    with pytest.raises(DatasetError, match="no prediction"):
        charades_sta_metrics(anns, {0: pred(0, [[0, 10, 1]])})
    m = charades_sta_metrics(anns, {0: pred(0, [[0, 10, 1]])}, allow_missing=True)
    assert m["R1@0.5"] == pytest.approx(50.0)
    with pytest.raises(DatasetError, match="not in the ground truth"):
        charades_sta_metrics(anns, {0: pred(0, []), 1: pred(1, []), 7: pred(7, [])})


@pytest.mark.parametrize(
    "preds, gts, expected",
    [
        ([[0, 10, 0.9], [0, 10, 0.8]], [[0, 10]], 1.0),  # duplicate is a FP after the only TP
        ([[20, 30, 0.9], [0, 10, 0.5]], [[0, 10]], 0.5),  # FP first: precision 1/2 at recall 1
        ([[0, 10, 0.9], [50, 60, 0.8], [20, 30, 0.7]], [[0, 10], [20, 30]], 0.5 * 1 + 0.5 * (2 / 3)),
        ([[0, 10, 0.5], [20, 30, 0.9]], [[0, 10]], 0.5),  # ranked by score, not by position
        ([], [[0, 10]], 0.0),
    ],
)
def test_detection_ap_hand_cases(preds, gts, expected):
    p = np.asarray(preds, dtype=float).reshape(-1, 3)
    assert detection_ap(p[:, :2], p[:, 2], np.asarray(gts, float), [0.5])[0] == pytest.approx(expected)


def test_detection_ap_depends_on_threshold():
    ap = detection_ap(np.array([[0.0, 8.0]]), np.array([1.0]), np.array([[0.0, 10.0]]), [0.5, 0.8, 0.85])
    assert ap.tolist() == [1.0, 1.0, 0.0]  # IoU 0.8


@pytest.mark.parametrize(
    "y_true, y_score, expected",
    [
        ([1, 0, 1, 0], [0.9, 0.8, 0.7, 0.1], (1 + 2 / 3) / 2),
        # the running max from the lowest threshold lifts the first point: 2/3, not textbook (1/2 + 2/3) / 2
        ([0, 1, 1], [0.9, 0.8, 0.7], 2 / 3),
        ([1, 0], [0.5, 0.5], 0.5),  # a tie is one threshold
        ([0, 0, 0], [0.1, 0.2, 0.3], 0.0),
        ([1, 1], [0.1, 0.2], 1.0),
    ],
)
def test_ranking_ap_hand_cases(y_true, y_score, expected):
    assert ranking_ap(np.array(y_true), np.array(y_score)) == pytest.approx(expected)


def test_highlight_hit1_and_map_small():
    # 4 clips of 2 s; annotator scores on clips 1 and 2 only.
    gt = [ann(0, [[2, 6]], duration=8.0, relevant_clip_ids=(1, 2), saliency_scores=((4, 4, 1), (2, 1, 1)))]
    m = qvhighlights_metrics(gt, {0: pred(0, [[2, 6, 1.0]], saliency=[0.0, 0.9, 0.5, 0.1])})
    assert m["HL-min-VeryGood-Hit1"] == pytest.approx(100.0)
    # VeryGood: annotators 1, 2 have clip 1 positive (ranked first: AP 1), annotator 3 none (AP 0).
    assert m["HL-min-VeryGood-mAP"] == pytest.approx(200.0 / 3)
    m = qvhighlights_metrics(gt, {0: pred(0, [[2, 6, 1.0]], saliency=[0.9, 0.0, 0.0, 0.0])})
    assert m["HL-min-Fair-Hit1"] == 0.0
    assert "HL-min-Fair-mAP" not in qvhighlights_metrics(gt, {0: pred(0, [[2, 6, 1.0]])})


def test_charades_lighthouse_jsonl_gives_the_same_numbers(shared_data, charades_test, tan_preds):
    """Lighthouse's moment_detr-style release (qid = 12404 + line index, ends clipped) scores the same."""
    from grounding_agent.benchmarks.datasets import load_dataset

    lighthouse = load_dataset(
        "charades-sta", shared_data / "charades_sta" / "lighthouse_charades_test_release.jsonl"
    )
    shifted = {
        q + 12404: Prediction(q + 12404, p.vid, p.query, p.pred_relevant_windows)
        for q, p in tan_preds.items()
    }
    ours_txt = charades_sta_metrics(load_charades_sta(charades_test).annotations, tan_preds)
    assert charades_sta_metrics(lighthouse.annotations, shifted) == pytest.approx(ours_txt, abs=1e-9)


def test_detection_ap_on_empty_gt_and_ranking_ap_with_nan_are_typed_errors():
    with pytest.raises(DatasetError, match="at least one GT window"):
        detection_ap(np.array([[0.0, 1.0]]), np.array([1.0]), np.zeros((0, 2)), (0.5,))
    with pytest.raises(DatasetError, match="finite"):
        ranking_ap(np.array([1, 0, 1]), np.array([0.2, np.nan, 0.1]))
    with pytest.raises(DatasetError, match="2 scores for 3 labels"):
        ranking_ap(np.array([1, 0, 1]), np.array([0.2, 0.1]))


def test_tacos_and_activitynet_metrics_use_their_thresholds():
    from grounding_agent.benchmarks.metrics import METRICS

    anns = [Annotation(0, "v", "q", 100.0, ((10.0, 30.0),))]
    preds = {0: Prediction(0, "v", "q", [[10.0, 60.0, 1.0]])}  # IoU 0.4
    tacos = brief(METRICS["tacos"](anns, preds), "tacos")
    assert list(tacos) == ["R1@0.1", "R1@0.3", "R1@0.5", "R5@0.1", "R5@0.3", "R5@0.5", "mIoU"]
    assert (tacos["R1@0.3"], tacos["R1@0.5"], tacos["mIoU"]) == (100.0, 0.0, pytest.approx(40.0))
    anet = brief(METRICS["activitynet-captions"](anns, preds), "activitynet-captions")
    assert (anet["R1@0.3"], anet["R1@0.5"]) == (100.0, 0.0)
