"""Core types: validation, round trips, and the QVHighlights shape."""

import json

import numpy as np
import pytest

from grounding_agent.errors import ConfigError
from grounding_agent.types import Frames, Moment, Plan, Prediction, Relation, Step, Video


def _video(duration_s=10.0):
    return Video(path="x.mp4", duration_s=duration_s, avg_fps=25.0, num_frames=250, width=64, height=48)


@pytest.mark.parametrize("start,end", [(-0.1, 1.0), (2.0, 1.0), (float("nan"), 1.0), (0.0, float("inf"))])
def test_moment_rejects_invalid_spans(start, end):
    with pytest.raises(ConfigError):
        Moment(start, end)


def test_moment_check_within_duration():
    assert Moment(1.0, 10.0).check_within(10.0).end_s == 10.0
    with pytest.raises(ConfigError, match="ends after the video"):
        Moment(1.0, 10.5).check_within(10.0)


def test_moment_shift_maps_window_time_to_video_time():
    m = Moment(1.0, 2.5, 0.7).shifted(60.0)
    assert (m.start_s, m.end_s, m.score) == (61.0, 62.5, 0.7)


def test_frames_require_increasing_timestamps_and_matching_lengths():
    px = np.zeros((3, 4, 4, 3), np.uint8)
    with pytest.raises(ValueError, match="strictly increasing"):
        Frames(_video(), px, np.array([0.0, 1.0, 1.0]), np.arange(3), 1.0, 1.0, (0.0, 10.0))
    with pytest.raises(ValueError, match="disagree"):
        Frames(_video(), px, np.array([0.0, 1.0]), np.arange(2), 1.0, 1.0, (0.0, 10.0))
    f = Frames(_video(), px, np.array([0.0, 1.0, 2.0]), np.arange(3), 1.0, 1.0, (0.0, 10.0))
    sub = f.subset(np.array([0, 2]))
    assert len(sub) == 2 and sub.timestamps_s.tolist() == [0.0, 2.0]


def test_prediction_is_ranked_and_round_trips_as_qvhighlights_json():
    moments = [Moment(0.0, 2.0, 0.1), Moment(3.0, 5.0, 0.9)]
    pred = Prediction.from_moments(7, "vidA", "a query", moments, plan={"steps": []})
    data = json.loads(json.dumps(pred.to_dict()))
    assert data["pred_relevant_windows"][0] == [3.0, 5.0, 0.9]
    assert data["plan"] == {"steps": []}
    back = Prediction.from_dict(data)
    assert back.moments()[0] == Moment(3.0, 5.0, 0.9)
    assert back.extra == {"plan": {"steps": []}}


def test_plan_validates_ids_relations_and_target():
    steps = (Step("s1", "open the door"), Step("s2", "walk in"))
    plan = Plan("q", steps, (Relation("before", "s1", "s2"),), target="span")
    assert Plan.from_dict(plan.to_dict()) == plan
    with pytest.raises(ConfigError):
        Plan("q", steps, (Relation("before", "s1", "s3"),))
    with pytest.raises(ConfigError):
        Plan("q", steps, target="s9")
    with pytest.raises(ConfigError):
        Plan("q", (Step("s1", "a"), Step("s1", "b")))
    assert Plan.single("q").target == "s1"


@pytest.mark.parametrize(
    "bad",
    [{}, [], "x", {"qid": 1, "pred_relevant_windows": [[1, 2]]}, {"qid": 1, "pred_relevant_windows": [["a", 2, 3]]},
     {"qid": 1, "pred_relevant_windows": [[0, float("nan"), 1]]}, {"qid": 1, "pred_relevant_windows": 5}],
)
def test_prediction_from_a_malformed_dict_is_a_typed_error(bad):
    with pytest.raises(ConfigError):
        Prediction.from_dict(bad)
