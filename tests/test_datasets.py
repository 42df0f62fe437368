"""Dataset adapters on the real annotation files, GT policy, and prediction-file errors."""

from __future__ import annotations

import logging

import pytest

from grounding_agent.benchmarks.datasets import (
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


# --- ActivityNet Captions and TACoS, on small files written in their formats -----------------------


def test_activitynet_captions_val_json(tmp_path):
    from grounding_agent.benchmarks.datasets import load_activitynet_captions

    gt = tmp_path / "val_1.json"
    gt.write_text(
        '{"v_uqiMw7tQ1Cc": {"duration": 55.15, "timestamps": [[0.28, 55.15], [13.79, 54.32]],'
        ' "sentences": ["A weight lifting tutorial is given.", " The coach helps the guy."]},'
        ' "v_bXdq2zI1Ms0": {"duration": 73.1, "timestamps": [[0, 10.23], [50.0, 80.0], [30.0, 20.0]],'
        ' "sentences": ["Three men are standing.", "They leave.", "inverted"]}}'
    )
    ds = load_dataset("activitynet-captions", gt)
    assert ds.name == "activitynet-captions" and len(ds) == 4
    assert [(a.qid, a.vid) for a in ds.annotations] == [
        (0, "v_uqiMw7tQ1Cc"),
        (1, "v_uqiMw7tQ1Cc"),
        (2, "v_bXdq2zI1Ms0"),
        (3, "v_bXdq2zI1Ms0"),
    ]
    assert ds.annotations[1].query == "The coach helps the guy." and ds.annotations[1].duration_s == 55.15
    assert ds.annotations[3].windows_s == ((50.0, 73.1),)  # clipped to the duration
    assert ds.stats == {"clipped_end": 1, "dropped_inverted": 1}
    assert load_activitynet_captions(gt).annotations == ds.annotations


def test_tacos_common_json_times_are_frames_over_fps(tmp_path):
    gt = tmp_path / "test.json"
    gt.write_text(
        '{"s13-d21.avi": {"num_frames": 3000, "fps": 30.0, "timestamps": [[300, 900], [1500, 3300]],'
        ' "sentences": ["He takes out a cutting board.", "He washes the cucumber."]}}'
    )
    ds = load_dataset("tacos", gt)
    assert [(a.qid, a.vid, a.duration_s) for a in ds.annotations] == [
        (0, "s13-d21", 100.0),
        (1, "s13-d21", 100.0),
    ]
    assert ds.annotations[0].windows_s == ((10.0, 30.0),) and ds.annotations[1].windows_s == ((50.0, 100.0),)


# --- hostile or careless input: typed errors naming the fix ----------------------------------------


def _qvh_line(**over) -> str:
    import json

    row = {
        "qid": 1,
        "query": "q",
        "vid": "v",
        "duration": 10,
        "relevant_windows": [[0, 4]],
        "relevant_clip_ids": [0, 1],
        "saliency_scores": [[1, 2, 3], [4, 0, 1]],
    }
    row.update(over)
    return json.dumps(row) + "\n"


@pytest.mark.parametrize(
    "over, message",
    [
        ({"qid": True}, "qid must be an integer or a string"),
        ({"qid": [1]}, "qid must be an integer or a string"),
        ({"qid": {"a": 1}}, "qid must be an integer or a string"),
        ({"saliency_scores": [["1", 2, 3], [4, 0, 1]]}, "integers 0..4"),
        ({"saliency_scores": [[[1], 2, 3], [4, 0, 1]]}, "integers 0..4"),
        ({"saliency_scores": [[1, 2, 3], [4, 0]]}, "ragged"),
        ({"saliency_scores": [[float("nan"), 2, 3], [4, 0, 1]]}, "integers 0..4"),
        ({"saliency_scores": [[1, 2, 9], [4, 0, 1]]}, "integers 0..4"),
        ({"saliency_scores": [[1, 2, 3]]}, "1 saliency rows for 2"),
        ({"relevant_clip_ids": [0, 5]}, "clip id 5 is not an integer in 0..4"),
        ({"relevant_clip_ids": [0, -1]}, "clip id -1"),
        ({"relevant_windows": [[0, float("nan")]]}, "GT end is nan"),
        ({"relevant_windows": [[float("-inf"), 3]]}, "GT start is -inf"),
        ({"duration": float("inf")}, "duration is inf"),
        ({"duration": 0}, "duration must be > 0"),
        ({"relevant_windows": [0, 4]}, "relevant_windows must be"),
    ],
)
def test_qvhighlights_rejects_bad_fields(tmp_path, over, message):
    gt = tmp_path / "gt.jsonl"
    gt.write_text(_qvh_line(**over))
    with pytest.raises(DatasetError, match=message):
        load_qvhighlights(gt)


def test_duplicate_gt_qid_latin1_and_missing_files_are_named(sta, tmp_path):
    gt = tmp_path / "gt.jsonl"
    gt.write_text(_qvh_line() + _qvh_line(query="other"))
    with pytest.raises(DatasetError, match="qid 1 appears twice"):
        load_qvhighlights(gt)
    latin = tmp_path / "charades_sta_test.txt"
    latin.write_bytes("3MSZA 1 5##caf\xe9 au lait\n".encode("latin-1"))
    with pytest.raises(DatasetError, match="not UTF-8.*iconv"):
        load_charades_sta(latin, durations=sta / "Charades_v1_test.csv")
    missing = tmp_path / "nope" / "charades_sta_test.txt"
    with pytest.raises(DatasetError, match=f"{missing}: not found"):  # the GT itself, not the csv beside it
        load_dataset("charades-sta", missing)
    with pytest.raises(DatasetError, match="is a folder"):
        load_dataset("qvhighlights", tmp_path)


def test_wrong_dataset_says_which_one_it_looks_like(sta, shared_data, tmp_path):
    txt = sta / "charades_sta_test.txt"
    with pytest.raises(DatasetError, match="looks like a charades-sta file: pass --dataset charades-sta"):
        load_dataset("qvhighlights", txt)
    with pytest.raises(DatasetError, match="looks like a charades-sta file"):
        load_dataset("tacos", txt)
    qvh = shared_data / "qvhighlights" / "highlight_val_release.jsonl"
    with pytest.raises(DatasetError, match="looks like a qvhighlights file: pass --dataset qvhighlights"):
        load_dataset("activitynet-captions", qvh)
    tacos = tmp_path / "charades_sta_test.txt"
    tacos.write_text('{"s1.avi": {"num_frames": 30, "fps": 3, "timestamps": [[0, 3]], "sentences": ["x"]}}')
    with pytest.raises(DatasetError, match="looks like a tacos file"):
        load_charades_sta(tacos, durations=sta / "Charades_v1_test.csv")


@pytest.mark.parametrize(
    "line, message",
    [
        ('{"qid": true, "pred_relevant_windows": []}', "qid must be"),
        ('{"qid": 1, "pred_relevant_windows": [[0, NaN, 1]]}', "finite"),
        ('{"qid": 1, "pred_relevant_windows": [], "pred_saliency_scores": [1, NaN]}', "finite numbers"),
        ('{"qid": 1, "pred_relevant_windows": [], "pred_saliency_scores": ["1"]}', "finite numbers"),
        ('{"qid": 1, "pred_relevant_windows": [], "pred_saliency_scores": [[1]]}', "flat list"),
    ],
)
def test_load_predictions_rejects_bad_qids_and_scores(tmp_path, line, message):
    p = tmp_path / "p.jsonl"
    p.write_text(line + "\n")
    with pytest.raises(DatasetError, match=message):
        load_predictions(p)
