"""A video library as LangChain tools, for a chat agent: `search_videos` and `ask_library_video`.

    tools = library_tools(Library("~/rushes-lib"), session_kwargs={"grounder": grounder})
    tools[0].invoke({"query": "she mentions the budget", "k": 3})   # -> {"hits": [...]}
    tools[1].invoke({"video_id": 2, "message": "what happens after that?"})

`ask_library_video` keeps one `Session` a video, so follow-ups refer to that video's earlier turns.
"""

from __future__ import annotations

from typing import Any

from langchain_core.tools import StructuredTool
from pydantic import BaseModel, Field

from grounding_agent.defaults import LIBRARY

SEARCH_DESCRIPTION = (
    "Search every video of the library by what is seen, said and written. Returns the best spans across "
    "videos: [{video_id, path, start_s, end_s, score, evidence}] (evidence per channel: visual, speech, ocr)."
)
ASK_DESCRIPTION = (
    "Ask about one video of the library (a video_id from search_videos), in plain English; follow-ups "
    "refer to that video's earlier answers. Returns the text answer and its moments."
)


class SearchVideosInput(BaseModel):
    query: str = Field(description="what is seen, said or written, in plain English")
    k: int = Field(default=LIBRARY.search_k, ge=1, le=50, description="how many hits")


class AskLibraryVideoInput(BaseModel):
    video_id: int = Field(ge=0, description="the video, as search_videos returns it")
    message: str = Field(description="the question or follow-up")


def library_tools(library: Any, *, session_kwargs: dict[str, Any] | None = None) -> list[StructuredTool]:
    """`search_videos` and `ask_library_video` over `library` (a `grounding_agent.library.Library`)."""
    sessions: dict[int, Any] = {}

    def search_videos(query: str, k: int = LIBRARY.search_k) -> dict[str, Any]:
        return {"query": query, "hits": [h.to_dict() for h in library.search(query, k=k)]}

    def ask_library_video(video_id: int, message: str) -> dict[str, Any]:
        if video_id not in sessions:
            sessions[video_id] = library.session(video_id, **(session_kwargs or {}))
        answer = sessions[video_id].ask(message).to_dict()
        return {"video_id": video_id, **{key: answer[key] for key in ("text", "moments", "window_s")}}

    return [
        StructuredTool.from_function(
            func=search_videos,
            name="search_videos",
            description=SEARCH_DESCRIPTION,
            args_schema=SearchVideosInput,
        ),
        StructuredTool.from_function(
            func=ask_library_video,
            name="ask_library_video",
            description=ASK_DESCRIPTION,
            args_schema=AskLibraryVideoInput,
        ),
    ]
