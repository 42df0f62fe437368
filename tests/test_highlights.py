"""Highlight detection: generated videos with known events (no model), windows, QVHighlights output."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest

from grounding_agent.agent.rerank_features import FusionWeights, WindowFeatures, fuse, window_features
from grounding_agent.cli import main
from grounding_agent.errors import ConfigError
from grounding_agent.highlights.windows import (
    HighlightWeights,
    WindowSearch,
    clip_scores,
    find_windows,
    generic_highlights,
    query_highlights,
    save_plot,
)
from grounding_agent.types import Curve, Moment, Prediction
from grounding_agent.utils.temporal import tiou
from tests.conftest import sidecar
from tests.test_signals import make_inserted_shot_video, make_loud_segment_video, make_motion_burst_video


def _top1(result) -> tuple[float, float]:
    start, end, _ = result.prediction.pred_relevant_windows[0]
    return start, end


# --- generic, model-free: the acceptance cases -------------------------------------------------------


def test_generic_top1_is_the_loud_segment(tmp_path):
    clip = make_loud_segment_video(tmp_path / "loud.mp4", (10.0, 16.0))
    result = generic_highlights(clip)
    assert tiou(_top1(result), (10.0, 16.0)) >= 0.5, result.prediction.pred_relevant_windows
    assert "audio" in result.weights and "clip" in result.absent


def test_generic_top1_is_the_motion_burst(tmp_path):
    clip = make_motion_burst_video(tmp_path / "burst.mp4", (12.0, 18.0))
    result = generic_highlights(clip)
    assert tiou(_top1(result), (12.0, 18.0)) >= 0.5, result.prediction.pred_relevant_windows
    assert "motion" in result.weights


def test_generic_top1_is_the_inserted_scene_and_missing_audio_is_recorded(tmp_path):
    clip = make_inserted_shot_video(tmp_path / "shot.mp4", (14.0, 18.0))
    result = generic_highlights(clip)
    assert tiou(_top1(result), (14.0, 18.0)) >= 0.5, result.prediction.pred_relevant_windows
    extra = result.prediction.extra
    assert extra["signals_absent"]["audio"] == "no audio stream"
    assert math.isclose(sum(extra["signals_used"].values()), 1.0, abs_tol=1e-5)  # renormalised without audio


def test_generic_weights_steer_the_fusion(tmp_path):
    # Loud at 4-8 s, motion burst at 20-26 s in one video: the weights decide which wins.
    clip = tmp_path / "both.mp4"
    from tests.test_signals import _encode

    video = (
        "color=c=gray:size=160x120:rate=10:duration=30[bg];testsrc2=size=160x120:rate=10:duration=30[fg];"
        "[bg][fg]overlay=enable='between(t,20,25.95)'"
    )
    audio = "sine=frequency=440:sample_rate=16000:duration=30,volume='if(between(t,4,8),1.0,0.05)':eval=frame"
    _encode(clip, video, audio, 30.0)
    loud = generic_highlights(clip, weights=HighlightWeights(audio=1, motion=0.1, scene=0.0))
    moving = generic_highlights(clip, weights=HighlightWeights(audio=0.1, motion=1, scene=0.0))
    assert tiou(_top1(loud), (4.0, 8.0)) >= 0.5 and tiou(_top1(moving), (20.0, 26.0)) >= 0.5
    assert loud.absent["scene"] == "weight 0"


def test_weights_parse_and_validate():
    assert HighlightWeights.parse("audio=2, motion=0.5") == HighlightWeights(audio=2.0, motion=0.5)
    with pytest.raises(ConfigError, match="unknown signal"):
        HighlightWeights.parse("loudness=1")
    with pytest.raises(ConfigError, match="NAME=NUMBER"):
        HighlightWeights.parse("audio=high")
    with pytest.raises(ConfigError, match=">= 0"):
        HighlightWeights(audio=-1)


# --- per-clip scores and windows -------------------------------------------------------------------


def test_clip_scores_average_each_2s_clip_and_fill_gaps():
    curve = Curve("x", np.array([0.5, 1.5, 2.5, 7.0]), np.array([1.0, 3.0, 5.0, 9.0]))
    scores = clip_scores(curve, duration_s=7.5)
    assert len(scores) == 4  # ceil(7.5 / 2)
    assert scores[0] == 2.0 and scores[1] == 5.0 and scores[3] == 9.0
    assert 5.0 < scores[2] < 9.0  # no sample in [4, 6): interpolated at 5 s


def test_find_windows_covers_each_bump_with_nms_and_diversity():
    scores = np.zeros(30)
    scores[3:7] = 1.0  # 6-14 s
    scores[20:23] = 0.8  # 40-46 s
    search = WindowSearch(top_k=4, nms_iou=0.3, diversity=0.5)
    windows = find_windows(scores, duration_s=60.0, search=search)
    assert len(windows) == 4
    assert (windows[0].start_s, windows[0].end_s) == (6.0, 14.0) and windows[0].score == 1.0
    assert (windows[1].start_s, windows[1].end_s) == (40.0, 46.0)
    assert [w.score for w in windows] == sorted((w.score for w in windows), reverse=True)
    for i, a in enumerate(windows):
        for b in windows[i + 1 :]:
            assert tiou((a.start_s, a.end_s), (b.start_s, b.end_s)) <= 0.3


def test_window_search_validates():
    with pytest.raises(ConfigError):
        WindowSearch(top_k=0)
    with pytest.raises(ConfigError):
        WindowSearch(nms_iou=1.5)


# --- rerank features --------------------------------------------------------------------------------


def test_window_features_and_fusion():
    times = np.arange(0.0, 20.0, 1.0)
    values = np.where((times >= 5) & (times <= 8), 0.3, 0.2)
    values[7] = 0.35
    curve = Curve("clip", times, values)
    f = window_features(curve, Moment(5.0, 8.0))
    assert f.frames_in == 4 and f.peak_time_s == 7.0 and f.contrast > 1.5  # z-units
    raw = window_features(curve, Moment(5.0, 8.0), normalize=False)
    assert raw.mean_in == pytest.approx(0.3125) and raw.mean_out == pytest.approx(0.2)
    between = window_features(curve, Moment(10.2, 10.6))  # shorter than the sampling step
    assert between.frames_in == 0 and between.peak_time_s == pytest.approx(10.4)
    neutral = WindowFeatures(0.0, 0.0, 0.0, 0.0, 0.0, 1)
    assert fuse(0.8, neutral, FusionWeights(confidence=1, mean=1, contrast=0, peak=0)) == pytest.approx(0.65)
    assert fuse(0.5, f) > fuse(0.5, window_features(curve, Moment(12.0, 15.0)))
    with pytest.raises(ConfigError):
        FusionWeights(confidence=0, mean=0, contrast=0, peak=0)


# --- with a (tiny, random-weight) CLIP model: QVHighlights output that eval scores ------------------


def _qvh_gt_row(qid: int, clip_path, query: str, window_s: tuple[float, float], duration_s: float) -> dict:
    """A QVHighlights-format GT row for one of the shared clips (its Charades-STA window; every clip in it
    annotated 'very good' by three annotators, so the highlight metrics have positives to rank)."""
    ids = list(range(int(window_s[0] // 2), int(math.ceil(window_s[1] / 2))))
    return {
        "qid": qid,
        "vid": clip_path.stem,
        "query": query,
        "duration": duration_s,
        "relevant_windows": [list(window_s)],
        "relevant_clip_ids": ids,
        "saliency_scores": [[4, 4, 4]] * len(ids),
    }


@pytest.mark.integration
@pytest.mark.slow
def test_highlights_on_the_shared_clips_are_scored_by_eval(real_clips, tiny_models, tmp_path, capsys):
    from grounding_agent.highlights.clip import ClipSaliency

    sal = ClipSaliency.from_pretrained(tiny_models["clip"], cache_dir=tmp_path / "emb")
    gt_rows, preds = [], []
    for qid, name in enumerate(["univtg_charades_Y1HGC.mp4", "timer1_charades_OHOFG.mp4"]):
        clip = real_clips[name]
        q = sidecar(clip)["queries"][0]
        result = query_highlights(sal, clip, q["query"], qid=qid)
        pred = result.prediction
        n_clips = math.ceil(result.duration_s / 2)
        assert len(pred.pred_saliency_scores) == n_clips
        assert all(0 <= s <= e <= result.duration_s + 1e-6 for s, e, _ in pred.pred_relevant_windows)
        preds.append(Prediction.from_dict(json.loads(json.dumps(pred.to_dict()))).to_dict())
        gt_rows.append(_qvh_gt_row(qid, clip, q["query"], tuple(q["gt_window_s"]), result.duration_s))
    generic = generic_highlights(real_clips["timer1_charades_OHOFG.mp4"], saliency=sal, qid=2)
    assert {"clip", "motion", "audio"} <= set(generic.weights)  # the real clip has sound and motion
    preds.append(generic.prediction.to_dict())
    gt_rows.append(
        _qvh_gt_row(2, real_clips["timer1_charades_OHOFG.mp4"], "", (22.3, 33.0), generic.duration_s)
    )
    gt_path, pred_path = tmp_path / "gt.jsonl", tmp_path / "pred.jsonl"
    gt_path.write_text("".join(json.dumps(r) + "\n" for r in gt_rows))
    pred_path.write_text("".join(json.dumps(r) + "\n" for r in preds))

    rc = main(
        [
            "eval",
            "score",
            "--dataset",
            "qvhighlights",
            "--gt",
            str(gt_path),
            "--pred",
            str(pred_path),
            "--json",
        ]
    )
    metrics = json.loads(capsys.readouterr().out)
    assert rc == 0
    # The same files with the GT itself as the prediction score 100: the scoring reads our output's
    # shape, and the real prediction can be no better than that.
    oracle = [
        {**p, "pred_relevant_windows": [[*g["relevant_windows"][0], 1.0]],
         "pred_saliency_scores": [1.0 if i in g["relevant_clip_ids"] else 0.0 for i in range(len(p["pred_saliency_scores"]))]}
        for p, g in zip(preds, gt_rows)
    ]  # fmt: skip
    oracle_path = tmp_path / "oracle.jsonl"
    oracle_path.write_text("".join(json.dumps(r) + "\n" for r in oracle))
    assert (
        main(
            [
                "eval",
                "score",
                "--dataset",
                "qvhighlights",
                "--gt",
                str(gt_path),
                "--pred",
                str(oracle_path),
                "--json",
            ]
        )
        == 0
    )
    best = json.loads(capsys.readouterr().out)
    for key in ("MR-full-R1@0.5", "MR-full-mAP", "HL-min-VeryGood-mAP", "HL-min-VeryGood-Hit1"):
        assert best[key] == pytest.approx(100.0)
        assert 0.0 <= metrics[key] <= best[key]

    png = save_plot(generic, tmp_path / "generic.png")
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
