"""Grounding prompts: versioned YAML, strict rendering, video before the query, answer format parseable."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from grounding_agent.errors import ConfigError, PromptError
from grounding_agent.grounders.parsing import parse_answer
from grounding_agent.grounders.qwen_inputs import (
    PROMPTS,
    build_request,
    frame_label,
    hf_messages,
    openai_messages,
)
from grounding_agent.types import Frames, Video
from grounding_agent.utils.prompts import load_prompt


def synthetic_frames(n: int = 6, fps: float = 2.0, duration_s: float = 30.0) -> Frames:
    """Frames of a made-up 30 fps video sampled at `fps` (pixels are noise; only shapes/times matter here)."""
    video = Video(Path("synthetic.mp4"), duration_s, 30.0, int(duration_s * 30), 64, 48)
    pixels = np.random.default_rng(0).integers(0, 255, (n, 48, 64, 3), dtype=np.uint8)
    timestamps = np.arange(n) / fps
    return Frames(video, pixels, timestamps, (timestamps * 30).astype(int), fps, fps, (0.0, duration_s))


@pytest.mark.parametrize("name", sorted(set(PROMPTS.values())))
def test_prompt_files_are_versioned_and_strict(name: str) -> None:
    prompt = load_prompt(name)
    assert prompt.version and prompt.description
    assert {"system", "user"} <= set(prompt.templates)
    with pytest.raises(PromptError):
        prompt.render("user", query="x")  # missing variables
    variables = {"query": "x", "duration_s": 10.0, "example": "1.00 - 2.00 seconds", "k": 3}
    with pytest.raises(PromptError):
        prompt.render("user", **variables, unexpected=1)


@pytest.mark.parametrize(("style", "top_k"), [("grounding", 1), ("grounding", 3), ("reasoning", 1)])
def test_example_answer_in_prompt_parses(style: str, top_k: int) -> None:
    """The format a prompt asks for is one the parser reads (the example written into the prompt)."""
    frames = synthetic_frames()
    request = build_request(frames, "a man opens the door", family="qwen3_vl", prompt=style, top_k=top_k)
    text = request.parts[-1][1]
    assert '"a man opens the door"' in text
    assert "30.0 seconds long" in text
    example = text.split("for example", 1)[1]
    parsed = parse_answer(example, 30.0)
    assert parsed.moments and parsed.moments[0].end_s == pytest.approx(13.5)
    if top_k > 1:
        assert "up to 3 moments" in text and parsed.moments[0].score == pytest.approx(0.8)
    if style == "reasoning":
        assert "<think>" in text and "<answer>" in text


def test_video_comes_before_the_query_and_prefix_is_shared() -> None:
    frames = synthetic_frames()
    a = openai_messages(build_request(frames, "query one", family=None))
    b = openai_messages(build_request(frames, "a different query", family=None))
    assert a[0] == b[0]  # same system prompt
    parts_a, parts_b = a[1]["content"], b[1]["content"]
    assert parts_a[:-1] == parts_b[:-1]  # every frame + timestamp identical, only the last text differs
    assert parts_a[-1]["type"] == "text" and "query one" in parts_a[-1]["text"]
    kinds = [p["type"] for p in parts_a[:-1]]
    assert kinds == ["text", "image_url"] * len(frames)
    assert [p["text"] for p in parts_a[:-1:2]] == [frame_label(t) for t in frames.timestamps_s]


def test_video_mode_places_the_video_first() -> None:
    messages = hf_messages(build_request(synthetic_frames(), "q", family="qwen2_5_vl"))
    assert [c["type"] for c in messages[1]["content"]] == ["video", "text"]


def test_qwen2_vl_refuses_video_mode_and_bad_input() -> None:
    frames = synthetic_frames()
    with pytest.raises(ConfigError, match="Qwen2-VL"):
        build_request(frames, "q", family="qwen2_vl", mode="video")
    with pytest.raises(ConfigError, match="query"):
        build_request(frames, "  ", family="qwen3_vl")
    with pytest.raises(ConfigError, match="prompt style"):
        build_request(frames, "q", family="qwen3_vl", prompt="nope")
