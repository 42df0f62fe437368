"""The agent end to end with real models: tiny random-weight Qwen-VL / CLIP, the live vLLM CPU server, real clips.

The tiny models' answers are garbage by construction; these tests check what the agent guarantees
regardless: a schema-valid plan (the LLM planner's garbage falls back to the rule planner), every
sub-event's window, a composed moment inside the video, explanations, VLM-call budgets, video time.
"""

from __future__ import annotations

import json

import jsonschema
import pytest

from grounding_agent.agent import (
    Agent,
    AgentConfig,
    ExplanationWriter,
    LLMPlanner,
    Reranker,
    RulePlanner,
    VLMVerifier,
)
from grounding_agent.agent.llm import chat_model
from grounding_agent.agent.planner import plan_schema
from grounding_agent.agent.tool import ground_video_tool
from grounding_agent.grounders.base import Grounding
from grounding_agent.media.video import open_video
from tests.videogen import make_video

pytestmark = [pytest.mark.integration, pytest.mark.slow]

CLIP = "univtg_charades_Y1HGC.mp4"
TWO_STEP = "a person walks in a doorway, then drinks some coffee."


@pytest.fixture(scope="module")
def saliency(tiny_models, tmp_path_factory):
    from grounding_agent.highlights.clip import ClipSaliency

    return ClipSaliency.from_pretrained(
        str(tiny_models["clip"]), cache_dir=tmp_path_factory.mktemp("embeddings")
    )


def check_two_step_output(out: dict, duration_s: float) -> None:
    jsonschema.validate(out["plan"], plan_schema())
    assert [s["id"] for s in out["plan"]["steps"]] == ["s1", "s2"]
    assert out["plan"]["relations"] == [{"kind": "before", "a": "s1", "b": "s2"}]
    for step in out["steps"]:
        lo, hi = step["window_s"]
        assert 0 <= lo < hi <= duration_s + 1e-6 and step["candidates"]
    assert out["pred_relevant_windows"]
    for start, end, _ in out["pred_relevant_windows"]:
        assert 0 <= start <= end <= duration_s + 1e-6
    expl = out["explanations"][0]
    assert len(expl["sub_events"]) == 2
    for event in expl["sub_events"]:
        assert 0 <= event["window_s"][0] <= event["window_s"][1] <= duration_s + 0.01
    assert expl["sentence"] and expl["saliency"] is not None


def test_two_step_query_live_vllm_server(vllm_server, real_clips, saliency):
    """Acceptance: served tiny VLM grounds, plans (garbage -> rule fallback) and verifies; CLIP reranks."""
    from grounding_agent.grounders.vllm import VLLMGrounder

    grounder = VLLMGrounder(vllm_server.base_url, vllm_server.model, fps=1.0, max_frames=8)
    chat = chat_model(vllm_server.base_url, vllm_server.model, max_tokens=128)
    agent = Agent(
        grounder,
        planner=LLMPlanner(chat),
        reranker=Reranker(saliency=saliency, verifier=VLMVerifier(chat, num_frames=2), max_verify=2),
        writer=ExplanationWriter(chat),
    )
    video = open_video(real_clips[CLIP])
    out = json.loads(json.dumps(agent.run(video, TWO_STEP).to_prediction().to_dict()))
    check_two_step_output(out, video.duration_s)
    # The tiny model cannot write a valid plan: the fallback is recorded, the plan is the rule planner's.
    assert out["plan"]["planner"] == "rule"
    assert any("fell back to the rule planner" in n for n in out["plan"]["notes"])
    expl = out["explanations"][0]
    assert 0.0 <= expl["verifier"]["p_yes"] <= 1.0 and expl["verifier"]["frames_s"]
    assert out["model_calls"]["grounder"] == 2 and 1 <= out["model_calls"]["verifier"] <= 2


def check_llm_consulted(plan: dict, query: str) -> None:
    """The served model was asked: its plan came back, or the rule plan with the model's raw answer noted."""
    jsonschema.validate(plan, plan_schema())
    fell_back = [n for n in plan.get("notes", []) if "fell back to the rule planner" in n]
    if plan["planner"] == "llm":
        assert not fell_back
        return
    assert fell_back and any(n.startswith("llm raw output:") for n in plan["notes"])
    assert {**plan, "notes": None} == {**RulePlanner().plan(query).to_dict(), "notes": None}


def test_llm_planner_garbage_from_live_server_falls_back(vllm_server):
    """Unconstrained decoding: random weights cannot write a JSON plan, so the rule plan comes back, noted."""
    query = "after sitting down, the man reads a book."
    calls: dict[str, int] = {}
    planner = LLMPlanner(chat_model(vllm_server.base_url, vllm_server.model, max_tokens=64), structured=False)
    plan = planner.plan(query, calls=calls).to_dict()
    assert calls == {"planner_llm": 1} and plan["planner"] == "rule"
    check_llm_consulted(plan, query)
    # Structured decoding: the server constrains the answer to the schema; either way the plan is valid.
    calls = {}
    plan = LLMPlanner(chat_model(vllm_server.base_url, vllm_server.model, max_tokens=64)).plan(
        query, calls=calls
    )
    assert calls["planner_llm"] >= 1
    check_llm_consulted(plan.to_dict(), query)


def test_two_step_query_in_process_hf_and_tool(tiny_models, real_clips, saliency):
    """The same with the in-process HF grounder, through the LangChain tool interface."""
    from grounding_agent.grounders.hf import HFGrounder

    grounder = HFGrounder(str(tiny_models["qwen2_5_vl"]), fps=1.0, max_frames=8, device="cpu")
    tool = ground_video_tool(Agent(grounder, reranker=Reranker(saliency=saliency)))
    out = tool.invoke({"video": str(real_clips[CLIP]), "query": TWO_STEP})
    check_two_step_output(out, open_video(real_clips[CLIP]).duration_s)


class CallCounterForTests:
    """Wraps a real grounder and counts its calls (and the windows it was shown)."""

    def __init__(self, grounder):
        self.grounder, self.name = grounder, grounder.name
        self.needs_pixels, self.fps, self.max_frames = True, grounder.fps, grounder.max_frames
        self.windows: list[tuple[float, float]] = []

    def ground(self, video, query, *, top_k=1, frames=None) -> Grounding:
        self.windows.append(frames.window_s)
        return self.grounder.ground(video, query, top_k=top_k, frames=frames)


def test_long_video_budget_and_global_times(tmp_path, tiny_models, saliency):
    """A generated 20-minute video: coarse CLIP saliency picks windows, the VLM grounds inside them only."""
    from grounding_agent.grounders.hf import HFGrounder

    path = make_video(tmp_path / "twenty_minutes.mp4", duration_s=1200, fps=1, size=(64, 48), gop=30)
    video = open_video(path)
    counter = CallCounterForTests(
        HFGrounder(str(tiny_models["qwen2_5_vl"]), fps=0.5, max_frames=4, device="cpu")
    )
    budget = 4
    agent = Agent(
        counter,
        reranker=Reranker(saliency=saliency, saliency_fps=0.1),  # same fps as the coarse pass: one embedding
        config=AgentConfig(top_k=1, max_vlm_calls=budget, long_video_s=300.0, coarse_fps=0.1),
    )
    result = agent.run(video, "person opens the door then walks in.")
    assert len(counter.windows) <= budget and result.model_calls["grounder"] == len(counter.windows)
    assert all(hi - lo <= 60.0 + 1e-6 for lo, hi in counter.windows)  # never the whole video at once
    assert any(lo >= 60.0 for lo, _ in counter.windows)
    for step in result.steps.values():
        windows = step.grounding.info["windows_s"]
        for m in step.candidates:  # candidates are in video time, inside the window they came from
            assert any(w[0] - 1e-6 <= m.start_s <= m.end_s <= w[1] + 1e-6 for w in windows)
    assert any(m.start_s >= 60.0 for step in result.steps.values() for m in step.candidates)
    for m in result.moments:
        assert 0 <= m.start_s <= m.end_s <= video.duration_s


def test_plan_cli_with_live_llm(vllm_server, capsys):
    """`grounding-agent plan QUERY --server URL --model NAME --json` plans with the served model (or falls back)."""
    import argparse

    from grounding_agent.cli import plan as plan_cli

    parser = argparse.ArgumentParser()
    plan_cli.add_arguments(parser)
    args = parser.parse_args(
        [
            "person opens the door then walks in.",
            "--json",
            "--server",
            vllm_server.base_url,
            "--model",
            vllm_server.model,
        ]
    )
    assert plan_cli.run(args) == 0
    check_llm_consulted(json.loads(capsys.readouterr().out), "person opens the door then walks in.")
