"""Text answers in a conversation: who writes them (a `Describer`) and what it is asked (`DescribeRequest`).

The writing itself is the grounder's (`Grounder.describe`, `grounders.describe`): the served VLM through
vLLM's OpenAI API, the in-process transformers model of an `HFGrounder`, or — for model-free backends,
which have no language model — a template filled from the moments that says so, never invented content.

- `GrounderDescriber`: asks a grounder (what `describer_for(grounder)` returns).
- `HFDescriber`: the same, with the in-process model's token budget (`max_new_tokens`).
- `TemplateDescriber`: always the template.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Protocol

from grounding_agent.grounders.describe import (
    DESCRIBE_MAX_FRAMES,
    TEMPLATE_PREFIX,
    DescribeRequest,
    Description,
    spread,
    template_description,
)
from grounding_agent.types import Frames, Moment

if TYPE_CHECKING:
    from grounding_agent.grounders.base import Grounder

__all__ = [
    "TEMPLATE_PREFIX",
    "DescribeRequest",
    "Describer",
    "Description",
    "GrounderDescriber",
    "HFDescriber",
    "TemplateDescriber",
    "describer_for",
    "spread",
]


class Describer(Protocol):
    """Writes a text answer; `needs_pixels`: whether it looks at the frames (else it gets None)."""

    name: str
    needs_pixels: bool

    def describe(
        self, frames: Frames | None, request: DescribeRequest, moments: list[Moment]
    ) -> Description: ...


class TemplateDescriber:
    """For model-free backends: a sentence built from the moments, marked as templated."""

    needs_pixels = False

    def __init__(self, backend: str = "model-free"):
        self.name = f"template:{backend}"
        self.backend = backend

    def describe(
        self, frames: Frames | None, request: DescribeRequest, moments: Sequence[Moment]
    ) -> Description:
        return template_description(self.backend, request, moments)


class GrounderDescriber:
    """The grounder's own model answers (`Grounder.describe`); templated when it has none (`text_model`)."""

    def __init__(
        self, grounder: Grounder, *, max_tokens: int | None = None, max_frames: int = DESCRIBE_MAX_FRAMES
    ):
        self.grounder, self.max_tokens, self.max_frames = grounder, max_tokens, max_frames
        model = grounder.text_model
        self.needs_pixels = model is not None
        self.name = f"vlm:{model}" if model is not None else f"template:{grounder.name}"

    def describe(
        self, frames: Frames | None, request: DescribeRequest, moments: Sequence[Moment]
    ) -> Description:
        return self.grounder.describe(
            frames, request, moments, max_tokens=self.max_tokens, max_frames=self.max_frames
        )


class HFDescriber(GrounderDescriber):
    """An `HFGrounder`'s in-process model answers (greedy, at most `max_new_tokens`)."""

    def __init__(
        self, grounder: Grounder, *, max_new_tokens: int = 64, max_frames: int = DESCRIBE_MAX_FRAMES
    ):
        super().__init__(grounder, max_tokens=max_new_tokens, max_frames=max_frames)


def describer_for(grounder: Grounder) -> Describer:
    """The describer that uses the grounder's own model (a template for model-free grounders)."""
    return GrounderDescriber(grounder)
