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
    [
        {},
        [],
        "x",
        {"qid": 1, "pred_relevant_windows": [[1, 2]]},
        {"qid": 1, "pred_relevant_windows": [["a", 2, 3]]},
        {"qid": 1, "pred_relevant_windows": [[0, float("nan"), 1]]},
        {"qid": 1, "pred_relevant_windows": 5},
    ],
)
def test_prediction_from_a_malformed_dict_is_a_typed_error(bad):
    with pytest.raises(ConfigError):
        Prediction.from_dict(bad)


# --- schemas/answer.schema.json is held to `conversation.answers.Answer` ------------------------------


def _populated_answer():
    from grounding_agent.conversation.answers import Answer
    from grounding_agent.types import Evidence

    moment = Moment(1.0, 2.5, 0.8, {"relation": "after", "anchor_s": (np.float32(0.5), 1.0)})
    evidence = [
        Evidence("grounder", 1.0, 2.5, 0.8, "1.00 - 2.50 seconds", "vllm:m"),
        Evidence("reference", 0.0, 1.0),
    ]
    reference = {"kind": "after", "phrase": "after that", "turn": 1, "previous": [0.0, 1.0]}
    return Answer("He sits down.", [moment], evidence, Plan.single("q"), "vlm:m", (1.0, 6.0), reference)


def test_answer_schema_and_the_dataclass_have_the_same_fields():
    """The schema is checked against the code: a field added to `Answer` (or its parts) without the schema,
    or the other way round, fails here; a populated answer validates."""
    import dataclasses
    import typing
    from pathlib import Path

    import jsonschema

    from grounding_agent.conversation.answers import Answer
    from grounding_agent.types import Evidence, EvidenceKind

    schema = json.loads((Path(__file__).parents[1] / "schemas" / "answer.schema.json").read_text())
    answer = _populated_answer()
    out = json.loads(json.dumps(answer.to_dict()))  # plain JSON, numpy values included
    jsonschema.validate(out, schema)
    props = schema["properties"]
    assert set(props) == set(out) == {f.name for f in dataclasses.fields(Answer)}
    assert set(schema["required"]) <= set(out)
    assert set(props["moments"]["items"]["properties"]) == set(out["moments"][0])
    assert set(props["evidence"]["items"]["properties"]) == {f.name for f in dataclasses.fields(Evidence)}
    assert set(props["evidence"]["items"]["properties"]) == set(out["evidence"][0])
    assert set(props["evidence"]["items"]["properties"]["kind"]["enum"]) == set(typing.get_args(EvidenceKind))
    assert set(props["reference"]["properties"]) == set(out["reference"])
    # A reply that breaks the schema is refused (the check is not vacuous).
    with pytest.raises(jsonschema.ValidationError):
        jsonschema.validate({**out, "moments": [{"start_s": -1, "end_s": 1, "score": 1}]}, schema)
