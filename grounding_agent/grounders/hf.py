"""In-process grounding with transformers: Qwen2-VL / Qwen2.5-VL / Qwen3-VL (+ optional PEFT adapter).

Confidence (stored as `Moment.score`, method in `Grounding.info["confidence"]`):
- greedy (`num_samples=1`): exp(mean log-probability of the generated tokens), i.e. the geometric
  mean token probability of the answer, from `generate`'s scores. A multi-moment answer's stated
  per-moment confidences are multiplied by it.
- sampling (`num_samples=n > 1`): agreement — each sample's moment scores the mean temporal IoU with
  the other samples' first moments (self-consistency); duplicates are merged by temporal NMS.
"""

from __future__ import annotations

import copy
import functools
import math
import threading
from collections.abc import Sequence
from typing import Any, Literal

from grounding_agent.defaults import SAMPLING, TOKENS
from grounding_agent.errors import ConfigError, ModelLoadError
from grounding_agent.grounders import vision_cache
from grounding_agent.grounders.base import (
    BaseGrounder,
    Grounding,
    check_request,
    grounding_from_answers,
    timed,
)
from grounding_agent.grounders.describe import (
    DESCRIBE_MAX_FRAMES,
    DescribeRequest,
    Description,
    describe_content,
    spread,
)
from grounding_agent.grounders.qwen_inputs import Family, InputMode, build_request, family_of, hf_inputs
from grounding_agent.io import check_model_source
from grounding_agent.types import Frames, Moment, Video
from grounding_agent.utils.extras import HF, require_spec

Quantization = Literal["4bit", "8bit"]


def load_model(
    model: str,
    *,
    adapter: str | None = None,
    quantization: Quantization | None = None,
    dtype: str = "auto",
    device: str = "auto",
) -> tuple[Any, Any]:
    """`AutoModelForImageTextToText` + `AutoProcessor` from a hub id or a local folder.

    Args:
        model: hub id or path of the base model.
        adapter: optional PEFT adapter folder (or hub id), applied with `PeftModel.from_pretrained`.
        quantization: "4bit" / "8bit" via bitsandbytes (vision tower and lm_head kept unquantized).
        dtype: torch dtype name, or "auto" (the checkpoint's).
        device: "auto" (CUDA if available, else CPU), "cpu", "cuda", "cuda:1", ...

    Raises:
        ModelLoadError: the model, processor or adapter cannot be loaded.
    """
    check_model_source(model, "model")
    if adapter:
        check_model_source(adapter, "adapter")
    require_spec(HF, "the hf backend")
    import torch
    from transformers import AutoModelForImageTextToText, AutoProcessor

    if device == "auto":
        device = "cuda" if torch.cuda.is_available() else "cpu"
    torch_dtype = dtype if dtype == "auto" else getattr(torch, dtype, None)
    if not (torch_dtype == "auto" or isinstance(torch_dtype, torch.dtype)):
        raise ConfigError(f"unknown dtype {dtype!r}; use 'auto', 'bfloat16', 'float16' or 'float32'")
    kwargs: dict[str, Any] = {"dtype": torch_dtype}
    if quantization is not None:
        from transformers import BitsAndBytesConfig

        if quantization not in ("4bit", "8bit"):
            raise ConfigError(f"quantization must be '4bit' or '8bit', got {quantization!r}")
        # Small or vision layers lose most from quantization (and < 64-wide Linears fail on CPU).
        skip = ["visual", "lm_head"]
        kwargs["quantization_config"] = (
            BitsAndBytesConfig(load_in_4bit=True, bnb_4bit_quant_type="nf4", llm_int8_skip_modules=skip)
            if quantization == "4bit"
            else BitsAndBytesConfig(load_in_8bit=True, llm_int8_skip_modules=skip)
        )
        kwargs["device_map"] = device
    try:
        processor = AutoProcessor.from_pretrained(model)
        net = AutoModelForImageTextToText.from_pretrained(model, **kwargs)
    except (OSError, ValueError, KeyError, ImportError) as exc:
        raise ModelLoadError(
            f"cannot load {model!r} ({type(exc).__name__}: {str(exc).splitlines()[0] if str(exc) else ''}); "
            "pass a Hugging Face hub id or a local folder with config.json"
        ) from exc
    if quantization is None:
        net = net.to(device)
    if adapter:
        from peft import PeftModel

        try:
            net = PeftModel.from_pretrained(net, adapter)
        except (OSError, ValueError, KeyError) as exc:
            raise ModelLoadError(
                f"cannot load PEFT adapter {adapter!r} ({type(exc).__name__}); pass a folder with "
                "adapter_config.json + adapter_model.safetensors trained on this base model"
            ) from exc
    net.eval()
    return net, processor


class HFGrounder(BaseGrounder):
    """Ground with a Qwen-VL model in this process.

    Args:
        model: hub id or local folder (the real `from_pretrained` path).
        adapter: PEFT adapter folder, optional.
        quantization: "4bit" / "8bit" (bitsandbytes), optional.
        dtype, device: see `load_model`.
        mode: "video" or "images" (default per family, see `qwen_inputs`).
        prompt: "grounding" or "reasoning".
        fps, max_frames, max_pixels: sampling used when `ground` gets no frames.
        max_new_tokens: generation budget (the reasoning prompt needs more).
        num_samples: 1 = greedy; n > 1 = n sampled answers, scored by agreement.
        temperature: for sampling.
        fallback: when no answer parses, return the whole video with score 0 (see `whole_video_fallback`).
    """

    needs_pixels = True

    def __init__(
        self,
        model: str,
        *,
        adapter: str | None = None,
        quantization: Quantization | None = None,
        dtype: str = "auto",
        device: str = "auto",
        mode: InputMode | None = None,
        prompt: str = "grounding",
        fps: float = SAMPLING.fps,
        max_pixels: int | None = SAMPLING.max_pixels,
        max_frames: int = SAMPLING.max_frames,
        max_new_tokens: int | None = None,
        num_samples: int = 1,
        temperature: float = 0.7,
        fallback: bool = True,
    ):
        if num_samples < 1:
            raise ConfigError(f"num_samples must be >= 1, got {num_samples}")
        self.model_id, self.adapter = model, adapter
        self.model, self.processor = load_model(
            model, adapter=adapter, quantization=quantization, dtype=dtype, device=device
        )
        # A Session's questions share frames: processor and vision-tower outputs are reused (vision_cache).
        vision_cache.install(self.model, self.processor)
        config = self.model.config
        self.family: Family = family_of(getattr(config, "model_type", ""))
        self.name = f"hf:{adapter or model}"
        self.mode, self.prompt = mode, prompt
        self.fps, self.max_frames, self.max_pixels = fps, max_frames, max_pixels
        self.max_new_tokens = max_new_tokens or TOKENS.for_prompt(prompt)
        self.num_samples, self.temperature = num_samples, temperature
        self.fallback = fallback
        # `aground` runs `ground` in worker threads; one model must not generate for two at once.
        self._lock = threading.Lock()

    @property
    def text_model(self) -> str:
        """The model that writes `describe`'s answers: this one."""
        return self.model_id

    def ground(self, video: Video, query: str, *, top_k: int = 1, frames: Frames | None = None) -> Grounding:
        import torch

        video = check_request(video, top_k, query)  # a path is opened here
        timings: dict[str, float] = {}
        frames = self.frames_for(video, frames, timings)
        with timed(timings, "preprocess"):
            request = build_request(
                frames, query, family=self.family, mode=self.mode, prompt=self.prompt, top_k=top_k
            )
            inputs = hf_inputs(self.processor, request).to(self.model.device)
        with self._lock, torch.inference_mode(), timed(timings, "model"):
            texts, confidences = self._generate(inputs)

        info = {"backend": "hf", "model": self.model_id, "adapter": self.adapter, "family": self.family}
        return grounding_from_answers(
            texts,
            confidences,
            duration_s=video.duration_s,
            request=request,
            top_k=top_k,
            num_samples=self.num_samples,
            timings_s=timings,
            info={**info, "mode": request.mode},
            fallback=self.fallback,
        )

    def describe(
        self,
        frames: Frames | None,
        request: DescribeRequest,
        moments: Sequence[Moment],
        *,
        max_tokens: int | None = None,
        max_frames: int = DESCRIBE_MAX_FRAMES,
    ) -> Description:
        """This model answers `request` over timestamped images (greedy, `max_tokens` new tokens, default 64),
        through the session's prefix cache: a second question on the same window reuses the frames' KV."""
        import torch

        if frames is None:
            raise ConfigError(f"{self.name} describes frames: pass the frames of the window")
        system, user, prompt = request.render()
        shown = spread(frames, max_frames)
        messages = [
            {"role": "system", "content": [{"type": "text", "text": system}]},
            {"role": "user", "content": describe_content(shown, user, lambda i: {"type": "image"})},
        ]
        text = self.processor.apply_chat_template(messages, tokenize=False, add_generation_prompt=True)
        inputs = self.processor(text=[text], images=list(shown.pixels), return_tensors="pt").to(
            self.model.device
        )
        with self._lock, torch.inference_mode():
            out = generate(
                self.model, inputs, max_new_tokens=max_tokens or 64, do_sample=False, temperature=None, top_p=None,
                top_k=None,
            )  # fmt: skip
        new_tokens = out[:, inputs["input_ids"].shape[1] :]
        answer = self.processor.batch_decode(new_tokens, skip_special_tokens=True)[0].strip()
        return Description(answer, f"vlm:{self.text_model}", prompt)

    def _generate(self, inputs: Any) -> tuple[list[str], list[float]]:
        """Generated texts and, for greedy, exp(mean token log-prob) of each (1.0 for samples)."""
        sampled = self.num_samples > 1
        gen_kwargs: dict[str, Any] = {
            "max_new_tokens": self.max_new_tokens,
            "do_sample": sampled,
            "num_return_sequences": self.num_samples,
            "return_dict_in_generate": True,
            "output_scores": not sampled,
        }
        if sampled:
            gen_kwargs["temperature"] = self.temperature
        else:
            # Greedy: unset sampling knobs a checkpoint's generation_config may carry (avoids warnings).
            gen_kwargs.update(temperature=None, top_p=None, top_k=None)
        out = generate(self.model, inputs, **gen_kwargs)
        prompt_len = inputs["input_ids"].shape[1]
        new_tokens = out.sequences[:, prompt_len:]
        texts = self.processor.batch_decode(new_tokens, skip_special_tokens=True)
        if sampled:
            return texts, [1.0] * len(texts)
        logprobs = self.model.compute_transition_scores(out.sequences, out.scores, normalize_logits=True)
        special = set(self.processor.tokenizer.all_special_ids)
        confidences = []
        for row_tokens, row_logprobs in zip(new_tokens.tolist(), logprobs.tolist()):
            kept = [
                lp for tok, lp in zip(row_tokens, row_logprobs) if tok not in special and math.isfinite(lp)
            ]
            confidences.append(math.exp(sum(kept) / len(kept)) if kept else 0.0)
        return texts, confidences


# --- generation from a prefilled visual prefix -----------------------------------------------------

# Inputs aligned with the token sequence: cut to the prefix for its prefill, kept whole for `generate`.
_SEQUENCE_KEYS = ("attention_mask", "mm_token_type_ids", "token_type_ids")


def generate(model: Any, inputs: Any, **gen_kwargs: Any) -> Any:
    """`model.generate(**inputs, **gen_kwargs)`, with the prompt prefilled in two parts.

    The prefix (system text + every image / video token: what a session's questions share, since the
    question comes after the frames) is run first, its KV cache then continued by `generate` with the
    rest. With a `vision_cache` active, that prefix cache is reused when the prefix tokens, positions
    and visual inputs are equal by value (kind "lm:prefix"). The split is the same with or without a
    cache, so a reused prefix gives exactly the tokens and scores a computed one gives (a one-shot
    prefill can differ from a split one in the last float bits).

    M-RoPE: the full prompt's 3D position ids are computed once here, as `generate` would from scratch,
    and passed in, so neither part reads the model's stored `rope_deltas` (left by whatever call ran
    last). Sampling with `num_return_sequences=n`: the batch-1 prefix cache is repeated n times.
    """
    base = model.get_base_model() if hasattr(model, "get_base_model") else model
    n = visual_prefix_length(base, inputs)
    if n == 0 or not hasattr(base, "_prepare_position_ids_for_generation"):
        return model.generate(**inputs, **gen_kwargs)
    input_ids = inputs["input_ids"]
    rest = {k: v for k, v in inputs.items() if k != "input_ids"}
    position_ids = base._prepare_position_ids_for_generation(input_ids, dict(rest))
    prefix = {k: (v[:, :n] if k in _SEQUENCE_KEYS else v) for k, v in rest.items()}
    prefix["position_ids"] = position_ids[..., :n]
    cache = vision_cache.active()
    if cache is None:
        past = _prefill(base, input_ids[:, :n], **prefix)
    else:
        # The model (and its adapters' state) is part of the key: another model's cache is no hit.
        prefill = functools.partial(_prefill, base)
        owner = vision_cache.owner_key(base)
        stored = cache.call("lm:prefix", prefill, (input_ids[:, :n],), prefix, owner=owner)
        past = copy.deepcopy(stored)  # `generate` appends to what it gets: the stored one stays the prefix
    if gen_kwargs.get("num_return_sequences", 1) > 1:
        past.batch_repeat_interleave(gen_kwargs["num_return_sequences"])
    aligned = {k: v for k, v in rest.items() if k in _SEQUENCE_KEYS}
    # No pixel inputs: every visual token is in the cache, and `generate` would feed them to the first
    # forward of the uncached tokens, which hold none.
    return model.generate(
        input_ids=input_ids, position_ids=position_ids, past_key_values=past, **aligned, **gen_kwargs
    )


def visual_prefix_length(model: Any, inputs: Any) -> int:
    """Tokens up to and including the last image / video token; 0 when there is none or nothing after it."""
    input_ids = inputs["input_ids"]
    kinds = inputs.get("mm_token_type_ids")
    if kinds is not None:
        visual = kinds != 0
    else:
        ids = [getattr(model.config, f"{k}_token_id", None) for k in ("image", "video")]
        visual = sum((input_ids == i).long() for i in ids if i is not None) > 0
    columns = visual.any(dim=0).nonzero()
    n = int(columns.max()) + 1 if len(columns) else 0
    return n if 0 < n < input_ids.shape[1] else 0


def _prefill(model: Any, input_ids: Any, **inputs: Any) -> Any:
    """The KV cache of `input_ids` (with their visual inputs and positions)."""
    from transformers import DynamicCache

    past = DynamicCache(config=model.config.get_text_config(decoder=True))
    # logits_to_keep=1: the prefix's logits are never read (a 150k-word lm_head over every token otherwise).
    model(input_ids=input_ids, past_key_values=past, use_cache=True, logits_to_keep=1, **inputs)
    return past
