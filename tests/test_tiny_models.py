"""The tiny random-weight models load through the real classes and see a real clip with its real time."""

from __future__ import annotations

import hashlib
import re
from pathlib import Path

import numpy as np
import pytest

pytestmark = pytest.mark.integration

QWEN_GENERATIONS = ["qwen2_vl", "qwen2_5_vl", "qwen3_vl"]


def _video_metadata(frames):
    from transformers.video_utils import VideoMetadata

    return VideoMetadata(
        total_num_frames=frames.video.num_frames,
        fps=frames.video.avg_fps,
        frames_indices=[int(i) for i in frames.indices],
        duration=frames.video.duration_s,
        width=frames.video.width,
        height=frames.video.height,
    )


def _video_inputs(processor, frames, question: str = "When does the person drink coffee?"):
    messages = [{"role": "user", "content": [{"type": "video"}, {"type": "text", "text": question}]}]
    prompt = processor.apply_chat_template(messages, tokenize=False, add_generation_prompt=True)
    return processor(
        text=[prompt],
        videos=[frames.pixels],
        video_metadata=[_video_metadata(frames)],
        do_sample_frames=False,
        return_tensors="pt",
    )


@pytest.fixture(scope="module", params=QWEN_GENERATIONS)
def qwen(request, tiny_models):
    from transformers import AutoModelForImageTextToText, AutoProcessor

    path = tiny_models[request.param]
    model = AutoModelForImageTextToText.from_pretrained(path).eval()
    return request.param, AutoProcessor.from_pretrained(path), model


def test_qwen_generates_from_real_clip(qwen, clip_frames):
    import torch

    name, processor, model = qwen
    inputs = _video_inputs(processor, clip_frames)
    merge = processor.video_processor.merge_size
    grid = inputs["video_grid_thw"][0]
    assert grid[0] == -(-len(clip_frames) // processor.video_processor.temporal_patch_size)
    video_pad = model.config.video_token_id
    assert int((inputs["input_ids"] == video_pad).sum()) == int(grid.prod()) // merge**2
    with torch.no_grad():
        out = model.generate(**inputs, max_new_tokens=6, do_sample=False)
    new_tokens = out[0, inputs["input_ids"].shape[1] :]
    assert 1 <= len(new_tokens) <= 6
    assert int(new_tokens.max()) < model.get_output_embeddings().weight.shape[0]  # ids the model can emit
    with torch.no_grad():  # greedy decoding of the same inputs gives the same tokens
        assert torch.equal(model.generate(**inputs, max_new_tokens=6, do_sample=False), out)


def test_qwen2_5_vl_gets_real_seconds_per_grid(tiny_models, clip_frames):
    """second_per_grid_ts must be real time (without metadata it silently assumes 24 fps)."""
    from transformers import AutoProcessor

    processor = AutoProcessor.from_pretrained(tiny_models["qwen2_5_vl"])
    inputs = _video_inputs(processor, clip_frames)
    frame_step_s = float(np.mean(np.diff(clip_frames.timestamps_s)))
    expected_s = processor.video_processor.temporal_patch_size * frame_step_s
    assert float(inputs["second_per_grid_ts"][0]) == pytest.approx(expected_s, rel=0.02)


def test_qwen3_vl_prompt_carries_real_timestamps(tiny_models, clip_frames):
    """Qwen3-VL's `<t seconds>` markers must be the frames' real times (mean of each 2-frame group)."""
    from transformers import AutoProcessor

    processor = AutoProcessor.from_pretrained(tiny_models["qwen3_vl"])
    inputs = _video_inputs(processor, clip_frames)
    text = processor.decode(inputs["input_ids"][0])
    markers = [float(t) for t in re.findall(r"<(\d+(?:\.\d+)?) seconds>", text)]
    stamps = clip_frames.timestamps_s
    expected = [(stamps[i] + stamps[min(i + 1, len(stamps) - 1)]) / 2 for i in range(0, len(stamps), 2)]
    assert markers == pytest.approx(expected, abs=0.1)
    assert markers[-1] > 0.75 * clip_frames.video.duration_s  # spans the clip, not 0.0, 0.2, ...


def test_clip_embeds_frames_and_text(tiny_models, clip_frames):
    import torch
    from transformers import CLIPModel, CLIPProcessor

    processor = CLIPProcessor.from_pretrained(tiny_models["clip"])
    model = CLIPModel.from_pretrained(tiny_models["clip"]).eval()
    tokens = processor.tokenizer("a person opens a door.")
    # The real OpenAI CLIP vocabulary: start/end ids and whole-word tokens.
    assert tokens["input_ids"][0] == 49406 and tokens["input_ids"][-1] == 49407
    words = processor.tokenizer.convert_ids_to_tokens(tokens["input_ids"])[1:4]
    assert words == ["a</w>", "person</w>", "opens</w>"]
    inputs = processor(
        text=["a person drinks coffee", "a dog"],
        images=list(clip_frames.pixels),
        return_tensors="pt",
        padding=True,
    )
    with torch.no_grad():
        out = model(**inputs)
    dim = model.config.projection_dim
    assert out.image_embeds.shape == (len(clip_frames), dim)
    assert out.text_embeds.shape == (2, dim)
    assert torch.isfinite(out.logits_per_image).all()
    assert not torch.allclose(out.image_embeds[0], out.image_embeds[-1])  # other frame, other vector


def test_lora_adapter_loads_and_changes_logits(tiny_models):
    import torch
    from peft import PeftModel
    from transformers import AutoModelForImageTextToText, AutoTokenizer

    base_dir = tiny_models["qwen2_5_vl"]
    tokenizer = AutoTokenizer.from_pretrained(base_dir)
    ids = tokenizer("the person opens the door at 12.5 seconds", return_tensors="pt")
    base = AutoModelForImageTextToText.from_pretrained(base_dir).eval()
    with torch.no_grad():
        base_logits = base(**ids).logits
    model = PeftModel.from_pretrained(base, tiny_models["qwen2_5_vl_lora"]).eval()
    with torch.no_grad():
        lora_logits = model(**ids).logits
        with model.disable_adapter():
            off_logits = model(**ids).logits
    assert not torch.allclose(lora_logits, base_logits, atol=1e-4)
    torch.testing.assert_close(off_logits, base_logits)


def test_qwen_tokenizer_splits_digits(tiny_models):
    from transformers import AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(tiny_models["qwen2_5_vl"])
    tokens = tokenizer.tokenize("from 12.5 to 30.7")
    assert [t for t in tokens if any(c.isdigit() for c in t)] == ["1", "2", "5", "3", "0", "7"]
    assert 1000 <= len(tokenizer) <= 2100
    special = [
        "<|im_start|>", "<|im_end|>", "<|vision_start|>", "<|vision_end|>", "<|image_pad|>", "<|video_pad|>",
    ]  # fmt: skip
    assert all(len(tokenizer.tokenize(t)) == 1 for t in special)


def _digest(folder: Path) -> dict[str, str]:
    files = sorted(p for p in folder.iterdir() if p.is_file())
    return {p.name: hashlib.sha256(p.read_bytes()).hexdigest() for p in files}


@pytest.mark.slow
def test_build_is_deterministic_and_cached(tmp_path, tiny_models):
    from tests.assets.build_tiny_models import cached_tiny_models

    fresh = cached_tiny_models(tmp_path)
    assert set(fresh) == set(tiny_models)
    for name in ("qwen2_5_vl", "qwen3_vl", "qwen2_5_vl_lora"):
        assert _digest(fresh[name]) == _digest(tiny_models[name]), name
    done = fresh["clip"].parent / "DONE"
    before = done.stat().st_mtime_ns
    assert cached_tiny_models(tmp_path) == fresh
    assert done.stat().st_mtime_ns == before  # second call reused the cache
    assert not list(tmp_path.glob("*.tmp-*"))  # no half-built folder left behind
