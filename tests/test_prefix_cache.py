"""The language model's KV cache of the shared prompt prefix (system text + visual tokens), per session.

Tiny random-weight Qwen-VL models on real Charades frames: the answers are noise, so the tests compare
tokens and confidences with and without the cache (and with a plain one-shot `generate`), never content.
"""

from __future__ import annotations

import math
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
import torch

from grounding_agent import Session
from grounding_agent.grounders import vision_cache
from grounding_agent.grounders.hf import HFGrounder, visual_prefix_length
from grounding_agent.grounders.qwen_inputs import build_request, hf_inputs
from grounding_agent.grounders.vision_cache import VisionCache

CLIP = "univtg_charades_Y1HGC.mp4"
QUERIES = ("person opens the door", "person sits down on a chair")
FAMILIES = ("qwen2_5_vl", "qwen3_vl")
GREEDY = {"do_sample": False, "temperature": None, "top_p": None, "top_k": None}

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def frames(real_clips: dict[str, Path]):
    from grounding_agent.media.decode import sample_frames

    return sample_frames(real_clips[CLIP], fps=2.0, start_s=0.0, end_s=4.0, max_pixels=448 * 448)


@pytest.fixture(scope="module")
def grounders(tiny_models: dict[str, Path]) -> dict[str, HFGrounder]:
    return {name: HFGrounder(str(tiny_models[name]), max_new_tokens=10, device="cpu") for name in FAMILIES}


def _inputs(g: HFGrounder, frames, query: str, mode=None):
    return hf_inputs(g.processor, build_request(frames, query, family=g.family, mode=mode))


def _answers(g: HFGrounder, frames, queries=QUERIES, mode=None) -> list[tuple[list[str], list[float]]]:
    with torch.inference_mode():
        return [g._generate(_inputs(g, frames, q, mode)) for q in queries]


@pytest.mark.parametrize("family", FAMILIES)
@pytest.mark.parametrize("mode", ["video", "images"])
def test_the_question_comes_after_the_cached_prefix(grounders, frames, family: str, mode: str) -> None:
    """The prefix ends at the last visual token; the query is entirely after it (nothing reordered)."""
    g = grounders[family]
    inputs = _inputs(g, frames, QUERIES[0], mode)
    n = visual_prefix_length(g.model, inputs)
    ids = inputs["input_ids"][0]
    assert 0 < n < len(ids) and inputs["mm_token_type_ids"][0, n - 1] != 0
    assert not inputs["mm_token_type_ids"][0, n:].any()
    assert QUERIES[0] in g.processor.decode(ids[n:]) and QUERIES[0] not in g.processor.decode(ids[:n])


@pytest.mark.parametrize("family", FAMILIES)
def test_split_prefill_matches_a_one_shot_generate(grounders, frames, family: str) -> None:
    """Positions (M-RoPE) of the continued prompt are right: the same tokens as a plain `generate`, and
    scores equal up to float rounding (a split prefill adds up in another order)."""
    g = grounders[family]
    inputs = _inputs(g, frames, QUERIES[0])
    with torch.inference_mode():
        texts, confidences = g._generate(inputs)
        out = g.model.generate(**inputs, max_new_tokens=g.max_new_tokens, return_dict_in_generate=True,
                               output_scores=True, **GREEDY)  # fmt: skip
    plain = out.sequences[:, inputs["input_ids"].shape[1] :]
    assert texts == g.processor.batch_decode(plain, skip_special_tokens=True)
    logprobs = g.model.compute_transition_scores(out.sequences, out.scores, normalize_logits=True)[0]
    assert confidences[0] == pytest.approx(math.exp(float(logprobs.mean())), rel=1e-5)


@pytest.mark.parametrize("family", FAMILIES)
def test_reused_prefix_gives_identical_texts_and_confidences(grounders, frames, family: str) -> None:
    """Two questions on the same frames: the second reuses the first's prefix KV; outputs as uncached,
    even with an image request in between (it leaves other `rope_deltas` on the model)."""
    g = grounders[family]
    uncached = _answers(g, frames)
    cache = VisionCache()
    with vision_cache.use(cache):
        first = _answers(g, frames, QUERIES[:1])
        _answers(g, frames.subset(np.arange(3)), QUERIES[:1], mode="images")
        second = _answers(g, frames, QUERIES[1:])
    assert first + second == uncached  # texts and confidences, exactly
    assert all(texts[0] for texts, _ in uncached)
    assert cache.hits["lm:prefix"] == 1 and cache.misses["lm:prefix"] == 2
    assert "vision:get_video_features" not in cache.hits  # a hit skips the vision tower altogether


def test_other_frames_are_no_hit(grounders, frames) -> None:
    g = grounders["qwen2_5_vl"]
    other = frames.subset(np.arange(len(frames) - 2))  # other pixels and fewer visual tokens
    expected = _answers(g, other, QUERIES[1:])
    cache = VisionCache()
    with vision_cache.use(cache):
        _answers(g, frames, QUERIES[:1])
        assert _answers(g, other, QUERIES[1:]) == expected
    assert cache.misses["lm:prefix"] == 2 and "lm:prefix" not in cache.hits


def test_same_tokens_other_pixels_are_no_hit(grounders, frames) -> None:
    """Equal prefix token ids are not enough: the visual inputs are part of the key."""
    g = grounders["qwen2_5_vl"]
    darker = replace(frames, pixels=frames.pixels // 2)
    a, b = _inputs(g, frames, QUERIES[0]), _inputs(g, darker, QUERIES[0])
    assert torch.equal(a["input_ids"], b["input_ids"])
    expected = _answers(g, darker, QUERIES[1:])
    cache = VisionCache()
    with vision_cache.use(cache):
        _answers(g, frames, QUERIES[:1])
        assert _answers(g, darker, QUERIES[1:]) == expected
    assert "lm:prefix" not in cache.hits


def test_prefix_entries_count_against_the_byte_budget(grounders, frames) -> None:
    g = grounders["qwen2_5_vl"]
    roomy = VisionCache()
    with vision_cache.use(roomy):
        expected = _answers(g, frames)
    (entry,) = [e for e in roomy.entries() if e.kind == "lm:prefix"]
    tensors = [t for layer in entry.value.layers for t in (layer.keys, layer.values)]
    kv_bytes = sum(t.numel() * t.element_size() for t in tensors)
    assert kv_bytes > 0 and entry.nbytes >= kv_bytes
    tight = VisionCache(max_bytes=kv_bytes - 1)  # no prefix entry fits: computed each time, never kept
    with vision_cache.use(tight):
        assert _answers(g, frames) == expected
    assert tight.nbytes <= tight.max_bytes
    assert "lm:prefix" not in tight.hits and tight.misses["lm:prefix"] == 2


def test_no_active_cache_keeps_nothing(grounders, frames) -> None:
    g = grounders["qwen2_5_vl"]
    assert vision_cache.active() is None
    assert _answers(g, frames, QUERIES[:1]) == _answers(g, frames, QUERIES[:1])
    session = Session(frames.video, g, max_frames=8, vision_cache=False)
    session.ground(QUERIES[0])
    assert session.vision_cache is None and vision_cache.active() is None


def test_sampling_expands_the_prefix_and_draws_as_uncached(tiny_models, frames) -> None:
    """num_samples > 1: the batch-1 prefix is repeated per sample; with one seed, the same samples."""
    g = HFGrounder(str(tiny_models["qwen2_5_vl"]), max_new_tokens=6, num_samples=3, device="cpu")
    texts = {}
    for on in (False, True):
        cache = VisionCache() if on else None
        with vision_cache.use(cache):
            torch.manual_seed(0)
            texts[on] = [g.ground(frames.video, q, frames=frames).raw_text for q in QUERIES]
    assert texts[True] == texts[False] and all(len(t) == 3 for t in texts[True])
    assert cache.hits["lm:prefix"] == 1


@pytest.mark.parametrize("family", FAMILIES)
def test_session_answers_are_unchanged_and_second_question_hits(grounders, real_clips, family: str) -> None:
    """Through `Session.ask` (ground + describe), both families: same answers with and without the cache."""
    g = grounders[family]
    answers = {}
    for on in (True, False):
        session = Session(real_clips[CLIP], g, max_frames=8, vision_cache=on)
        answers[on] = [session.ask(f"when does the {q.split(' ', 1)[1]}?").to_dict() for q in QUERIES]
        if on:
            assert session.vision_cache.hits.get("lm:prefix", 0) >= 1  # the grounding prefix at least
            assert session.vision_cache.misses.get("vision:get_video_features") == 1
    assert answers[True] == answers[False]


def test_toggling_the_adapter_is_no_hit(tiny_models, frames) -> None:
    """`with model.disable_adapter():` mid-session: the prefix computed with the LoRA on is not reused."""
    lora = str(tiny_models["qwen2_5_vl_lora"])
    g = HFGrounder(str(tiny_models["qwen2_5_vl"]), adapter=lora, max_new_tokens=10)
    query = (QUERIES[0],)
    on, off = _answers(g, frames, query), None
    with g.model.disable_adapter():
        off = _answers(g, frames, query)
    assert on != off  # the adapter changes the answer's scores: a shared prefix would show
    cache = VisionCache()
    with vision_cache.use(cache):
        assert _answers(g, frames, query) == on
        with g.model.disable_adapter():
            assert _answers(g, frames, query) == off
        assert _answers(g, frames, query) == on
    assert cache.misses["lm:prefix"] == 2 and cache.hits["lm:prefix"] == 1
