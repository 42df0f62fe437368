"""How each Qwen-VL generation receives frames and their real timestamps.

Two ways to show a model a video:
- "video": one video input plus `VideoMetadata` (real fps, frame indices, duration, total frames) and
  `do_sample_frames=False`, so the processor never resamples or guesses fps (without metadata it
  silently assumes 24 fps). Qwen2.5-VL encodes time through mRoPE: `second_per_grid_ts` =
  temporal_patch_size / sampling fps, measured from the *first* frame, so answers are shifted by the
  first frame's time. Qwen3-VL writes `<t seconds>` text before each temporal patch (absolute times).
- "images": one image per frame, each preceded by its timestamp text `<t seconds>` (the Qwen3-VL
  convention, so every family reads one format). Used for Qwen2-VL, whose video input carries no
  time at all, and for vLLM requests (portable across families and server versions).

`build_request` returns a backend-neutral list of parts; `hf_inputs` and `openai_messages` render it.
"""

from __future__ import annotations

import base64
import io
from dataclasses import dataclass, field
from typing import Any, Literal

import numpy as np

from grounding_agent.errors import ConfigError
from grounding_agent.grounders.parsing import format_moment
from grounding_agent.types import Frames, Moment
from grounding_agent.utils.prompts import load_prompt

InputMode = Literal["video", "images"]
Family = Literal["qwen2_vl", "qwen2_5_vl", "qwen3_vl"]

# model_type in config.json -> family.
FAMILIES: dict[str, Family] = {
    "qwen2_vl": "qwen2_vl",
    "qwen2_5_vl": "qwen2_5_vl",
    "qwen3_vl": "qwen3_vl",
    "qwen3_vl_moe": "qwen3_vl",
}
# Qwen2-VL's video input carries no time, so it always gets timestamped images.
DEFAULT_MODE: dict[Family, InputMode] = {"qwen2_vl": "images", "qwen2_5_vl": "video", "qwen3_vl": "video"}

# Prompt style (CLI --prompt) -> prompt file; top_k > 1 switches "grounding" to the multi-moment file.
PROMPTS = {"grounding": "grounding", "multi": "grounding_multi", "reasoning": "grounding_reasoning"}


def frame_label(time_s: float) -> str:
    """Timestamp text written before a frame: '<12.5 seconds>' (Qwen3-VL's own marker format)."""
    return f"<{time_s:.1f} seconds>"


def family_of(model_type: str) -> Family:
    try:
        return FAMILIES[model_type]
    except KeyError:
        raise ConfigError(f"unsupported model type {model_type!r}; supported: {sorted(FAMILIES)}") from None


@dataclass
class GroundingRequest:
    """A rendered grounding request, independent of the backend.

    Attributes:
        parts: the user turn in order: ("video", None), ("image", frame position) or ("text", str).
        system: the system prompt.
        frames: the frames the parts refer to.
        mode: "video" or "images".
        time_offset_s: add to the model's times to get video times (Qwen2.5-VL's mRoPE time starts at
            the first frame; text timestamps are absolute, offset 0).
        model_duration_s: the span the model can answer about, in its own time.
        prompt: "name@version" of the prompt file used.
    """

    parts: list[tuple[str, Any]]
    system: str
    frames: Frames
    mode: InputMode
    time_offset_s: float = 0.0
    model_duration_s: float = 0.0
    prompt: str = ""
    extra: dict[str, Any] = field(default_factory=dict)


def check_query(query: object) -> str:
    """The query if it is non-empty text a tokenizer and a JSON request can carry; else a `ConfigError`.

    Text decoded from a non-UTF-8 terminal holds lone surrogates ("caf\\udce9"): they break tokenizers
    and HTTP bodies alike, so they are refused here with how to fix it.
    """
    if not isinstance(query, str):
        raise ConfigError(f"the query must be text, got {type(query).__name__}")
    if not query.strip():
        raise ConfigError("the query is empty; describe the moment to find")
    try:
        query.encode("utf-8")
    except UnicodeEncodeError as exc:
        raise ConfigError(
            f"the query is not valid UTF-8 text (undecodable character at position {exc.start}); "
            "retype it in a UTF-8 terminal"
        ) from None
    return query


def build_request(
    frames: Frames,
    query: str,
    *,
    family: Family | None,
    mode: InputMode | None = None,
    prompt: str = "grounding",
    top_k: int = 1,
) -> GroundingRequest:
    """Video (or timestamped frames) first, then the query text: queries on one video share a prefix.

    `family=None` (unknown, e.g. behind a server) means timestamped images.

    Raises:
        ConfigError: empty frames, empty query, unknown prompt style, or video mode for Qwen2-VL.
    """
    if len(frames) == 0:
        raise ConfigError("no frames to show the model; sample at least one frame")
    check_query(query)
    if prompt not in PROMPTS:
        raise ConfigError(f"unknown prompt style {prompt!r}; choose from {sorted(PROMPTS)}")
    mode = mode or (DEFAULT_MODE[family] if family else "images")
    if mode == "video" and family == "qwen2_vl":
        raise ConfigError("Qwen2-VL's video input carries no timestamps; use mode='images'")

    name = PROMPTS["multi"] if prompt == "grounding" and top_k > 1 else PROMPTS[prompt]
    template = load_prompt(name)
    duration_s = float(frames.video.duration_s)
    offset_s = float(frames.timestamps_s[0]) if (mode == "video" and family == "qwen2_5_vl") else 0.0
    example = Moment(round(0.2 * duration_s, 1), round(0.45 * duration_s, 1), 0.8)
    variables: dict[str, Any] = {
        "query": query.strip(),
        "duration_s": duration_s - offset_s,
        "example": format_moment(example, with_score=name == PROMPTS["multi"]),
    }
    if "k" in template.variables("user"):
        variables["k"] = top_k

    if mode == "video":
        parts: list[tuple[str, Any]] = [("video", None)]
    else:
        parts = []
        for i, t in enumerate(frames.timestamps_s):
            parts += [("text", frame_label(float(t))), ("image", i)]
    parts.append(("text", template.render("user", **variables)))
    return GroundingRequest(
        parts=parts,
        system=template.render("system"),
        frames=frames,
        mode=mode,
        time_offset_s=offset_s,
        model_duration_s=duration_s - offset_s,
        prompt=f"{name}@{template.version}",
    )


# --- transformers --------------------------------------------------------------------------------


def video_metadata(frames: Frames) -> Any:
    """The real `VideoMetadata` of sampled frames (never let the processor guess fps)."""
    from transformers.video_utils import VideoMetadata

    video = frames.video
    return VideoMetadata(
        total_num_frames=int(video.num_frames),
        fps=float(video.avg_fps),
        width=int(video.width),
        height=int(video.height),
        duration=float(video.duration_s),
        frames_indices=[int(i) for i in frames.indices],
    )


def hf_messages(request: GroundingRequest) -> list[dict[str, Any]]:
    """Chat messages in the transformers format (placeholders only; pixels go to the processor)."""
    content: list[dict[str, Any]] = []
    for kind, value in request.parts:
        content.append({"type": "text", "text": value} if kind == "text" else {"type": kind})
    return [
        {"role": "system", "content": [{"type": "text", "text": request.system}]},
        {"role": "user", "content": content},
    ]


def hf_inputs(processor: Any, request: GroundingRequest) -> Any:
    """Tokenised model inputs (a BatchFeature of torch tensors) for one request.

    Qwen2.5-VL's `second_per_grid_ts` is set from the frames' real sampling fps (the processor
    derives it from metadata as n_frames / total_frames * fps, which is wrong for a window).
    """
    text = processor.apply_chat_template(hf_messages(request), tokenize=False, add_generation_prompt=True)
    frames = request.frames
    if request.mode == "video":
        inputs = processor(
            text=[text],
            videos=[frames.pixels],
            video_metadata=[video_metadata(frames)],
            do_sample_frames=False,
            # The reference (qwen-vl-utils) per-frame pixel budget; transformers warns until it is default.
            cap_pixels_per_frame=True,
            return_tensors="pt",
        )
        if "second_per_grid_ts" in inputs:
            patch = processor.video_processor.temporal_patch_size
            inputs["second_per_grid_ts"] = [patch / float(frames.fps)]
        return inputs
    images = [frames.pixels[i] for kind, i in request.parts if kind == "image"]
    return processor(text=[text], images=images, return_tensors="pt")


# --- OpenAI API (vLLM) ----------------------------------------------------------------------------


def encode_image(pixels: np.ndarray, image_format: Literal["jpeg", "png"] = "jpeg", quality: int = 90) -> str:
    """A data URL of one RGB frame. PNG is lossless (bit-identical pixels on the server); JPEG is smaller."""
    from PIL import Image

    buffer = io.BytesIO()
    kwargs = {"quality": quality} if image_format == "jpeg" else {}
    Image.fromarray(np.ascontiguousarray(pixels)).save(buffer, format=image_format.upper(), **kwargs)
    return f"data:image/{image_format};base64,{base64.b64encode(buffer.getvalue()).decode('ascii')}"


def openai_messages(
    request: GroundingRequest,
    image_format: Literal["jpeg", "png"] = "jpeg",
    cache: dict[int, str] | None = None,
) -> list[dict[str, Any]]:
    """Chat messages for the OpenAI API: each frame a base64 image part preceded by its timestamp text.

    Args:
        cache: frame position -> data URL, reused across queries on the same frames.

    Raises:
        ConfigError: the request is in video mode (vLLM requests use timestamped images).
    """
    if request.mode != "images":
        raise ConfigError("OpenAI-API requests carry frames as timestamped images; build with mode='images'")
    cache = {} if cache is None else cache
    content: list[dict[str, Any]] = []
    for kind, value in request.parts:
        if kind == "text":
            content.append({"type": "text", "text": value})
        else:
            if value not in cache:
                cache[value] = encode_image(request.frames.pixels[value], image_format)
            content.append({"type": "image_url", "image_url": {"url": cache[value]}})
    return [{"role": "system", "content": request.system}, {"role": "user", "content": content}]
