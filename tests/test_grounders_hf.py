"""HFGrounder with the tiny random-weight Qwen-VL models on real Charades frames.

The models are random, so their answers are noise: tests check what reaches the model (timestamps,
fps), the invariants of what comes back, and the confidence arithmetic — never a model's answer.
"""

from __future__ import annotations

import math
import re
from pathlib import Path

import numpy as np
import pytest
import torch

from grounding_agent.errors import ConfigError, ModelLoadError
from grounding_agent.grounders import GROUNDERS
from grounding_agent.grounders.base import Grounding, moments_from_answers, rank_candidates
from grounding_agent.grounders.hf import HFGrounder
from grounding_agent.grounders.qwen_inputs import build_request, frame_label, hf_inputs
from grounding_agent.types import Moment

CLIP = "univtg_charades_Y1HGC.mp4"
QUERY = "person opens the door"


@pytest.fixture(scope="module")
def frames_2fps(real_clips: dict[str, Path]):
    """The first 4 s of a real Charades clip sampled at 2 fps: 8 frames with their real timestamps."""
    from grounding_agent.media.decode import sample_frames

    frames = sample_frames(real_clips[CLIP], fps=2.0, start_s=0.0, end_s=4.0, max_pixels=448 * 448)
    assert len(frames) == 8 and frames.fps == pytest.approx(2.0)
    return frames


@pytest.fixture(scope="module")
def grounders(tiny_models: dict[str, Path]) -> dict[str, HFGrounder]:
    names = ("qwen2_vl", "qwen2_5_vl", "qwen3_vl")
    return {name: HFGrounder(str(tiny_models[name]), max_new_tokens=12) for name in names}


def _inputs(grounder: HFGrounder, frames, mode=None):
    request = build_request(frames, QUERY, family=grounder.family, mode=mode or grounder.mode)
    return request, hf_inputs(grounder.processor, request)


@pytest.mark.integration
def test_qwen2_5_vl_receives_real_fps_through_mrope(grounders, frames_2fps) -> None:
    """second_per_grid_ts = temporal_patch_size / 2 fps = 1 s; mRoPE's temporal ids step by exactly that."""
    g = grounders["qwen2_5_vl"]
    request, inputs = _inputs(g, frames_2fps)
    assert request.mode == "video"
    assert list(inputs["second_per_grid_ts"]) == pytest.approx([2 / 2.0])
    positions, _ = g.model.model.get_rope_index(
        inputs["input_ids"],
        inputs["mm_token_type_ids"],
        video_grid_thw=inputs["video_grid_thw"],
        second_per_grid_ts=torch.tensor(inputs["second_per_grid_ts"]),
    )
    is_video = inputs["input_ids"][0] == g.processor.video_token_id
    temporal = torch.unique(positions[0, 0, is_video]).tolist()
    tokens_per_second = g.model.config.vision_config.tokens_per_second
    steps_s = np.diff(temporal) / tokens_per_second
    # 8 frames -> 4 temporal patches of 2 frames, 1 s apart in real time (frames 0, 2, 4, 6).
    assert len(temporal) == 4
    real_steps_s = np.diff(frames_2fps.timestamps_s[::2])
    assert steps_s == pytest.approx(real_steps_s, abs=0.01)


@pytest.mark.integration
def test_qwen2_5_vl_without_metadata_would_be_wrong(grounders, frames_2fps) -> None:
    """Why metadata is always passed: the processor alone assumes another fps (the silent trap)."""
    g = grounders["qwen2_5_vl"]
    text = g.processor.apply_chat_template(
        [{"role": "user", "content": [{"type": "video"}, {"type": "text", "text": QUERY}]}],
        tokenize=False,
        add_generation_prompt=True,
    )
    bare = g.processor(text=[text], videos=[frames_2fps.pixels], do_sample_frames=False, return_tensors="pt")
    assert list(bare["second_per_grid_ts"]) != pytest.approx([1.0])


@pytest.mark.integration
def test_qwen3_vl_receives_real_timestamp_markers(grounders, frames_2fps) -> None:
    g = grounders["qwen3_vl"]
    _, inputs = _inputs(g, frames_2fps)
    text = g.processor.tokenizer.decode(inputs["input_ids"][0])
    markers = [float(t) for t in re.findall(r"<(\d+\.\d) seconds>", text)]
    # One marker per temporal patch (2 frames): the mean of the pair's real timestamps.
    pairs = frames_2fps.timestamps_s.reshape(-1, 2).mean(axis=1)
    assert markers == pytest.approx([round(t, 1) for t in pairs], abs=0.051)
    assert markers == pytest.approx([0.2, 1.2, 2.2, 3.2], abs=0.051)


@pytest.mark.integration
def test_qwen2_vl_gets_timestamp_text_before_each_frame(grounders, frames_2fps) -> None:
    g = grounders["qwen2_vl"]
    request, inputs = _inputs(g, frames_2fps)
    assert request.mode == "images"
    text = g.processor.tokenizer.decode(inputs["input_ids"][0])
    labels = re.findall(r"(<\d+\.\d seconds>)<\|vision_start\|>", text)
    assert labels == [frame_label(t) for t in frames_2fps.timestamps_s]
    assert int(inputs["image_grid_thw"].shape[0]) == 8


@pytest.mark.integration
@pytest.mark.parametrize("family", ["qwen2_vl", "qwen2_5_vl", "qwen3_vl"])
def test_ground_on_real_clip_stays_inside_the_video(grounders, real_clips, family: str) -> None:
    from grounding_agent.media.video import open_video

    g = grounders[family]
    g.max_frames = 8
    video = open_video(real_clips[CLIP])
    result = g.ground(video, QUERY, top_k=3)
    assert 1 <= len(result.moments) <= 3 and len(result.raw_text) == 1
    for m in result.moments:
        assert 0.0 <= m.start_s <= m.end_s <= video.duration_s
        assert 0.0 <= m.score <= 1.0
    assert set(result.timings_s) == {"decode", "preprocess", "model"}
    assert result.info["family"] == family and result.info["confidence"] == "mean_token_logprob"
    # Either the answer parsed, or the failure is recorded and the fallback says so.
    assert bool(result.failures) == (result.info.get("fallback") == "whole_video")
    pred = result.to_prediction("q1", video.path.stem, QUERY)
    assert pred.extra["raw_text"] == result.raw_text


@pytest.mark.integration
def test_greedy_confidence_is_the_mean_token_logprob(grounders, frames_2fps) -> None:
    """Recompute the answer's token log-probs with one teacher-forced forward pass and compare."""
    g = grounders["qwen2_5_vl"]
    _, inputs = _inputs(g, frames_2fps)
    with torch.inference_mode():
        texts, confidences = g._generate(inputs)
        out = g.model.generate(**inputs, max_new_tokens=g.max_new_tokens, do_sample=False)
        new = out[0, inputs["input_ids"].shape[1] :]
        # Extend the mm_token_type_ids with text (0) for the generated tokens.
        full = dict(inputs)
        full["input_ids"] = out
        full["attention_mask"] = torch.ones_like(out)
        full["mm_token_type_ids"] = torch.cat(
            [inputs["mm_token_type_ids"], torch.zeros_like(new).unsqueeze(0)], dim=1
        )
        logits = g.model(**full).logits[0, inputs["input_ids"].shape[1] - 1 : -1]
    logprobs = torch.log_softmax(logits.float(), dim=-1).gather(1, new.unsqueeze(1)).squeeze(1)
    special = set(g.processor.tokenizer.all_special_ids)
    kept = [lp for tok, lp in zip(new.tolist(), logprobs.tolist()) if tok not in special]
    assert texts[0] == g.processor.tokenizer.decode(new, skip_special_tokens=True)
    assert confidences[0] == pytest.approx(math.exp(sum(kept) / len(kept)), rel=1e-3)


@pytest.mark.integration
def test_sampled_candidates_use_agreement(tiny_models, frames_2fps) -> None:
    g = HFGrounder(str(tiny_models["qwen2_5_vl"]), num_samples=3, max_new_tokens=8)
    result = g.ground(frames_2fps.video, QUERY, frames=frames_2fps)
    assert len(result.raw_text) == 3
    assert result.info["confidence"] == "agreement"
    assert all(0.0 <= m.score <= 1.0 for m in result.moments)


@pytest.mark.integration
def test_peft_adapter_is_applied(tiny_models, frames_2fps) -> None:
    from peft import PeftModel

    base, adapter = str(tiny_models["qwen2_5_vl"]), str(tiny_models["qwen2_5_vl_lora"])
    g = GROUNDERS["hf"](base, adapter=adapter, max_new_tokens=4)
    assert isinstance(g.model, PeftModel)
    assert g.name.startswith("hf:") and g.ground(frames_2fps.video, QUERY, frames=frames_2fps).raw_text


@pytest.mark.integration
def test_bad_model_or_adapter_is_a_typed_error(tmp_path, tiny_models) -> None:
    with pytest.raises(ConfigError, match="no such folder"):  # refused before anything loads
        HFGrounder(str(tmp_path / "no-such-model"))
    with pytest.raises(ConfigError, match="adapter .*no config.json"):
        HFGrounder(str(tiny_models["qwen2_5_vl"]), adapter=str(tmp_path))
    (tmp_path / "config.json").write_text("{}")  # a folder that looks saved but is not a PEFT adapter
    with pytest.raises(ModelLoadError, match="adapter"):
        HFGrounder(str(tiny_models["qwen2_5_vl"]), adapter=str(tmp_path))


@pytest.mark.integration
@pytest.mark.slow
def test_4bit_quantized_model_grounds(tiny_models, frames_2fps) -> None:
    g = HFGrounder(str(tiny_models["qwen2_5_vl"]), quantization="4bit", max_new_tokens=4)
    assert any("4bit" in type(m).__name__ for m in g.model.modules())
    result = g.ground(frames_2fps.video, QUERY, frames=frames_2fps)
    assert result.moments and result.raw_text


# --- the scoring shared by the model grounders (no model needed) -----------------------------------


def test_answers_become_video_time_with_confidence() -> None:
    g = Grounding(moments=[])
    texts = ["2.00 - 5.00 seconds (0.50)", "no idea", "20 - 90 seconds"]
    confidences = [0.8, 0.9, 1.0]
    got = moments_from_answers(
        g, texts, confidences, duration_s=40.0, model_duration_s=30.0, time_offset_s=10.0
    )
    # stated 0.5 x answer confidence 0.8; shifted by the first frame's time; clamped to the model's view
    assert got[0] == [Moment(12.0, 15.0, 0.4)]
    assert got[1] == [] and [f.reason for f in g.failures] == ["no numbers in the answer"]
    assert got[2] == [Moment(30.0, 40.0, 1.0)]


def test_agreement_ranks_the_consensus_first() -> None:
    answers = [[Moment(10.0, 20.0)], [Moment(11.0, 20.0)], [Moment(0.0, 3.0)], []]
    ranked = rank_candidates(answers, top_k=3, sampled=True)
    assert ranked[0].start_s in (10.0, 11.0) and ranked[0].score == pytest.approx((0.9 + 0.0) / 2)
    assert ranked[-1] == Moment(0.0, 3.0, 0.0)
    greedy = rank_candidates([[Moment(1.0, 2.0, 0.3), Moment(4.0, 5.0, 0.9)]], top_k=1, sampled=False)
    assert greedy == [Moment(4.0, 5.0, 0.9)]
