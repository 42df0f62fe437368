"""Text answers: the VLM says what happens in a window of frames, or answers a question over the video.

Prompts: `prompts/describe.yaml` (what happens in a grounded window) and `prompts/answer.yaml` (a
question about the content). The frames go first, each after its timestamp text, as in grounding.

- `VLLMDescriber`: the served VLM through vLLM's OpenAI API (the grounder's connection and model).
- `HFDescriber`: the in-process transformers model of an `HFGrounder` (shares its lock).
- `TemplateDescriber`: model-free backends have no language model; the text is a template filled from
  the moments and says so — never invented content.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Protocol

import numpy as np

from grounding_agent.types import Frames, Moment
from grounding_agent.utils.prompts import load_prompt

TEMPLATE_PREFIX = "Templated answer (no language model)"


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


class Describer(Protocol):
    name: str

    def describe(self, frames: Frames, request: DescribeRequest, moments: list[Moment]) -> Description: ...


def spread(frames: Frames, max_frames: int) -> Frames:
    """At most `max_frames` of `frames`, evenly spread (a describe call needs a few frames, not all)."""
    if len(frames) <= max_frames:
        return frames
    keep = np.unique(np.linspace(0, len(frames) - 1, max_frames).round().astype(int))
    return frames.subset(keep)


class TemplateDescriber:
    """For model-free backends: a sentence built from the moments, marked as templated."""

    needs_pixels = False

    def __init__(self, backend: str = "model-free"):
        self.name = f"template:{backend}"
        self.backend = backend

    def describe(self, frames: Frames | None, request: DescribeRequest, moments: list[Moment]) -> Description:
        head = f"{TEMPLATE_PREFIX}, backend {self.backend!r}"
        if moments:
            spans = "; ".join(f"{m.start_s:.2f}-{m.end_s:.2f} s (score {m.score:.2f})" for m in moments)
            text = f"{head}: the moment{'s are' if len(moments) > 1 else ' is'} {spans}."
        elif request.window_s is not None:
            text = f"{head}: nothing found in {request.window_s[0]:.2f}-{request.window_s[1]:.2f} s."
        else:
            text = f"{head}: it cannot see the video's content; the video is {request.duration_s:.2f} s long."
        return Description(text, "template")


class VLLMDescriber:
    """The served VLM answers over timestamped frames (OpenAI chat completions, greedy)."""

    needs_pixels = True

    def __init__(self, grounder: Any, model: str, *, max_tokens: int = 96, max_frames: int = 8):
        self.grounder, self.model = grounder, model  # a VLLMGrounder: its deadline, retries and checks
        self.max_tokens, self.max_frames = max_tokens, max_frames
        self.name = f"vlm:{model}"

    def describe(self, frames: Frames, request: DescribeRequest, moments: list[Moment]) -> Description:
        from grounding_agent.grounders.qwen_inputs import encode_image, frame_label

        system, user, prompt = request.render()
        content: list[dict[str, Any]] = []
        shown = spread(frames, self.max_frames)
        for t, pixels in zip(shown.timestamps_s, shown.pixels):
            content.append({"type": "text", "text": frame_label(float(t))})
            content.append({"type": "image_url", "image_url": {"url": encode_image(pixels)}})
        content.append({"type": "text", "text": user})
        request = {
            "model": self.model,
            "messages": [{"role": "system", "content": system}, {"role": "user", "content": content}],
            "max_tokens": self.max_tokens,
            "temperature": 0.0,
        }
        response = self.grounder.chat_completion(**request)
        return Description(response.choices[0].text.strip(), self.name, prompt)


class HFDescriber:
    """The in-process model of an `HFGrounder` answers over timestamped images (greedy)."""

    needs_pixels = True

    def __init__(self, grounder: Any, *, max_new_tokens: int = 64, max_frames: int = 8):
        self.grounder, self.max_new_tokens, self.max_frames = grounder, max_new_tokens, max_frames
        self.name = f"vlm:{grounder.model_id}"

    def describe(self, frames: Frames, request: DescribeRequest, moments: list[Moment]) -> Description:
        import torch

        from grounding_agent.grounders.hf import generate
        from grounding_agent.grounders.qwen_inputs import frame_label

        system, user, prompt = request.render()
        shown = spread(frames, self.max_frames)
        content: list[dict[str, Any]] = []
        for t in shown.timestamps_s:
            content += [{"type": "text", "text": frame_label(float(t))}, {"type": "image"}]
        content.append({"type": "text", "text": user})
        messages = [
            {"role": "system", "content": [{"type": "text", "text": system}]},
            {"role": "user", "content": content},
        ]
        processor, model = self.grounder.processor, self.grounder.model
        text = processor.apply_chat_template(messages, tokenize=False, add_generation_prompt=True)
        inputs = processor(text=[text], images=list(shown.pixels), return_tensors="pt").to(model.device)
        with self.grounder._lock, torch.inference_mode():
            # Through the session's prefix cache: a second question on the same window reuses the frames' KV.
            out = generate(
                model,
                inputs,
                max_new_tokens=self.max_new_tokens,
                do_sample=False,
                temperature=None,
                top_p=None,
                top_k=None,
            )
        new_tokens = out[:, inputs["input_ids"].shape[1] :]
        answer = processor.batch_decode(new_tokens, skip_special_tokens=True)[0].strip()
        return Description(answer, self.name, prompt)


def describer_for(grounder: Any) -> Describer:
    """The describer that uses the grounder's own model (a template for model-free grounders)."""
    if callable(getattr(grounder, "chat_completion", None)) and isinstance(getattr(grounder, "model", None), str):
        return VLLMDescriber(grounder, grounder.model)
    if getattr(grounder, "processor", None) is not None and getattr(grounder, "model", None) is not None:
        return HFDescriber(grounder)
    return TemplateDescriber(getattr(grounder, "name", "model-free"))
