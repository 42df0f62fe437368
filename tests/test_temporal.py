"""Temporal IoU and NMS, checked against direct definitions."""

import numpy as np
from hypothesis import given
from hypothesis import strategies as st

from grounding_agent.types import Moment
from grounding_agent.utils.temporal import nms, tiou, tiou_matrix


def test_tiou_known_values():
    assert tiou((0, 10), (5, 15)) == 5 / 15
    assert tiou((0, 10), (0, 10)) == 1.0
    assert tiou((0, 1), (2, 3)) == 0.0
    assert tiou((2, 2), (2, 2)) == 0.0  # zero extent: no overlap to speak of


spans = st.tuples(st.floats(0, 100), st.floats(0, 100)).map(lambda t: (min(t), max(t)))


@given(st.lists(spans, min_size=1, max_size=6), st.lists(spans, min_size=1, max_size=6))
def test_tiou_matrix_matches_pairwise(pred, gt):
    m = tiou_matrix(np.array(pred), np.array(gt))
    expected = np.array([[tiou(p, g) for g in gt] for p in pred])
    np.testing.assert_allclose(m, expected, atol=1e-12)
    assert ((m >= 0) & (m <= 1 + 1e-12)).all()


def test_nms_keeps_best_and_drops_overlaps():
    ms = [Moment(0, 10, 0.9), Moment(1, 10, 0.8), Moment(20, 30, 0.5), Moment(0, 9, 0.95)]
    kept = nms(ms, iou_threshold=0.5)
    assert [(m.start_s, m.end_s) for m in kept] == [(0, 9), (20, 30)]
    assert nms(ms, iou_threshold=0.5, max_keep=1) == [Moment(0, 9, 0.95)]


@given(st.lists(st.tuples(spans, st.floats(0, 1)), max_size=12), st.floats(0.1, 0.9))
def test_nms_output_is_pairwise_below_threshold_and_sorted(items, thr):
    ms = [Moment(s, e, c) for (s, e), c in items]
    kept = nms(ms, iou_threshold=thr)
    scores = [m.score for m in kept]
    assert scores == sorted(scores, reverse=True)
    for i, a in enumerate(kept):
        for b in kept[i + 1 :]:
            assert tiou((a.start_s, a.end_s), (b.start_s, b.end_s)) <= thr
    # every dropped moment overlaps some kept one that scores at least as well
    for m in ms:
        if m not in kept:
            assert any(
                tiou((m.start_s, m.end_s), (k.start_s, k.end_s)) > thr and k.score >= m.score for k in kept
            )
