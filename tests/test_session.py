"""Session: frames decoded once, follow-ups cut the search window (checked from outside), text answers,
top_k honoured, no moment shorter than one sampled frame interval, one Prediction shape."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import jsonschema
import numpy as np
import pytest

import grounding_agent
from grounding_agent import Answer, Moment, Session, ground, open_video
from grounding_agent.conversation.describe import TEMPLATE_PREFIX
from grounding_agent.conversation.followups import find_reference, read_message
from grounding_agent.errors import ConfigError, VideoNotFoundError
from grounding_agent.grounders.baselines import UniformGrounder
from tests.agent_doubles import ScriptedGrounderForTests

REPO = Path(__file__).resolve().parents[1]
ANSWER_SCHEMA = json.loads((REPO / "schemas" / "answer.schema.json").read_text())
PREDICTION_SCHEMA = json.loads((REPO / "schemas" / "prediction.schema.json").read_text())
CLIP = "timer1_charades_OHOFG.mp4"


@pytest.fixture()
def clip(real_clips) -> Path:
    return real_clips[CLIP]


# --- reading messages ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("message", "kind", "immediate", "event"),
    [
        ("what happens after that?", "after", False, ""),
        ("And right after that?", "after", True, ""),
        ("what happens next?", "after", True, ""),
        ("before that, when does he pick up a cup?", "before", False, "he pick up a cup"),
        ("does he do it again?", "again", False, ""),
        ("the second time he opens the door", "again", False, "he opens the door"),
        ("when does he sit down after that?", "after", False, "he sit down"),
    ],
)
def test_references_are_read(message, kind, immediate, event) -> None:
    reading = read_message(message)
    assert reading.intent == "follow"
    assert (reading.reference.kind, reading.reference.immediate, reading.event) == (kind, immediate, event)


@pytest.mark.parametrize(
    ("message", "intent", "event"),
    [
        ("when does the person open the door?", "ground", "the person open the door"),
        ("the person opens the door", "ground", "the person opens the door"),
        ("what does he do after opening the fridge?", "around", "opening the fridge"),
        ("what is the person holding?", "describe", ""),
    ],
)
def test_fresh_messages_are_read(message, intent, event) -> None:
    reading = read_message(message)
    assert (reading.intent, reading.event) == (intent, event)
    assert find_reference(message)[0] is None


# --- the public API --------------------------------------------------------------------------------


def test_public_api_is_one_import_and_light() -> None:
    for name in (
        "Session",
        "Answer",
        "ground",
        "open_video",
        "Video",
        "Frames",
        "Moment",
        "Plan",
        "Prediction",
        "Evidence",
    ):
        assert name in grounding_agent.__all__ and hasattr(grounding_agent, name)
    code = "import sys, grounding_agent; print(sorted(m for m in ('torch','transformers','openai','decord','langchain','langgraph','fastapi') if m in sys.modules))"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True, cwd=REPO)
    assert out.stdout.strip() == "[]"


def test_one_call_ground_and_session_ground_give_one_prediction_shape(clip) -> None:
    one = ground(str(clip), "the person opens the door", grounder="uniform", top_k=2).to_dict()
    session = Session(open_video(clip), UniformGrounder())
    two = session.ground("the person opens the door", top_k=2).to_dict()
    for out in (one, two):
        jsonschema.validate(out, PREDICTION_SCHEMA)
        assert len(out["pred_relevant_windows"]) == 2
        assert out["duration_s"] == pytest.approx(session.video.duration_s)
    assert set(one) == set(two)
    assert one["pred_relevant_windows"] == two["pred_relevant_windows"]


@pytest.mark.parametrize("top_k", [1, 3])
def test_top_k_is_honoured_on_the_agent_path(clip, top_k) -> None:
    from grounding_agent.agent import Agent

    grounder = UniformGrounder()
    session = Session(clip, grounder, agent=Agent(grounder), use_agent=True)
    out = session.ground("the person opens the door, then sits down", top_k=top_k).to_dict()
    assert len(out["pred_relevant_windows"]) == top_k
    assert out["plan"]["steps"] and len(out["plan"]["steps"]) == 2
    jsonschema.validate(out, PREDICTION_SCHEMA)


def test_no_moment_shorter_than_one_frame_interval(clip) -> None:
    video = open_video(clip)
    zero = Moment(7.72, 7.72, 0.9)  # what a grounder once returned
    grounder = ScriptedGrounderForTests({"a door opens": [zero]}, needs_pixels=True)
    session = Session(video, grounder, fps=1.0, max_frames=16)
    interval = 1.0 / session.frames.fps
    ((start, end, _),) = session.ground("a door opens").pred_relevant_windows
    assert end - start >= interval - 1e-9
    assert start <= 7.72 <= end


def test_bad_input_is_a_typed_error(clip) -> None:
    session = Session(clip, "uniform")
    with pytest.raises(ConfigError):
        session.ask("   ")
    with pytest.raises(ConfigError):
        session.ground("x", top_k=0)
    with pytest.raises(VideoNotFoundError):
        Session("no/such/video.mp4", "uniform")
    with pytest.raises(ConfigError):
        Session(clip, "no-such-backend")


# --- the conversation ------------------------------------------------------------------------------


def best(answer: Answer) -> Moment:
    assert answer.moments, answer.text
    return answer.moments[0]


def test_follow_ups_cut_the_search_window(clip) -> None:
    session = Session(clip, "uniform", top_k=2)
    first = best(session.ask("when does the person open the door?"))
    after = session.ask("what does he do after that?")
    assert all(m.start_s >= first.end_s for m in after.moments) and after.moments
    later = best(session.ask("when does he sit down after that?"))
    assert later.start_s >= best(after).end_s
    before = session.ask("before that, when does he pick up a cup?")
    assert before.moments and all(m.end_s <= later.start_s for m in before.moments)
    again = session.ask("does he do it again?")
    assert again.moments and all(m.start_s >= best(before).end_s for m in again.moments)
    assert session.turns[-1].query == "he pick up a cup"  # "again" grounds the previous event
    for turn in session.turns:
        jsonschema.validate(turn.answer.to_dict(), ANSWER_SCHEMA)


def test_right_after_looks_only_follow_s_ahead(clip) -> None:
    session = Session(clip, "uniform", follow_s=3.0)
    first = best(session.ask("when does the person open the door?"))
    nxt = session.ask("what happens next?")
    assert nxt.window_s == pytest.approx((first.end_s, first.end_s + 3.0))
    assert best(nxt).start_s >= first.end_s and best(nxt).end_s <= first.end_s + 3.0 + 1e-9


def test_pixel_grounder_is_shown_only_the_allowed_window(clip) -> None:
    script = {
        "a door opens": [Moment(2.0, 6.0, 0.9)],
        "he sits down": [Moment(3.0, 5.0, 0.9), Moment(20.0, 24.0, 0.5)],
    }
    grounder = ScriptedGrounderForTests(script, needs_pixels=True)
    session = Session(clip, grounder, fps=1.0, max_frames=32)
    session.ask("a door opens")
    answer = session.ask("after that, he sits down")
    # The moment before 6 s is outside the allowed window: the later one is returned.
    assert [(m.start_s, m.end_s) for m in answer.moments] == [(20.0, 24.0)]
    query, window = grounder.calls[-1]
    assert query == "he sits down" and window[0] == pytest.approx(6.0)
    assert [e.kind for e in answer.evidence][:2] == ["reference", "grounder"]


def test_nothing_after_the_end_of_the_video(clip) -> None:
    video = open_video(clip)
    grounder = ScriptedGrounderForTests({"the end": [Moment(video.duration_s - 2.0, video.duration_s, 1.0)]})
    session = Session(video, grounder)
    session.ask("when is the end?")
    answer = session.ask("what happens after that?")
    assert answer.moments == [] and "end of the video" in answer.text


def test_follow_up_without_an_earlier_answer_says_so(clip) -> None:
    answer = Session(clip, "uniform").ask("what happens after that?")
    assert answer.moments == [] and answer.text_source == "session" and answer.text


def test_model_free_text_is_templated_and_says_so(clip) -> None:
    session = Session(clip, "uniform")
    for message in ("when does the person open the door?", "what is the person holding?"):
        answer = session.ask(message)
        assert answer.text.startswith(TEMPLATE_PREFIX) and answer.text_source == "template"


def test_frames_are_decoded_once_per_session(clip, monkeypatch) -> None:
    import grounding_agent.media.decode as video_mod

    calls = []
    real = video_mod.sample_frames
    monkeypatch.setattr(video_mod, "sample_frames", lambda *a, **k: calls.append(k) or real(*a, **k))
    script = {"a door opens": [Moment(2.0, 6.0, 0.9)], "he sits down": [Moment(20.0, 24.0, 0.5)]}
    session = Session(clip, ScriptedGrounderForTests(script, needs_pixels=True), fps=1.0, max_frames=32)
    for message in ("a door opens", "after that, he sits down", "what happens next?", "what is he holding?"):
        session.ask(message)
    assert len(calls) == 1


def test_turns_are_bounded(clip) -> None:
    session = Session(clip, "uniform", max_turns=3)
    for i in range(10):
        session.ask("when does the person open the door?" if i % 2 == 0 else "what happens after that?")
    assert len(session.turns) == 3 and session.turns[-1].index == 10


def test_events_follow_the_answer(clip) -> None:
    session = Session(clip, "uniform")
    session.ask("when does the person open the door?")
    events: list[str] = []
    answer = session.ask("what happens after that?", on_event=lambda kind, data: events.append(kind))
    # "what happens after that?" grounds the next event: its plan and step stream like any grounding.
    assert events == ["reference", "plan", "step", "moments", "text"]
    assert answer.reference["turn"] == 1


# --- the tiny VLM writes the text -------------------------------------------------------------------


@pytest.fixture(scope="module")
def tiny_hf(tiny_models):
    from grounding_agent.grounders.hf import HFGrounder

    return HFGrounder(str(tiny_models["qwen2_5_vl"]), fps=0.5, max_frames=8, max_new_tokens=8, device="cpu")


@pytest.mark.slow
def test_tiny_hf_model_writes_the_text_from_the_describe_prompt(clip, tiny_hf) -> None:
    session = Session(clip, tiny_hf)
    assert session.describer.name == f"vlm:{tiny_hf.model_id}"
    for message in ("when does the person open the door?", "what is the person holding?"):
        answer = session.ask(message)
        assert answer.text_source == f"vlm:{tiny_hf.model_id}" and answer.text.strip()
        assert not answer.text.startswith(TEMPLATE_PREFIX)
        jsonschema.validate(answer.to_dict(), ANSWER_SCHEMA)


@pytest.mark.slow
def test_tiny_hf_model_describes_the_window_after_the_previous_answer(clip, tiny_hf) -> None:
    from grounding_agent.conversation.describe import HFDescriber
    from grounding_agent.conversation.followups import NEXT_EVENT_QUERY

    # Known moments for the grounding steps (longer than a frame interval, 4.4 s here); the text still
    # comes from the real (tiny) model.
    script = {"a door opens": [Moment(4.0, 9.0, 0.9)], NEXT_EVENT_QUERY: [Moment(11.0, 17.0, 0.6)]}
    grounder = ScriptedGrounderForTests(script, needs_pixels=True)
    session = Session(clip, grounder, describer=HFDescriber(tiny_hf), fps=0.5, max_frames=8, follow_s=6.0)
    session.ask("a door opens")
    follow = session.ask("what happens after that?")
    assert follow.text_source == f"vlm:{tiny_hf.model_id}"
    # The next event is grounded in the window after the answer: its own moment and score.
    assert follow.window_s == pytest.approx((9.0, 35.141499))
    assert (best(follow).start_s, best(follow).end_s, best(follow).score) == pytest.approx((11.0, 17.0, 0.6))


@pytest.mark.slow
def test_saliency_embeddings_are_computed_once(clip, tiny_models) -> None:
    from grounding_agent.highlights.clip import ClipSaliency

    saliency = ClipSaliency.from_pretrained(str(tiny_models["clip"]), backend="torch", use_cache=False)
    session = Session(clip, "uniform", saliency=saliency, fps=1.0, max_frames=8)
    assert session.saliency_curve() is None  # no query yet
    session.ask("when does the person open the door?")
    session.ask("what happens after that?")
    times, scores = session.saliency_curve()
    assert len(times) == len(scores) == len(session.frames) and np.all(np.isfinite(scores))
    assert saliency.stats.frames_encoded == len(session.frames)
    assert any(e.kind == "saliency" for e in session.turns[0].answer.evidence)


@pytest.mark.parametrize(
    ("name", "variables"),
    [
        ("describe", {"question": "what happens?", "start_s": 7.0, "end_s": 12.0, "duration_s": 35.1}),
        ("answer", {"question": "what is he holding?", "duration_s": 35.1}),
        ("answer_agent", {"video": "clip.mp4", "duration_s": 35.1}),
    ],
)
def test_answer_prompts_are_versioned_and_strict(name, variables) -> None:
    from grounding_agent.errors import PromptError
    from grounding_agent.utils.prompts import load_prompt

    prompt = load_prompt(name)
    assert prompt.version and prompt.description and "system" in prompt.templates
    part = "user" if "user" in prompt.templates else "system"
    text = prompt.render(part, **variables)
    assert "35.1" in text
    with pytest.raises(PromptError):
        prompt.render(part, **variables, unexpected=1)
    with pytest.raises(PromptError):
        prompt.render(part, **{k: v for k, v in list(variables.items())[1:]})
