"""grounding-agent: find when things happen in a video, and talk about it.

    from grounding_agent import Session, ground, open_video
    session = Session("clip.mp4", grounder="vllm", server="http://127.0.0.1:8000/v1")
    session.ground("the person opens the fridge")         # Prediction (schemas/prediction.schema.json)
    session.ask("what does he do after that?")             # Answer(text, moments, evidence, plan)
    ground("clip.mp4", "the person opens the fridge", grounder="uniform")   # one call

Importing this package is light: decoding (decord/PyAV), torch, transformers and openai load on first use.
"""

from __future__ import annotations

import os

from grounding_agent.conversation.answers import Answer, Turn
from grounding_agent.conversation.oneshot import ground
from grounding_agent.conversation.session import Session
from grounding_agent.errors import GroundingAgentError
from grounding_agent.grounders.parsing import format_moment, parse_moments
from grounding_agent.grounders.registry import make_grounder
from grounding_agent.types import Evidence, Frames, Moment, Plan, Prediction, Video


def open_video(path: str | os.PathLike) -> Video:
    """A video's metadata (duration, frame count, fps, size) without decoding frames.

    Raises:
        VideoError: a subclass saying what is wrong with the file (see `grounding_agent.media.video.open_video`).
    """
    from grounding_agent.media.video import open_video as _open_video  # lazy: decord/PyAV load on first use

    return _open_video(path)


__all__ = [
    "Answer",
    "Evidence",
    "Frames",
    "GroundingAgentError",
    "Moment",
    "Plan",
    "Prediction",
    "Session",
    "Turn",
    "Video",
    "format_moment",
    "ground",
    "make_grounder",
    "open_video",
    "parse_moments",
]
