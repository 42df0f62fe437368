"""A ready chat agent over one `Session`, built with LangChain's agent API (`langchain.agents.create_agent`).

    from grounding_agent import Session
    from grounding_agent.conversation.chat_agent import build_chat_agent, reply
    session = Session("clip.mp4", grounder="vllm", server="http://127.0.0.1:8000/v1")
    agent = build_chat_agent(session, server="http://127.0.0.1:8000/v1", model="Qwen/Qwen2.5-VL-7B-Instruct")
    print(reply(agent, "when does he open the fridge, and what does he do after that?"))

The model is any tool-calling LangChain chat model; by default the served VLM through vLLM's OpenAI API
(`ChatOpenAI`; the server needs `--enable-auto-tool-choice --tool-call-parser hermes` for tool calls).
Its tools are `agent.tool.session_tools(session)`; the system prompt is `prompts/answer_agent.yaml`.
"""

from __future__ import annotations

from typing import Any

from grounding_agent.errors import ConfigError
from grounding_agent.utils.prompts import load_prompt


def build_chat_agent(
    session: Any,
    chat_model: Any = None,
    *,
    server: str | None = None,
    model: str | None = None,
    extra_tools: list[Any] | None = None,
    checkpointer: Any = None,
):
    """A compiled LangChain agent (a LangGraph graph: `invoke({"messages": [...]})`).

    Args:
        session: the `Session` its tools act on.
        chat_model: a tool-calling LangChain chat model; default `ChatOpenAI` at `server` serving `model`.
        extra_tools: more tools (editing, transcript search) beside ground_moments / ask_video.
        checkpointer: a LangGraph checkpointer to keep the chat's messages across invocations.

    Raises:
        ConfigError: neither a chat model nor server + model.
    """
    from langchain.agents import create_agent

    from grounding_agent.agent.tool import session_tools

    if chat_model is None:
        if not (server and model):
            raise ConfigError(
                "the chat agent needs a chat model, or server=URL and model=NAME (a served VLM)"
            )
        from grounding_agent.agent.llm import chat_model as openai_chat_model

        chat_model = openai_chat_model(server, model, max_tokens=512)
    video = session.video
    system = load_prompt("answer_agent").render("system", duration_s=video.duration_s, video=video.path.name)
    tools = [*session_tools(session), *(extra_tools or [])]
    return create_agent(chat_model, tools, system_prompt=system, checkpointer=checkpointer, name="video_chat")


def reply(agent: Any, message: str, **config: Any) -> str:
    """Send one user message; the agent's final text."""
    state = agent.invoke({"messages": [{"role": "user", "content": message}]}, **config)
    content = state["messages"][-1].content
    return content if isinstance(content, str) else " ".join(str(c.get("text", c)) for c in content if c)
