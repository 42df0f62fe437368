"""Test doubles for the agent tests. They replace logic *above* the model only and say so in their names."""

from __future__ import annotations

from collections.abc import Mapping, Sequence

from grounding_agent.grounders.base import BaseGrounder, Grounding
from grounding_agent.types import Frames, Moment, Video


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
        self.calls.append((query, frames.window_s if frames is not None else None))
        moments = sorted(self.script.get(query, []), key=lambda m: -m.score)[:top_k]
        return Grounding(moments=moments, raw_text=[f"scripted {len(moments)}"], timings_s={"model": 0.0})
