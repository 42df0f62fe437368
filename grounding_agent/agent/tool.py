"""The agent for other agents: a LangChain tool and a Runnable, `ground_video(video, query)`.

tool = ground_video_tool(agent)              # StructuredTool: bind it to any tool-calling chat model
tool.invoke({"video": "clip.mp4", "query": "person opens the door then walks in"})
runnable = ground_video_runnable(agent)      # Runnable[{"video", "query"}] -> prediction dict
"""

from __future__ import annotations

from typing import Any

from langchain_core.runnables import RunnableLambda
from langchain_core.tools import StructuredTool
from pydantic import BaseModel, Field

from grounding_agent.agent.orchestrator import Agent

DESCRIPTION = (
    "Find when something happens in a video. Handles compositional queries ('X then Y', 'after X, Y', "
    "'Y while X'). Returns ranked [start_s, end_s, score] windows, the plan, each sub-event's window and "
    "an explanation per window."
)


class GroundVideoInput(BaseModel):
    video: str = Field(description="path of the video file")
    query: str = Field(description="what to find, in plain English")


def ground_video_tool(agent: Agent, *, top_n: int | None = None) -> StructuredTool:
    """A LangChain tool named `ground_video` running `agent`; returns the prediction as a JSON-ready dict."""

    def ground_video(video: str, query: str) -> dict[str, Any]:
        out = agent.run(video, query).to_prediction().to_dict()
        if top_n is not None:
            out["pred_relevant_windows"] = out["pred_relevant_windows"][:top_n]
            out["explanations"] = out["explanations"][:top_n]
        return out

    return StructuredTool.from_function(
        func=ground_video, name="ground_video", description=DESCRIPTION, args_schema=GroundVideoInput
    )


def ground_video_runnable(agent: Agent) -> RunnableLambda:
    """A Runnable taking {"video": path, "query": text} and returning the prediction dict."""
    return RunnableLambda(
        lambda inputs: agent.run(inputs["video"], inputs["query"]).to_prediction().to_dict(),
        name="ground_video",
    )


# --- a Session as tools (for a chat agent) ---------------------------------------------------------

GROUND_DESCRIPTION = (
    "Find when something happens in the video of this conversation. Returns ranked moments "
    "[{start_s, end_s, score}] in seconds."
)
ASK_DESCRIPTION = (
    "Ask about the video of this conversation, in plain English; follow-ups like 'what happens after "
    "that?', 'before that', 'again' refer to the previous answer. Returns the text answer and its moments."
)


class GroundMomentsInput(BaseModel):
    query: str = Field(description="what to find, in plain English")
    top_k: int = Field(default=1, ge=1, le=20, description="how many moments")


class AskVideoInput(BaseModel):
    message: str = Field(description="the question or follow-up, in plain English")


def session_tools(session: Any) -> list[StructuredTool]:
    """LangChain tools over one `session.Session`: `ground_moments` and `ask_video` (JSON-ready dicts).

    More tools (editing, transcript search) are appended by their modules to the same list.
    """

    def ground_moments(query: str, top_k: int = 1) -> dict[str, Any]:
        prediction = session.ground(query, top_k=top_k)
        return {
            "query": query,
            "duration_s": session.video.duration_s,
            "moments": [
                {"start_s": s, "end_s": e, "score": c} for s, e, c in prediction.pred_relevant_windows
            ],
        }

    def ask_video(message: str) -> dict[str, Any]:
        answer = session.ask(message).to_dict()
        return {key: answer[key] for key in ("text", "moments", "text_source", "window_s", "reference")}

    return [
        StructuredTool.from_function(
            func=ground_moments,
            name="ground_moments",
            description=GROUND_DESCRIPTION,
            args_schema=GroundMomentsInput,
        ),
        StructuredTool.from_function(
            func=ask_video, name="ask_video", description=ASK_DESCRIPTION, args_schema=AskVideoInput
        ),
    ]
