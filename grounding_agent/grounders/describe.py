"""Text answers from a grounder: what its VLM says about a window of frames, or a template without one.

`Grounder.describe(frames, request, moments)` returns a `Description`. The prompts are
`prompts/describe.yaml` (what happens in a grounded window) and `prompts/answer.yaml` (a question about the
content); the frames go first, each after its timestamp text, as in grounding (`describe_content`).
Model-free grounders have no language model: `template_description` fills a sentence from the moments and
says it is templated, never inventing content. `conversation.describe` builds its describers on this.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from grounding_agent.grounders.qwen_inputs import frame_label
from grounding_agent.types import Frames, Moment
from grounding_agent.utils.prompts import load_prompt

TEMPLATE_PREFIX = "Templated answer (no language model)"
DESCRIBE_MAX_FRAMES = 8  # a describe call shows the model a few frames, evenly spread over the window


@dataclass(frozen=True)
class DescribeRequest:
    """What to tell: a question, optionally about a window (then `describe.yaml`, else `answer.yaml`)."""

    question: str
    duration_s: float
    window_s: tuple[float, float] | None = None

    def render(self) -> tuple[str, str, str]:
        """(system, user text, "name@version")."""
        if self.window_s is None:
            prompt = load_prompt("answer")
            user = prompt.render("user", question=self.question, duration_s=self.duration_s)
        else:
            prompt = load_prompt("describe")
            start_s, end_s = self.window_s
            user = prompt.render(
                "user", question=self.question, start_s=start_s, end_s=end_s, duration_s=self.duration_s
            )
        return prompt.render("system"), user, f"{prompt.name}@{prompt.version}"


@dataclass
class Description:
    """A text answer and where it came from ("vlm:<model>" or "template")."""

    text: str
    source: str
    prompt: str = ""


def spread(frames: Frames, max_frames: int) -> Frames:
    """At most `max_frames` of `frames`, evenly spread (a describe call needs a few frames, not all)."""
    if len(frames) <= max_frames:
        return frames
    keep = np.unique(np.linspace(0, len(frames) - 1, max_frames).round().astype(int))
    return frames.subset(keep)


def describe_content(frames: Frames, user: str, image: Any) -> list[dict[str, Any]]:
    """A user message's content parts: each frame's timestamp text then `image(i)` (its part), then `user`."""
    content: list[dict[str, Any]] = []
    for i, t in enumerate(frames.timestamps_s):
        content += [{"type": "text", "text": frame_label(float(t))}, image(i)]
    content.append({"type": "text", "text": user})
    return content


def template_description(backend: str, request: DescribeRequest, moments: Sequence[Moment]) -> Description:
    """For model-free backends: a sentence built from the moments, marked as templated."""
    head = f"{TEMPLATE_PREFIX}, backend {backend!r}"
    if moments:
        spans = "; ".join(f"{m.start_s:.2f}-{m.end_s:.2f} s (score {m.score:.2f})" for m in moments)
        text = f"{head}: the moment{'s are' if len(moments) > 1 else ' is'} {spans}."
    elif request.window_s is not None:
        text = f"{head}: nothing found in {request.window_s[0]:.2f}-{request.window_s[1]:.2f} s."
    else:
        text = f"{head}: it cannot see the video's content; the video is {request.duration_s:.2f} s long."
    return Description(text, "template")
