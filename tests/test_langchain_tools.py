"""The Session as LangChain tools, and the ready chat agent (`langchain.agents.create_agent`) driving them.

The chat model is a scripted test double (it decides which tools to call); the tools run the real Session.
"""

from __future__ import annotations

import json

import pytest
from langchain_core.language_models.fake_chat_models import GenericFakeChatModel
from langchain_core.messages import AIMessage, SystemMessage, ToolMessage

from grounding_agent import Session
from grounding_agent.agent.tool import session_tools
from grounding_agent.conversation.chat_agent import build_chat_agent, reply
from grounding_agent.errors import ConfigError


class ToolCallingScriptForTests(GenericFakeChatModel):
    """Test double for the served chat model: replays scripted tool calls / answers, records what it saw."""

    bound: list = []
    seen: list = []

    def bind_tools(self, tools, **kwargs):
        self.bound.extend(getattr(t, "name", t) for t in tools)
        return self

    def _generate(self, messages, stop=None, run_manager=None, **kwargs):
        self.seen.append(list(messages))
        return super()._generate(messages, stop=stop, run_manager=run_manager, **kwargs)


def call(name: str, args: dict, call_id: str) -> AIMessage:
    return AIMessage(content="", tool_calls=[{"name": name, "args": args, "id": call_id}])


@pytest.fixture()
def session(real_clips) -> Session:
    return Session(real_clips["timer1_charades_OHOFG.mp4"], "uniform")


def test_session_tools_run_the_session(session) -> None:
    tools = {t.name: t for t in session_tools(session)}
    assert set(tools) == {"ground_moments", "ask_video"}
    assert set(tools["ground_moments"].args) == {"query", "top_k"}
    found = tools["ground_moments"].invoke({"query": "the person opens the door", "top_k": 2})
    assert len(found["moments"]) == 2 and found["duration_s"] == pytest.approx(session.video.duration_s)
    after = tools["ask_video"].invoke({"message": "what happens after that?"})
    assert after["text"] and after["reference"]["kind"] == "after"
    assert after["moments"][0]["start_s"] >= found["moments"][0]["end_s"]  # follows the tool's own answer


def test_chat_agent_calls_the_tools_and_answers(session) -> None:
    model = ToolCallingScriptForTests(
        messages=iter([
            call("ground_moments", {"query": "the person opens the door"}, "c1"),
            call("ask_video", {"message": "what does he do right after that?"}, "c2"),
            AIMessage(content="scripted final answer"),
        ]),
        bound=[], seen=[],
    )  # fmt: skip
    agent = build_chat_agent(session, model)
    assert (
        reply(agent, "When does he open the door, and what does he do right after?")
        == "scripted final answer"
    )
    assert set(model.bound) == {"ground_moments", "ask_video"}
    system = model.seen[0][0]
    assert isinstance(system, SystemMessage) and "35.1 seconds" in system.content
    # The tool results the model was shown are the session's real answers.
    tool_messages = [m for m in model.seen[-1] if isinstance(m, ToolMessage)]
    grounded, followed = (json.loads(m.content) for m in tool_messages)
    assert grounded["moments"][0] == {"start_s": 0.0, "end_s": pytest.approx(7.0283), "score": 1.0}
    assert followed["moments"][0]["start_s"] >= grounded["moments"][0]["end_s"]
    assert followed["window_s"][1] <= grounded["moments"][0]["end_s"] + session.follow_s + 1e-9
    assert [t.message for t in session.turns] == [
        "the person opens the door",
        "what does he do right after that?",
    ]


def test_chat_agent_needs_a_model(session) -> None:
    with pytest.raises(ConfigError):
        build_chat_agent(session)
    agent = build_chat_agent(
        session, server="http://127.0.0.1:9/v1", model="served-name"
    )  # built, never called
    assert "tools" in agent.get_graph().nodes
