"""Test doubles for the agent tests. They replace logic *above* the model only and say so in their names."""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import openai
from langchain_core.language_models.fake_chat_models import GenericFakeChatModel
from langchain_core.messages import AIMessage

from grounding_agent.grounders.base import BaseGrounder, Grounding, check_request
from grounding_agent.types import Curve, Frames, Moment, Video


class ScriptedGrounderForTests(BaseGrounder):
    """Returns known candidates per query text (no model, no pixels); records every call.

    Args:
        script: query text -> candidate moments (any order; returned best first).
        needs_pixels: pretend to be a pixel grounder so the pipeline passes windowed frames.
    """

    name = "scripted"

    def __init__(self, script: Mapping[str, Sequence[Moment]], *, needs_pixels: bool = False):
        self.script = {k: list(v) for k, v in script.items()}
        self.needs_pixels = needs_pixels
        self.calls: list[tuple[str, tuple[float, float] | None]] = []

    def ground(self, video: Video, query: str, *, top_k: int = 1, frames: Frames | None = None) -> Grounding:
        video = check_request(video, top_k)
        self.calls.append((query, frames.window_s if frames is not None else None))
        moments = sorted(self.script.get(query, []), key=lambda m: -m.score)[:top_k]
        return Grounding(
            moments=moments,
            raw_text=[f"scripted {len(moments)}"],
            timings_s={"model": 0.0},
            duration_s=video.duration_s,
        )


class ScriptedChatModelForTests(GenericFakeChatModel):
    """Test double for the served chat model: replays scripted messages; records what it was sent (`seen`)
    and what `bind(...)` last asked for (`bound`: ChatOpenAI's structured output, log-probs)."""

    seen: list = []
    bound: dict = {}

    def bind(self, **kwargs):
        self.bound = kwargs
        return super().bind(**kwargs)

    def _generate(self, messages, stop=None, run_manager=None, **kwargs):
        self.seen.append((messages, kwargs))
        return super()._generate(messages, stop=stop, run_manager=run_manager, **kwargs)


def scripted_chat(*answers: str | AIMessage) -> ScriptedChatModelForTests:
    """A scripted chat model answering `answers` in order (text or ready messages)."""
    messages = [a if isinstance(a, AIMessage) else AIMessage(content=a) for a in answers]
    return ScriptedChatModelForTests(messages=iter(messages), seen=[])


class UnreachableChatModelForTests(GenericFakeChatModel):
    """Test double: a chat model whose server is down."""

    def _generate(self, *args, **kwargs):
        raise openai.APIConnectionError(request=None)  # type: ignore[arg-type]


class CurveSaliencyForTests:
    """Test double for ClipSaliency: returns a fixed curve (the fusion logic above the model is under test)."""

    def __init__(self, curve: Curve):
        self.curve_ = curve
        self.calls: list[tuple[str, str, float]] = []
        self.keyframes_only: list[bool] = []  # per call

    def curve(self, video, query, *, fps=None, keyframes_only=False):
        self.calls.append((video, query, fps))
        self.keyframes_only.append(keyframes_only)
        return self.curve_
