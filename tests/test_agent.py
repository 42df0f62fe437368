"""The agent's wiring and logic above the model: stages, streamed steps, explanations, coarse-to-fine budget, CLI glue."""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import jsonschema
import numpy as np
import pytest

from grounding_agent.agent import Agent, AgentConfig, ExplanationWriter, LLMPlanner, Reranker
from grounding_agent.agent.coarse_to_fine import CoarseToFineGrounder, propose_windows, saliency_scorer
from grounding_agent.agent.orchestrator import STAGES
from grounding_agent.agent.planner import plan_schema
from grounding_agent.cli.options import (
    add_agent_arguments,
    build_agent,
    format_agent_output,
    run_agent,
    wants_agent,
)
from grounding_agent.errors import ConfigError
from grounding_agent.media.video import open_video
from grounding_agent.types import Curve, Frames, Moment, Video
from tests.agent_doubles import (
    CurveSaliencyForTests,
    ScriptedGrounderForTests,
    UnreachableChatModelForTests,
    scripted_chat,
)
from tests.videogen import make_video

VIDEO = Video(Path("kitchen.mp4"), duration_s=30.0, avg_fps=10.0, num_frames=300, width=64, height=48)
QUERY = "person opens the fridge, then drinks from a bottle."
SCRIPT = {
    "person opens the fridge": [Moment(20, 24, 0.9), Moment(2, 6, 0.6)],
    "person drinks from a bottle": [Moment(8, 12, 0.8), Moment(25, 29, 0.3)],
}


class SlowExplainAgentForTests(Agent):
    """The agent with its explain stage held 0.3 s (an LLM writer's time), recording the stages it runs."""

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.ran: list[str] = []
        self.explained_at = 0.0

    def __getattribute__(self, name):
        if name.endswith("_node"):
            object.__getattribute__(self, "ran").append(name.removesuffix("_node"))
        return object.__getattribute__(self, name)

    def explain_node(self, state):
        time.sleep(0.3)
        self.explained_at = time.perf_counter()
        return super().explain_node(state)


def test_stages_run_in_order_and_steps_are_heard_before_the_run_ends():
    agent = SlowExplainAgentForTests(ScriptedGrounderForTests(SCRIPT))
    heard = []
    result = agent.run(
        VIDEO, QUERY, on_step=lambda kind, value: heard.append((kind, value, time.perf_counter()))
    )
    assert agent.ran == list(STAGES) == ["plan", "ground", "compose", "rerank", "explain"]
    assert [kind for kind, _, _ in heard] == ["plan", "step", "step"]
    assert heard[0][1] == result.plan
    assert [v.step_id for _, v, _ in heard[1:]] == [s.id for s in result.plan.steps]
    assert all(v is result.steps[v.step_id] for _, v, _ in heard[1:])
    # Each was heard as soon as it existed: before the (slow) explain stage ended.
    assert all(at < agent.explained_at - 0.25 for _, _, at in heard)
    # Listening changes nothing in the result.
    plain = Agent(ScriptedGrounderForTests(SCRIPT)).run(VIDEO, QUERY).to_prediction().to_dict()
    assert result.to_prediction().to_dict() | {"timings_s": None} == plain | {"timings_s": None}


def test_compositional_query_end_to_end_with_scripted_grounder():
    grounder = ScriptedGrounderForTests(SCRIPT)
    result = Agent(grounder).run(VIDEO, QUERY)
    out = json.loads(json.dumps(result.to_prediction(qid=7).to_dict()))  # JSON-ready
    jsonschema.validate(out["plan"], plan_schema())
    assert out["qid"] == 7 and out["vid"] == "kitchen"
    best = out["pred_relevant_windows"][0]
    assert best[:2] == [2.0, 12.0]  # opens 2-6, drinks 8-12: the best *consistent* pair, span returned
    assert [s["window_s"] for s in out["steps"]] == [[0.0, 30.0], [0.0, 30.0]]
    expl = out["explanations"][0]
    assert [e["window_s"] for e in expl["sub_events"]] == [[2.0, 6.0], [8.0, 12.0]]
    assert expl["relations"] == [{"kind": "before", "a": "s1", "b": "s2", "satisfied": True}]
    assert "2.0-12.0 s" in expl["sentence"] and expl["sentence_by"] == "template"
    assert len(out["explanations"]) == len(out["pred_relevant_windows"])
    assert out["model_calls"] == {"grounder": 2}
    assert {"plan", "ground", "compose", "explain", "total"} <= set(out["timings_s"])
    for start, end, _ in out["pred_relevant_windows"]:
        assert 0 <= start <= end <= VIDEO.duration_s


def test_target_step_and_saliency_evidence():
    times = np.arange(0.0, 30.0, 1.0)
    saliency = CurveSaliencyForTests(Curve("clip", times, np.where(times >= 25, 1.0, 0.0)))
    agent = Agent(ScriptedGrounderForTests(SCRIPT), reranker=Reranker(saliency=saliency))
    result = agent.run(VIDEO, "the person drinks from a bottle after opening the fridge.")
    assert result.plan.target == "s1"
    expl = result.moments[0].explanation
    assert expl["saliency"]["peak_time_s"] >= 25 and "frames match the query best" in expl["sentence"]
    # Saliency is computed against the target step's text, not the whole query.
    assert saliency.calls[0][1] == "the person drinks from a bottle"


def test_inconsistent_candidates_are_flagged():
    script = {"person sits down": [Moment(10, 12, 0.9)], "person stands up": [Moment(0, 3, 0.8)]}
    result = Agent(ScriptedGrounderForTests(script)).run(VIDEO, "person sits down then stands up.")
    assert any("relations relaxed" in n for n in result.notes)
    assert result.moments[0].explanation["consistent"] is False
    assert "not met" in result.moments[0].explanation["sentence"]


def test_llm_plan_fallback_is_recorded_in_the_result():
    planner = LLMPlanner(scripted_chat("fridge fridge 3.2"))
    result = Agent(ScriptedGrounderForTests(SCRIPT), planner=planner).run(VIDEO, QUERY)
    assert result.plan.planner == "rule" and len(result.plan.steps) == 2
    assert any("fell back to the rule planner" in n for n in result.notes)
    assert result.model_calls["planner_llm"] == 1


def test_llm_written_explanation_and_its_fallback():
    writer = ExplanationWriter(scripted_chat(*[" The fridge opens, then a drink. "] * 9))
    result = Agent(ScriptedGrounderForTests(SCRIPT), writer=writer).run(VIDEO, QUERY)
    expl = result.moments[0].explanation
    assert expl["sentence"] == "The fridge opens, then a drink." and expl["sentence_by"] == "llm"
    assert expl["template_sentence"].startswith("The whole sequence")
    writer = ExplanationWriter(UnreachableChatModelForTests(messages=iter([])))
    expl = Agent(ScriptedGrounderForTests(SCRIPT), writer=writer).run(VIDEO, QUERY).moments[0].explanation
    assert expl["sentence_by"] == "template" and "cannot reach the explanation LLM" in expl["notes"][0]


# --- coarse-to-fine -----------------------------------------------------------------------------------


def test_propose_windows_picks_salient_non_overlapping_windows():
    times = np.arange(0.0, 600.0, 2.0)
    values = np.exp(-((times - 400.0) ** 2) / 200.0) + 0.5 * np.exp(-((times - 100.0) ** 2) / 200.0)
    windows = propose_windows(times, values, 600.0, window_s=60.0, max_windows=3)
    assert len(windows) == 3
    assert windows[0].start_s <= 400 <= windows[0].end_s and windows[1].start_s <= 100 <= windows[1].end_s
    spans = sorted((w.start_s, w.end_s) for w in windows)
    assert all(a[1] <= b[0] for a, b in zip(spans, spans[1:]))
    assert propose_windows(times, values, 50.0, window_s=60.0, max_windows=3)[0].end_s == 50.0


def fake_frames(video: Video, start_s: float, end_s: float) -> Frames:
    times = np.linspace(start_s, end_s, 4)
    return Frames(video, np.zeros((4, 2, 2, 3), np.uint8), times, np.arange(4), 1.0, 1.0, (start_s, end_s))


class WindowEchoGrounderForTests(ScriptedGrounderForTests):
    """Test double: answers the middle of whatever window it is shown, in video time, like real grounders."""

    def ground(self, video, query, *, top_k=1, frames=None):
        g = super().ground(video, query, top_k=top_k, frames=frames)
        lo, hi = frames.window_s
        g.moments = [Moment(lo + 0.4 * (hi - lo), lo + 0.6 * (hi - lo), 0.5), Moment(hi - 1, hi + 30, 0.4)]
        return g


def test_coarse_to_fine_budget_and_global_times():
    long_video = Video(Path("long.mp4"), duration_s=1200.0, avg_fps=1.0, num_frames=1200, width=64, height=48)
    inner = WindowEchoGrounderForTests({}, needs_pixels=True)

    def scorer(video, query):
        times = np.arange(0.0, 1200.0, 2.0)
        return times, np.exp(-((times - 900.0) ** 2) / 500.0)

    c2f = CoarseToFineGrounder(inner, scorer, window_s=60.0, max_calls=2, sampler=fake_frames)
    g = c2f.ground(long_video, "person opens the door", top_k=5)
    assert len(inner.calls) == 2 == g.info["vlm_calls"] == c2f.calls
    first = g.info["windows_s"][0]
    assert first[0] <= 900 <= first[1]
    assert any(first[0] < m.start_s < m.end_s < first[1] for m in g.moments)  # global time, inside its window
    for m in g.moments:
        assert any(w[0] <= m.start_s <= m.end_s <= w[1] for w in g.info["windows_s"])  # clipped to its window
    with pytest.raises(ConfigError, match="max_calls"):
        CoarseToFineGrounder(inner, scorer, max_calls=0)


def test_agent_switches_to_coarse_to_fine_on_long_videos_within_budget():
    long_video = Video(Path("long.mp4"), duration_s=1200.0, avg_fps=1.0, num_frames=1200, width=64, height=48)
    times = np.arange(0.0, 1200.0, 2.0)
    saliency = CurveSaliencyForTests(Curve("clip", times, np.sin(times / 50.0)))
    inner = WindowEchoGrounderForTests({}, needs_pixels=True)
    agent = Agent(
        inner,
        reranker=Reranker(saliency=saliency),
        # The file does not exist: windows are "sampled" by the test double, and no keyframe index is read.
        config=AgentConfig(max_vlm_calls=5, long_video_s=300, coarse_keyframe_gap_s=0),
        sampler=fake_frames,
    )
    result = agent.run(long_video, QUERY)
    assert len(inner.calls) <= 5 and result.model_calls["grounder"] == len(inner.calls) == 4  # 2 steps x 5//2
    assert any("coarse-to-fine" in n for n in result.notes)
    assert all(0 <= m.start_s <= m.end_s <= 1200 for m in result.moments)
    assert saliency.keyframes_only and not any(saliency.keyframes_only)  # turned off: sampled at coarse_fps


@pytest.mark.parametrize(("gop", "gap_s", "expected"), [(4, 10.0, True), (30, 10.0, False), (4, 0.0, False)])
def test_coarse_pass_scores_keyframes_only_when_they_are_dense(tmp_path, gop, gap_s, expected):
    """Keyframes 4 s apart are dense enough for a 10-s gap; 30 s apart (or the feature off) samples at fps."""
    path = make_video(tmp_path / f"gop{gop}.mp4", duration_s=120, fps=1, size=(64, 48), gop=gop)
    saliency = CurveSaliencyForTests(Curve("clip", np.arange(0.0, 120.0, 8.0), np.zeros(15)))
    times_s, _ = saliency_scorer(saliency, fps=0.5, keyframe_gap_s=gap_s)(open_video(path), "a query")
    assert saliency.keyframes_only == [expected] and len(times_s) == 15


# --- CLI glue -------------------------------------------------------------------------------------------


def parse(*argv: str) -> argparse.Namespace:
    p = argparse.ArgumentParser()
    p.add_argument("--server")
    p.add_argument("--model")
    p.add_argument("--top-k", type=int, default=5)
    add_agent_arguments(p)
    return p.parse_args(argv)


def test_agent_is_used_for_compositional_queries_by_default():
    assert wants_agent(parse(), QUERY) is True
    assert wants_agent(parse(), "person sitting down in a chair.") is False
    assert wants_agent(parse("--agent"), "person sitting down in a chair.") is True
    assert wants_agent(parse("--no-agent"), QUERY) is False


def test_llm_features_need_a_server():
    with pytest.raises(ConfigError, match="--verify need --server"):
        build_agent(parse("--verify"), ScriptedGrounderForTests(SCRIPT))
    with pytest.raises(ConfigError, match="--planner llm need --server URL and --planner-model"):
        build_agent(
            parse("--planner", "llm", "--server", "http://127.0.0.1:9/v1"), ScriptedGrounderForTests(SCRIPT)
        )
    args = parse()
    args.step_top_k = 0  # past the parser's own check (a caller building the namespace itself)
    with pytest.raises(ConfigError, match=">= 1"):
        build_agent(args, ScriptedGrounderForTests(SCRIPT))


def test_run_agent_output_with_and_without_explain():
    out = run_agent(parse("--explain"), ScriptedGrounderForTests(SCRIPT), VIDEO, QUERY)
    assert (
        out["explanations"][0]["sentence"]
        and out["plan"]["steps"][1]["text"] == "person drinks from a bottle"
    )
    assert "1. 2.00-12.00 s" in format_agent_output(out)
    plain = run_agent(parse(), ScriptedGrounderForTests(SCRIPT), VIDEO, QUERY)
    assert plain.keys() == out.keys()  # one shape: the explanations are only left empty
    assert plain["explanations"] == [None] * len(plain["pred_relevant_windows"])
    assert "   " not in format_agent_output(plain)


def test_rambling_llm_explanation_is_rejected():
    ramble = " ".join(["hands"] * 200)
    writer = ExplanationWriter(scripted_chat(*[ramble] * 9))
    expl = Agent(ScriptedGrounderForTests(SCRIPT), writer=writer).run(VIDEO, QUERY).moments[0].explanation
    assert expl["sentence_by"] == "template" and "rejected (200 words)" in expl["notes"][0]


def test_async_run_matches_sync_run():
    import asyncio

    agent = Agent(ScriptedGrounderForTests(SCRIPT))
    sync, async_ = agent.run(VIDEO, QUERY), asyncio.run(agent.arun(VIDEO, QUERY))
    assert [m.to_window() for m in async_.moments] == [m.to_window() for m in sync.moments]
    assert async_.plan == sync.plan


def test_langchain_tool_and_runnable(tmp_path):
    from grounding_agent.agent.tool import ground_video_runnable, ground_video_tool
    from tests.videogen import make_video

    clip = make_video(tmp_path / "kitchen.mp4", duration_s=30, fps=2, size=(32, 24))
    agent = Agent(ScriptedGrounderForTests(SCRIPT))
    tool = ground_video_tool(agent, top_n=1)
    assert tool.name == "ground_video" and set(tool.args) == {"video", "query"}
    out = tool.invoke({"video": str(clip), "query": QUERY})
    assert out["pred_relevant_windows"][0][:2] == [2.0, 12.0] and len(out["explanations"]) == 1
    out2 = ground_video_runnable(agent).invoke({"video": str(clip), "query": QUERY})
    assert out2["plan"] == out["plan"] and out2["vid"] == "kitchen"


def test_build_agent_uses_the_served_grounder_model_for_llm_features():
    grounder = ScriptedGrounderForTests(SCRIPT)
    grounder.served_model = "tiny-qwen2.5-vl"  # what a VLLMGrounder exposes: its served name
    agent = build_agent(parse("--planner", "llm", "--verify", "--server", "http://127.0.0.1:9"), grounder)
    assert isinstance(agent.planner, LLMPlanner) and agent.reranker.verifier is not None
    assert agent.planner.chat_model.model_name == "tiny-qwen2.5-vl"
    assert str(agent.planner.chat_model.openai_api_base) == "http://127.0.0.1:9/v1"


# --- one front door: paths, one Prediction shape, top_k, no sliver moments -------------------------------

PREDICTION_SCHEMA = json.loads(
    (Path(__file__).resolve().parents[1] / "schemas" / "prediction.schema.json").read_text()
)


def test_grounders_and_the_agent_take_a_path_and_give_one_prediction_shape(tmp_path):
    from grounding_agent.grounders.baselines import RandomGrounder, UniformGrounder
    from tests.videogen import make_video

    clip = make_video(tmp_path / "kitchen.mp4", duration_s=30, fps=2, size=(32, 24))
    rows = []
    for grounder in (UniformGrounder(), RandomGrounder(seed=3)):
        g = grounder.ground(str(clip), "person sits down", top_k=2)  # a path, not a Video
        assert len(g.moments) == 2 and g.duration_s == pytest.approx(30.0, abs=0.6)
        rows.append(g.to_prediction("q", "kitchen", "person sits down").to_dict())
    agent_row = Agent(ScriptedGrounderForTests(SCRIPT)).run(clip, QUERY).to_prediction("q").to_dict()
    for row in [*rows, agent_row]:
        row = json.loads(json.dumps(row))
        jsonschema.validate(row, PREDICTION_SCHEMA)
        assert row.keys() == agent_row.keys()
        assert len(row["explanations"]) == len(row["pred_relevant_windows"])
    assert rows[0]["plan"] is None and rows[0]["steps"] == [] and agent_row["plan"]["planner"] == "rule"


@pytest.mark.parametrize("top_k", [1, 2, 3])
def test_top_k_is_honoured_on_the_agent_path(top_k):
    script = {k: [Moment(float(s), float(s) + 2, 0.9 - s / 100) for s in range(0, 28, 3)] for k in SCRIPT}
    out = run_agent(parse("--top-k", str(top_k)), ScriptedGrounderForTests(script), VIDEO, QUERY)
    assert len(out["pred_relevant_windows"]) == top_k
    result = Agent(ScriptedGrounderForTests(script)).run(VIDEO, QUERY, top_k=top_k)
    assert len(result.moments) == top_k


@pytest.mark.parametrize("top_k", [0, -3, 1.5, True])
def test_a_bad_top_k_is_a_typed_error_everywhere(top_k):
    from grounding_agent.grounders.baselines import UniformGrounder

    with pytest.raises(ConfigError, match="top_k must be a whole number"):
        UniformGrounder().ground(VIDEO, "q", top_k=top_k)
    with pytest.raises(ConfigError, match="top_k must be a whole number"):
        Agent(ScriptedGrounderForTests(SCRIPT)).run(VIDEO, QUERY, top_k=top_k)


def test_no_moment_shorter_than_one_frame_interval():
    # The grounder answers a single instant (7.72-7.72 s) and a sliver; frames are sampled every 0.5 s.
    script = {
        "person opens the fridge": [Moment(7.72, 7.72, 0.9)],
        "person drinks from a bottle": [Moment(20.0, 20.1, 0.8)],
    }
    grounder = ScriptedGrounderForTests(script, needs_pixels=True)
    frames = fake_frames(VIDEO, 0.0, 30.0)  # 4 frames over 30 s: one every 10 s, fps 1.0 stated
    result = Agent(grounder, config=AgentConfig(use_windows=False)).run(VIDEO, QUERY, frames=frames)
    for step in result.steps.values():
        assert all(m.length_s >= 1.0 - 1e-9 for m in step.candidates)  # 1 / frames.fps
    opened = result.steps["s1"].candidates[0]
    assert opened.start_s == pytest.approx(7.22) and opened.end_s == pytest.approx(8.22)  # about the instant
    assert all(m.length_s >= 1.0 - 1e-9 for m in result.moments)


def test_frame_exact_grounder_answers_are_widened_inside_the_video():
    from grounding_agent.grounders.base import at_least

    assert at_least(Moment(7.72, 7.72, 0.5), 0.5, 30.0).to_window() == [7.47, 7.97, 0.5]
    assert at_least(Moment(0.0, 0.0), 0.5, 30.0).to_window()[:2] == [0.0, 0.5]  # kept inside the video
    assert at_least(Moment(29.9, 30.0), 0.5, 30.0).to_window()[:2] == [29.5, 30.0]
    assert at_least(Moment(1.0, 4.0), 0.5, 30.0) == Moment(1.0, 4.0)
    assert at_least(Moment(0.1, 0.1), 5.0, 2.0).to_window()[:2] == [
        0.0,
        2.0,
    ]  # a video shorter than a frame step


def test_agent_answers_carry_typed_evidence():
    times = np.arange(0.0, 30.0, 1.0)
    saliency = CurveSaliencyForTests(Curve("clip", times, np.where(times >= 25, 1.0, 0.0)))
    result = Agent(ScriptedGrounderForTests(SCRIPT), reranker=Reranker(saliency=saliency)).run(VIDEO, QUERY)
    best = result.answers[0]
    kinds = [e.kind for e in best.evidence()]
    assert kinds == ["composition", "composition", "grounder", "saliency"]
    assert [e.source for e in best.evidence()[:2]] == ["s1", "s2"]
    chosen = best.composition.chosen
    assert chosen["s1"].end_s <= chosen["s2"].start_s + 1.0 and best.reranked.saliency is not None
    assert result.evidence()[: len(kinds)] == best.evidence()
