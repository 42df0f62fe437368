"""Video-aware SFT collator: SFT samples -> padded Qwen-VL training batches with the prompt masked out.

Per sample: frames from our sampler (real timestamps), the grounder's own request builder
(`grounding_agent.grounders.qwen_inputs.build_request` + `hf_inputs`: the same prompt bytes, video
metadata and `second_per_grid_ts` as at inference), then the answer tokens appended after the
generation prompt. Labels are -100 on every prompt token (system, frames, query) and on padding, so the
loss is only on the answer and its end-of-turn token.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import torch

from finetune.data import SFTSample, target_text
from grounding_agent.errors import ConfigError
from grounding_agent.grounders.qwen_inputs import Family, InputMode, build_request, hf_inputs
from grounding_agent.types import Frames, Moment

IGNORE_INDEX = -100  # labels the loss skips (PyTorch cross_entropy's default ignore_index)
END_OF_TURN = "<|im_end|>"  # Qwen chat templates close every turn with it; generation stops there


@dataclass
class Encoded:
    """One sample, tokenised: model inputs (batch of 1) and the number of prompt tokens."""

    inputs: dict[str, Any]
    prompt_len: int
    target: str


def sample_frames_for(
    sample: SFTSample,
    fps: float | None = None,
    max_frames: int | None = None,
    max_pixels: int | None = None,
    cache: bool = False,
) -> Frames:
    """Frames of a sample's video by its sampling spec; non-None arguments override the spec."""
    from grounding_agent.media.decode import sample_frames

    spec = sample.sampling
    return sample_frames(
        sample.video,
        fps=fps if fps is not None else spec.get("fps"),
        max_frames=max_frames if max_frames is not None else spec.get("max_frames"),
        max_pixels=max_pixels if max_pixels is not None else spec.get("max_pixels"),
        cache=cache,
    )


def model_time_target(sample: SFTSample, offset_s: float, model_duration_s: float) -> str:
    """The sample's target in the model's time: windows shifted by -offset_s, clamped to [0, model duration].

    Qwen2.5-VL in video mode measures time from the first sampled frame (`GroundingRequest.time_offset_s`);
    the grounder adds the offset back to what the model says, so the model must learn to say GT - offset.
    """
    moments = []
    for start_s, end_s in sample.windows_s:
        end = min(max(end_s - offset_s, 0.0), model_duration_s)
        moments.append(Moment(round(min(max(start_s - offset_s, 0.0), end), 2), round(end, 2)))
    return target_text(moments)


@dataclass
class GroundingCollator:
    """Callable for `Trainer(data_collator=...)`.

    Args:
        processor: the model's AutoProcessor.
        family: Qwen generation (qwen2_vl / qwen2_5_vl / qwen3_vl), decides how time reaches the model.
        mode: "video" or "images" (default per family, as in the grounders).
        fps, max_frames, max_pixels: override the samples' own sampling spec when not None.
        frame_cache: reuse decoded frames across steps (worth it for small sets of short videos).
    """

    processor: Any
    family: Family
    mode: InputMode | None = None
    fps: float | None = None
    max_frames: int | None = None
    max_pixels: int | None = None
    frame_cache: bool = False
    _eot_id: int = field(init=False, default=-1)

    def __post_init__(self) -> None:
        tokenizer = self.processor.tokenizer
        self._eot_id = tokenizer.convert_tokens_to_ids(END_OF_TURN)
        if self._eot_id is None or self._eot_id == tokenizer.unk_token_id:
            raise ConfigError(f"the tokenizer has no {END_OF_TURN} token; is this a Qwen-VL chat model?")

    def frames(self, sample: SFTSample) -> Frames:
        return sample_frames_for(sample, self.fps, self.max_frames, self.max_pixels, self.frame_cache)

    def encode(self, sample: SFTSample | dict[str, Any]) -> Encoded:
        """Frames + prompt + answer of one sample -> inputs with `labels` (prompt positions = -100)."""
        if isinstance(sample, dict):
            sample = SFTSample.from_dict(sample)
        request = build_request(
            self.frames(sample), sample.query, family=self.family, mode=self.mode, prompt="grounding",
            top_k=len(sample.windows_s),
        )  # fmt: skip
        version = request.prompt.rsplit("@", 1)[-1]
        if version != sample.prompt_version:
            raise ConfigError(
                f"sample {sample.id} was made with prompt version {sample.prompt_version}, the grounder now "
                f"uses {request.prompt}; re-run finetune/data.py so training matches inference"
            )
        inputs = dict(hf_inputs(self.processor, request))
        target = model_time_target(sample, request.time_offset_s, request.model_duration_s)
        answer = self.processor.tokenizer(target, add_special_tokens=False)["input_ids"] + [self._eot_id]
        prompt_len = inputs["input_ids"].shape[1]
        answer_t = torch.tensor([answer], dtype=inputs["input_ids"].dtype)
        for key, value in list(inputs.items()):
            if torch.is_tensor(value) and value.dim() == 2 and value.shape == (1, prompt_len):
                # Per-token tensors (input_ids, attention_mask, mm_token_type_ids...): extend over the answer.
                extra = (
                    answer_t
                    if key == "input_ids"
                    else torch.full_like(answer_t, 1 if key == "attention_mask" else 0)
                )
                inputs[key] = torch.cat([value, extra.to(value.dtype)], dim=1)
        labels = torch.full_like(inputs["input_ids"], IGNORE_INDEX)
        labels[0, prompt_len:] = answer_t[0]
        inputs["labels"] = labels
        return Encoded(inputs, prompt_len, target)

    def __call__(self, batch: list[SFTSample | dict[str, Any]]) -> dict[str, Any]:
        return pad_batch([self.encode(s).inputs for s in batch], self.processor.tokenizer.pad_token_id)


def pad_batch(items: list[dict[str, Any]], pad_token_id: int | None) -> dict[str, Any]:
    """Right-pad per-token tensors (labels with -100, attention with 0); concatenate the visual ones."""
    if pad_token_id is None:
        raise ConfigError("the tokenizer has no pad token; set tokenizer.pad_token (e.g. to <|endoftext|>)")
    length = max(item["input_ids"].shape[1] for item in items)
    out: dict[str, Any] = {}
    for key in items[0]:
        values = [item[key] for item in items]
        if key in ("input_ids", "labels", "attention_mask") or _per_token(values, items):
            fill = {"input_ids": pad_token_id, "labels": IGNORE_INDEX}.get(key, 0)
            out[key] = torch.cat(
                [torch.nn.functional.pad(v, (0, length - v.shape[1]), value=fill) for v in values], dim=0
            )
        elif torch.is_tensor(values[0]):
            out[key] = torch.cat(values, dim=0)  # pixel_values(_videos), *_grid_thw: rows of all samples
        elif isinstance(values[0], (list, tuple)):
            out[key] = [x for v in values for x in v]  # second_per_grid_ts: one entry per video
        else:
            out[key] = values[0]
    return out


def _per_token(values: list[Any], items: list[dict[str, Any]]) -> bool:
    return all(
        torch.is_tensor(v) and v.dim() == 2 and v.shape == item["input_ids"].shape
        for v, item in zip(values, items, strict=True)
    )
