"""VLLMGrounder against the live vLLM CPU server (session fixture `vllm_server`, tiny Qwen2.5-VL + LoRA)."""

from __future__ import annotations

import asyncio
import json
import math
import re
from pathlib import Path

import numpy as np
import pytest

from grounding_agent.errors import ConfigError, ServerError
from grounding_agent.grounders.serving import free_port
from grounding_agent.grounders.vllm import VLLMGrounder, answer_regex

CLIP = "univtg_charades_Y1HGC.mp4"
QUERY = "person opens the door"
# Bound for logprob differences between transformers and vLLM at one position (both in bfloat16;
# different kernels), and for what counts as a near-tie between two candidate tokens.
TOLERANCE_NATS = 0.15


@pytest.fixture(scope="module")
def frames(real_clips: dict[str, Path]):
    from grounding_agent.media.decode import sample_frames

    return sample_frames(real_clips[CLIP], fps=2.0, max_frames=8, max_pixels=448 * 448, cache=True)


def _inside(result, duration_s: float) -> None:
    assert result.moments, "a grounding always returns at least the fallback"
    for m in result.moments:
        assert 0.0 <= m.start_s <= m.end_s <= duration_s
        assert 0.0 <= m.score <= 1.0


@pytest.mark.integration
def test_grounds_with_base_model_and_adapter(vllm_server, frames) -> None:
    for model in (vllm_server.model, vllm_server.adapter):
        g = VLLMGrounder(vllm_server.base_url, model, max_tokens=16)
        result = g.ground(frames.video, QUERY, frames=frames, top_k=2)
        _inside(result, frames.video.duration_s)
        assert len(result.raw_text) == 1 and result.info["model"] == model
        assert result.info["confidence"] == "mean_token_logprob"
        assert set(result.timings_s) == {"decode", "preprocess", "model"}


@pytest.mark.integration
def test_default_model_is_the_first_served(vllm_server) -> None:
    g = VLLMGrounder(vllm_server.base_url)
    assert g.model == vllm_server.model
    assert set(g.served_models()) == {vllm_server.model, vllm_server.adapter}


@pytest.mark.integration
@pytest.mark.parametrize(("prompt", "top_k"), [("grounding", 1), ("grounding", 3), ("reasoning", 1)])
def test_structured_outputs_force_the_format(vllm_server, frames, prompt: str, top_k: int) -> None:
    """The random model writes noise unless forced: every answer must match the regex we sent."""
    g = VLLMGrounder(vllm_server.base_url, vllm_server.model, prompt=prompt, structured=True, max_tokens=200)
    result = g.ground(frames.video, QUERY, frames=frames, top_k=top_k)
    regex = answer_regex(prompt, top_k, frames.video.duration_s, g.think_chars)
    assert all(re.fullmatch(regex, text) for text in result.raw_text), result.raw_text
    _inside(result, frames.video.duration_s)


@pytest.mark.integration
def test_sampled_answers_scored_by_agreement(vllm_server, frames) -> None:
    g = VLLMGrounder(vllm_server.base_url, vllm_server.model, num_samples=3, structured=True, max_tokens=24)
    result = g.ground(frames.video, QUERY, frames=frames)
    assert len(result.raw_text) == 3 and result.info["confidence"] == "agreement"
    _inside(result, frames.video.duration_s)


@pytest.mark.integration
def test_async_batch_keeps_order_and_bounds_concurrency(vllm_server, frames) -> None:
    g = VLLMGrounder(vllm_server.base_url, vllm_server.model, concurrency=2, structured=True, max_tokens=16)
    queries = [f"{QUERY} {i}" for i in range(4)]
    in_flight, peak = 0, 0
    create = None

    async def main():
        nonlocal create
        client, _ = g._async_state()
        create = client.chat

        async def counting(body):
            nonlocal in_flight, peak
            in_flight += 1
            peak = max(peak, in_flight)
            try:
                return await create(body)
            finally:
                in_flight -= 1

        client.chat = counting
        return await g.aground_many([(frames.video, q) for q in queries], frames=[frames] * 4)

    results = asyncio.run(main())
    assert len(results) == 4 and 1 <= peak <= 2
    for result in results:
        _inside(result, frames.video.duration_s)


@pytest.mark.integration
def test_blocking_batch_closes_its_async_client(vllm_server, frames) -> None:
    """`ground_many` owns its event loop, so it must close that loop's client before the loop ends."""
    g = VLLMGrounder(vllm_server.base_url, vllm_server.model, structured=True, max_tokens=16)
    results = g.ground_many([(frames.video, QUERY), (frames.video, f"{QUERY} again")], frames=[frames] * 2)
    assert len(results) == 2 and g._async == {}
    for result in results:
        _inside(result, frames.video.duration_s)


def test_server_down_is_a_typed_error_naming_the_url() -> None:
    url = f"http://127.0.0.1:{free_port()}/v1"
    with pytest.raises(ServerError, match=re.escape(url)):
        VLLMGrounder(url, max_retries=0, timeout_s=2)


@pytest.mark.integration
def test_unknown_model_name_is_a_typed_error(vllm_server, frames) -> None:
    g = VLLMGrounder(vllm_server.base_url, "no-such-adapter", max_retries=0)
    with pytest.raises(ServerError, match="HTTP 404"):
        g.ground(frames.video, QUERY, frames=frames)


@pytest.mark.integration
@pytest.mark.slow
def test_hf_and_vllm_agree_token_by_token(vllm_server, tiny_models, frames, capsys) -> None:
    """Same tiny Qwen2.5-VL, same frames (lossless PNG), same prompt, greedy, through both backends.

    What must hold: the prompts are the same length in tokens (same chat template, same image tokens);
    tokens agree up to the first position where transformers' own top candidates are a near-tie; log-probs
    of agreeing tokens match within TOLERANCE_NATS. vLLM on CPU downcasts float32 checkpoints to bfloat16,
    so transformers runs in bfloat16 too; different attention kernels still make ties break differently
    on a random model, whose next-token distribution is almost flat.
    """
    import openai
    import torch

    from grounding_agent.grounders.hf import HFGrounder
    from grounding_agent.grounders.qwen_inputs import build_request, hf_inputs, openai_messages

    max_tokens = 24
    request = build_request(frames, QUERY, family="qwen2_5_vl", mode="images")
    model = str(tiny_models["qwen2_5_vl"])
    hf = HFGrounder(model, dtype="bfloat16", mode="images", max_new_tokens=max_tokens)
    inputs = hf_inputs(hf.processor, request)
    with torch.inference_mode():
        out = hf.model.generate(
            **inputs,
            max_new_tokens=max_tokens,
            do_sample=False,
            output_scores=True,
            return_dict_in_generate=True,
        )
    hf_tokens = out.sequences[0, inputs["input_ids"].shape[1] :].tolist()
    hf_logprobs = [torch.log_softmax(s[0].float(), -1) for s in out.scores]

    client = openai.OpenAI(base_url=vllm_server.base_url, api_key="EMPTY")
    response = client.chat.completions.create(
        model=vllm_server.model,
        messages=openai_messages(request, image_format="png"),
        max_tokens=max_tokens,
        temperature=0.0,
        logprobs=True,
        top_logprobs=2,
        extra_body={"return_tokens_as_token_ids": True},
    )
    choice = response.choices[0]
    vllm_tokens = [int(t.token.split(":")[1]) for t in choice.logprobs.content]
    vllm_logprobs = [t.logprob for t in choice.logprobs.content]

    assert response.usage.prompt_tokens == inputs["input_ids"].shape[1]
    n = min(len(hf_tokens), len(vllm_tokens))
    same = next((i for i in range(n) if hf_tokens[i] != vllm_tokens[i]), n)
    for i in range(same):
        assert abs(hf_logprobs[i][hf_tokens[i]].item() - vllm_logprobs[i]) < TOLERANCE_NATS
    diffs = [abs(hf_logprobs[i][hf_tokens[i]].item() - vllm_logprobs[i]) for i in range(same)]
    if same < n:
        lp = hf_logprobs[same]
        margin = lp[hf_tokens[same]].item() - lp[vllm_tokens[same]].item()
        assert 0.0 <= margin < TOLERANCE_NATS, f"diverged at token {same} with a clear HF margin {margin:.3f}"
    else:
        margin = math.nan
    with capsys.disabled():
        print(
            "\nHF vs vLLM (tiny qwen2.5-vl, bf16, 8 PNG frames): "
            + json.dumps(
                {
                    "prompt_tokens": response.usage.prompt_tokens,
                    "generated": n,
                    "identical_prefix_tokens": same,
                    "hf_margin_at_divergence_nats": None if math.isnan(margin) else round(margin, 4),
                    "max_logprob_diff_on_prefix": round(max(diffs or [0.0]), 4),
                    "identical_text": hf.processor.decode(hf_tokens, skip_special_tokens=True)
                    == choice.message.content,
                }
            )
        )
    assert np.isfinite(vllm_logprobs).all()


# --- frames prepared in the background (the CLI's FramePrefetch), the TLS context -----------------------


def test_prefetched_frames_and_images_equal_the_inline_ones(real_clips: dict[str, Path]) -> None:
    """What the worker thread decodes and encodes is what `ground` would send, byte for byte."""
    from grounding_agent.grounders.qwen_inputs import build_request, openai_messages
    from grounding_agent.grounders.vllm import FramePrefetch, encode_frames
    from grounding_agent.media.decode import sample_frames
    from grounding_agent.media.video import open_video

    video = open_video(real_clips[CLIP])
    sampling = {"fps": 2.0, "max_frames": 12, "max_pixels": 448 * 448}
    prepared = FramePrefetch(video, **sampling).result()
    inline = sample_frames(video, **sampling)  # no cache: decoded anew, on every core
    assert np.array_equal(prepared.frames.pixels, inline.pixels)
    assert np.array_equal(prepared.frames.timestamps_s, inline.timestamps_s)
    request = build_request(inline, QUERY, family=None, mode="images")
    assert openai_messages(request, "jpeg", dict(prepared.urls)) == openai_messages(request, "jpeg")
    assert set(prepared.timings_s) == {"decode", "preprocess"} and prepared.timings_s["decode"] > 0
    # the parallel encoder fills only what is missing, with the same bytes
    partial = {0: prepared.urls[0]}
    assert encode_frames(inline, "jpeg", partial) is partial and partial == prepared.urls


def test_prefetch_decode_error_is_the_same_typed_error(tmp_path: Path) -> None:
    """A file that opens but fails to decode: the worker's CorruptVideoError is raised by `result()`, the
    same error (type and text) as decoding inline, and no thread traceback is printed."""
    import threading

    from grounding_agent.errors import CorruptVideoError
    from grounding_agent.grounders.vllm import FramePrefetch
    from grounding_agent.media.decode import sample_frames
    from grounding_agent.media.video import open_video
    from tests.videogen import corrupt_middle, make_video

    good = make_video(tmp_path / "cfr.mp4", duration_s=2.0, fps=10, gop=5)
    path = corrupt_middle(good, tmp_path / "bad.mp4")
    video = open_video(path)
    with pytest.raises(CorruptVideoError) as inline:
        sample_frames(video, fps=10, max_frames=20)
    hooked: list = []
    previous, threading.excepthook = threading.excepthook, hooked.append
    try:
        with pytest.raises(CorruptVideoError) as background:
            FramePrefetch(video, fps=10, max_frames=20, max_pixels=None).result()
    finally:
        threading.excepthook = previous
    assert str(background.value) == str(inline.value) and "fail to decode" in str(background.value)
    assert hooked == []


def test_ground_prefetched_sends_what_ground_sends(real_clips: dict[str, Path], monkeypatch) -> None:
    """Against an OpenAI-compatible test double: the same request body, moments and timing keys."""
    from grounding_agent.grounders.vllm import FramePrefetch
    from grounding_agent.media.video import open_video
    from tests.test_hostile_servers import MisbehavingServerForTests

    server = MisbehavingServerForTests("good")
    try:
        video = open_video(real_clips[CLIP])
        sent: list[dict] = []
        results = []
        for prefetched in (False, True):
            g = VLLMGrounder(server.url, "m", max_frames=6)
            call = g.chat_completion
            monkeypatch.setattr(g, "chat_completion", lambda call=call, **kw: sent.append(kw) or call(**kw))
            if prefetched:
                spec = {"fps": g.fps, "max_frames": g.max_frames, "max_pixels": g.max_pixels}
                results.append(g.ground_prefetched(video, QUERY, FramePrefetch(video, **spec), top_k=2))
            else:
                results.append(g.ground(video, QUERY, top_k=2))
    finally:
        server.close()
    assert sent[0] == sent[1]
    assert results[0].moments == results[1].moments
    assert list(results[0].timings_s) == list(results[1].timings_s) == ["decode", "preprocess", "model"]


def test_tls_context_is_made_once_and_a_failure_is_not_kept(monkeypatch, tmp_path: Path) -> None:
    import ssl

    from grounding_agent.grounders import prefetch

    monkeypatch.setattr(prefetch, "_TLS", None)
    monkeypatch.setenv("SSL_CERT_FILE", str(tmp_path / "missing.pem"))
    with pytest.raises(ConfigError, match=r"\$SSL_CERT_FILE=.*missing\.pem.*unset it"):
        prefetch.tls_context()
    monkeypatch.delenv("SSL_CERT_FILE")
    monkeypatch.delenv("SSL_CERT_DIR", raising=False)
    ctx = prefetch.tls_context()
    assert ctx is prefetch.tls_context()
    assert ctx.verify_mode == ssl.CERT_REQUIRED and ctx.check_hostname
    assert ctx.get_ca_certs(), "certifi's CA bundle is loaded"
