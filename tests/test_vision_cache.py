"""The per-session vision cache: hits on equal frames, never changes a greedy answer, stays bounded.

Tiny random-weight Qwen-VL models on real Charades frames; the answers are noise, so the tests compare
the generated tokens with and without the cache, never an answer's content.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from grounding_agent import Session
from grounding_agent.grounders import vision_cache
from grounding_agent.grounders.hf import HFGrounder
from grounding_agent.grounders.qwen_inputs import build_request, hf_inputs
from grounding_agent.grounders.vision_cache import VisionCache

CLIP = "univtg_charades_Y1HGC.mp4"
QUERIES = ("person opens the door", "person sits down on a chair")


@pytest.fixture(scope="module")
def frames(real_clips: dict[str, Path]):
    from grounding_agent.media.decode import sample_frames

    return sample_frames(real_clips[CLIP], fps=2.0, start_s=0.0, end_s=4.0, max_pixels=448 * 448)


@pytest.fixture(scope="module")
def grounders(tiny_models: dict[str, Path]) -> dict[str, HFGrounder]:
    names = ("qwen2_5_vl", "qwen3_vl")
    return {name: HFGrounder(str(tiny_models[name]), max_new_tokens=12, device="cpu") for name in names}


def _tokens(g: HFGrounder, frames, query: str, mode=None) -> list[int]:
    request = build_request(frames, query, family=g.family, mode=mode)
    inputs = hf_inputs(g.processor, request)
    with torch.inference_mode():
        greedy = {"do_sample": False, "temperature": None, "top_p": None, "top_k": None}
        out = g.model.generate(**inputs, max_new_tokens=12, **greedy)
    return out[0, inputs["input_ids"].shape[1] :].tolist()


@pytest.mark.integration
@pytest.mark.parametrize("family", ["qwen2_5_vl", "qwen3_vl"])
@pytest.mark.parametrize("mode", ["video", "images"])
def test_cached_generation_is_token_identical(grounders, frames, family: str, mode: str) -> None:
    """Two queries on the same frames: the second reuses processor + vision outputs; tokens as uncached."""
    g = grounders[family]
    uncached = [_tokens(g, frames, q, mode) for q in QUERIES]
    cache = VisionCache()
    with vision_cache.use(cache):
        cached = [_tokens(g, frames, q, mode) for q in QUERIES]
    assert cached == uncached
    assert all(len(t) > 0 for t in cached)
    kind = "video" if mode == "video" else "image"
    assert cache.misses[f"vision:get_{kind}_features"] == 1 and cache.hits[f"vision:get_{kind}_features"] == 1
    assert cache.hits[f"processor:{kind}_processor"] == 1


@pytest.mark.integration
def test_other_frames_are_a_miss_and_encoded_anew(grounders, frames) -> None:
    g = grounders["qwen2_5_vl"]
    other = frames.subset(np.arange(len(frames) - 2))  # different pixels: must not reuse the features
    expected = _tokens(g, other, QUERIES[0])
    cache = VisionCache()
    with vision_cache.use(cache):
        _tokens(g, frames, QUERIES[0])
        assert _tokens(g, other, QUERIES[0]) == expected
    assert cache.misses["vision:get_video_features"] == 2 and "vision:get_video_features" not in cache.hits


@pytest.mark.integration
def test_sampled_generation_with_a_cache_runs(tiny_models, frames) -> None:
    """num_samples > 1: generate reshapes the encoder outputs it gets; the stored copy must stay intact."""
    g = HFGrounder(str(tiny_models["qwen2_5_vl"]), max_new_tokens=6, num_samples=3, device="cpu")
    cache = VisionCache()
    with vision_cache.use(cache):
        a = g.ground(frames.video, QUERIES[0], frames=frames)
        b = g.ground(frames.video, QUERIES[1], frames=frames)
    assert len(a.raw_text) == len(b.raw_text) == 3
    # The second reuses the processor output and the prompt prefix's KV cache (so the tower is not run).
    assert cache.hits["processor:video_processor"] == 1 and cache.hits["lm:prefix"] == 1
    assert cache.misses["vision:get_video_features"] == 1


@pytest.mark.integration
def test_session_second_question_reuses_the_vision_outputs(grounders, real_clips) -> None:
    """Through `Session.ask` (ground + describe): same answers with and without the cache; second hits."""
    g = grounders["qwen2_5_vl"]
    answers = {}
    for on in (True, False):
        session = Session(real_clips[CLIP], g, max_frames=8, vision_cache=on)
        answers[on] = [session.ask(f"when does the {q.split(' ', 1)[1]}?").to_dict() for q in QUERIES]
        if on:
            # Encoded once; the second question's prefix KV cache (`lm:prefix`) holds the visual tokens.
            assert session.vision_cache.misses.get("vision:get_video_features") == 1
            assert session.vision_cache.hits.get("processor:video_processor") == 1
            assert session.vision_cache.hits.get("lm:prefix", 0) >= 1
        else:
            assert session.vision_cache is None
    assert answers[True] == answers[False]


def test_cache_is_bounded_and_least_recently_used_goes_first() -> None:
    calls = []

    def encode(x):
        calls.append(x)
        return np.zeros(100, dtype=np.uint8)  # 100 bytes + the 8-byte key array

    cache = VisionCache(max_bytes=250)
    keys = [np.full(1, i, dtype=np.int64) for i in range(3)]
    cache.call("f", encode, (keys[0],), {})
    cache.call("f", encode, (keys[1],), {})
    cache.call("f", encode, (keys[0].copy(),), {})  # equal by value: a hit, and now the most recent
    cache.call("f", encode, (keys[2],), {})  # over 250 bytes: keys[1] is evicted
    assert len(calls) == 3 and len(cache) == 2 and cache.nbytes <= 250
    cache.call("f", encode, (keys[0],), {})
    assert len(calls) == 3
    cache.call("f", encode, (keys[1],), {})
    assert len(calls) == 4
    big = VisionCache(max_bytes=50)
    big.call("f", encode, (keys[0],), {})
    assert len(big) == 0  # larger than the whole budget: computed, not kept


def test_keywords_and_dtypes_are_part_of_the_key() -> None:
    cache = VisionCache()
    x = np.ones(4, dtype=np.float32)
    cache.call("f", lambda a, scale=1: a * scale, (x,), {"scale": 1})
    assert cache.call("f", lambda a, scale=1: a * scale, (x,), {"scale": 2})[0] == 2
    assert cache.call("f", lambda a: a + 1, (x.astype(np.float64),), {})[0] == 2
    assert cache.misses["f"] == 3


def test_without_an_active_cache_nothing_is_kept(grounders, frames) -> None:
    g = grounders["qwen2_5_vl"]
    assert vision_cache.active() is None
    assert _tokens(g, frames, QUERIES[0]) == _tokens(g, frames, QUERIES[0])


@pytest.mark.integration
def test_another_model_on_the_same_frames_is_a_miss(grounders, tiny_models, frames) -> None:
    """Two models in one session (a grounder and a describer, say) never get each other's tower outputs."""
    g1 = grounders["qwen2_5_vl"]
    g2 = HFGrounder(str(tiny_models["qwen2_5_vl"]), max_new_tokens=12, device="cpu")
    with torch.no_grad():
        for p in g2.model.model.visual.parameters():
            p.mul_(-1.5)  # same architecture and processor, other weights
    inputs = hf_inputs(g1.processor, build_request(frames, QUERIES[0], family=g1.family))
    visual = (inputs["pixel_values_videos"], inputs["video_grid_thw"])

    def features(g: HFGrounder) -> torch.Tensor:
        with torch.inference_mode():
            out = g.model.model.get_video_features(*visual)
        return torch.cat(list(getattr(out, "pooler_output", out)))

    expected = features(g2)
    cache = VisionCache()
    with vision_cache.use(cache):
        first = features(g1)
        assert torch.equal(features(g2), expected)
    assert not torch.equal(first, expected)  # the models do differ: a shared entry would have shown
    assert cache.misses["vision:get_video_features"] == 2 and "vision:get_video_features" not in cache.hits
