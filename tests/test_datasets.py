"""Dataset adapters on the real annotation files, GT policy, and prediction-file errors."""

from __future__ import annotations

import logging

import pytest

from grounding_agent.datasets import (
    GTPolicy,
    load_charades_sta,
    load_dataset,
    load_predictions,
    load_qvhighlights,
)
from grounding_agent.errors import DatasetError


@pytest.fixture(scope="module")
def sta(shared_data):
    return shared_data / "charades_sta"


def test_charades_test_qids_are_line_indices_and_ends_clipped(sta):
    ds = load_charades_sta(sta / "charades_sta_test.txt")
    assert len(ds) == 3720 and ds.stats == {"clipped_end": 562}
    first = ds.annotations[0]
    assert (first.qid, first.vid, first.query, first.windows_s) == (
        0,
        "3MSZA",
        "person turn a light on.",
        ((24.3, 30.4),),
    )
    assert [a.qid for a in ds.annotations] == list(range(3720))
    assert all(a.windows_s[0][1] <= a.duration_s for a in ds.annotations)
    raw = load_charades_sta(sta / "charades_sta_test.txt", policy=GTPolicy(clip_to_duration=False))
    assert sum(a.windows_s[0][1] > a.duration_s for a in raw.annotations) == 562


def test_charades_train_drops_inverted_lines_with_a_warning(sta, caplog):
    with caplog.at_level(logging.WARNING):
        ds = load_charades_sta(sta / "charades_sta_train.txt")
    assert len(ds) == 12404 and ds.stats["dropped_inverted"] == 4
    assert "dropped 4 inverted" in caplog.text
    with pytest.raises(DatasetError, match="inverted"):
        load_charades_sta(sta / "charades_sta_train.txt", policy=GTPolicy(drop_inverted=False))


def test_charades_errors_say_what_to_fix(sta, tmp_path):
    bad = tmp_path / "charades_sta_test.txt"
    bad.write_text("3MSZA 24.3##no end\n")
    with pytest.raises(DatasetError, match="Charades_v1_test.csv"):
        load_charades_sta(bad)  # no csv beside it
    with pytest.raises(DatasetError, match=r":1: expected 'VID start end##sentence'"):
        load_charades_sta(bad, durations=sta / "Charades_v1_test.csv")
    bad.write_text("NOVID 1 2##x\n")
    with pytest.raises(DatasetError, match="no length"):
        load_charades_sta(bad, durations=sta / "Charades_v1_test.csv")


def test_qvhighlights_val_and_test_with_gt(shared_data):
    val = load_qvhighlights(shared_data / "qvhighlights" / "highlight_val_release.jsonl")
    test = load_dataset("qvhighlights", shared_data / "qvhighlights" / "highlight_test_with_gt.jsonl")
    assert (len(val), len(test)) == (1550, 1542)
    a = val.annotations[0]
    assert (
        a.qid == 2579
        and a.duration_s == 150
        and a.windows_s
        and len(a.saliency_scores) == len(a.relevant_clip_ids)
    )
    assert all(len(s) == 3 for s in a.saliency_scores)


def test_load_predictions_rejects_torn_lines_and_duplicates(tmp_path):
    p = tmp_path / "preds.jsonl"
    p.write_text('{"qid": 0, "pred_relevant_windows": [[0, 1, 0.5]]}\n{"qid": 1, "pred_rel')
    with pytest.raises(DatasetError, match=":2: not JSON"):
        load_predictions(p)
    p.write_text('{"qid": 0, "pred_relevant_windows": []}\n{"qid": 0, "pred_relevant_windows": []}\n')
    with pytest.raises(DatasetError, match="twice"):
        load_predictions(p)
    p.write_text('{"qid": 0, "pred_relevant_windows": [[3]]}\n')
    with pytest.raises(DatasetError, match="start_s, end_s, score"):
        load_predictions(p)
    with pytest.raises(DatasetError, match="unknown dataset"):
        load_dataset("activitynet", p)


def test_gt_policy_on_a_small_file(tmp_path):
    txt = tmp_path / "charades_sta_test.txt"
    txt.write_text("AAAAA 1.0 12.0##past the end\nAAAAA 11.0 14.0##after the end\nAAAAA 5.0 2.0##inverted\n")
    (tmp_path / "Charades_v1_test.csv").write_text("id,length\nAAAAA,10.0\n")
    ds = load_charades_sta(txt)
    assert [(a.qid, a.windows_s) for a in ds.annotations] == [(0, ((1.0, 10.0),))]
    assert ds.stats == {"clipped_end": 1, "dropped_outside": 1, "dropped_inverted": 1}
    raw = load_charades_sta(txt, policy=GTPolicy(clip_to_duration=False))
    assert [a.windows_s for a in raw.annotations] == [((1.0, 12.0),), ((11.0, 14.0),)]
