"""A real vLLM OpenAI-compatible server answers chat completions carrying frames of a real clip."""

from __future__ import annotations

import base64
import io
import socket
import sys

import pytest

from grounding_agent.errors import ConfigError, ServerStartError
from grounding_agent.grounders.serving import VLLMServer

live = pytest.mark.integration

QUESTION = "When does the person drink coffee? Answer with start - end in seconds."


def _jpeg_data_url(pixels) -> str:
    from PIL import Image

    buf = io.BytesIO()
    Image.fromarray(pixels).save(buf, format="JPEG", quality=85)
    return "data:image/jpeg;base64," + base64.b64encode(buf.getvalue()).decode()


def _timestamped_frames(frames) -> list[dict]:
    """One text part with the frame's real time before each image part, then the question."""
    content: list[dict] = []
    for pixels, t_s in zip(frames.pixels, frames.timestamps_s):
        content.append({"type": "text", "text": f"<{t_s:.1f} seconds>"})
        content.append({"type": "image_url", "image_url": {"url": _jpeg_data_url(pixels)}})
    content.append({"type": "text", "text": QUESTION})
    return content


@pytest.fixture(scope="module")
def client(vllm_server):
    import openai

    return openai.OpenAI(base_url=vllm_server.base_url, api_key="EMPTY", timeout=60, max_retries=0)


@live
def test_models_lists_base_and_adapter(client, vllm_server):
    assert {m.id for m in client.models.list()} >= {vllm_server.model, vllm_server.adapter}


def _chat(client, model: str, content: list[dict]):
    return client.chat.completions.create(
        model=model,
        messages=[{"role": "user", "content": content}],
        max_tokens=8,
        temperature=0.0,
        logprobs=True,
    )


@live
def test_frames_with_timestamps_base_and_adapter(client, vllm_server, clip_frames):
    content = _timestamped_frames(clip_frames)
    answers = {name: _chat(client, name, content) for name in (vllm_server.model, vllm_server.adapter)}
    text_only = _chat(client, vllm_server.model, [{"type": "text", "text": QUESTION}])
    for name, resp in answers.items():
        choice = resp.choices[0]
        assert isinstance(choice.message.content, str) and choice.message.content, name
        assert resp.usage.completion_tokens >= 1
        # Every frame became vision tokens: far more prompt tokens than the text alone.
        assert resp.usage.prompt_tokens >= text_only.usage.prompt_tokens + 4 * len(clip_frames), name
    # The adapter is really applied: same greedy request, different token probabilities.
    base_lp = [t.logprob for t in answers[vllm_server.model].choices[0].logprobs.content]
    lora_lp = [t.logprob for t in answers[vllm_server.adapter].choices[0].logprobs.content]
    assert base_lp != pytest.approx(lora_lp, abs=1e-3)


@live
def test_video_url_mp4(client, vllm_server, real_clips):
    data = base64.b64encode(real_clips["univtg_charades_Y1HGC.mp4"].read_bytes()).decode()
    content = [
        {"type": "video_url", "video_url": {"url": "data:video/mp4;base64," + data}},
        {"type": "text", "text": QUESTION},
    ]
    resp = _chat(client, vllm_server.model, content)
    assert isinstance(resp.choices[0].message.content, str) and resp.choices[0].message.content
    assert resp.usage.prompt_tokens > 100  # the video's tokens, not just the question's


# --- start/stop failure paths (no vLLM needed) -------------------------------------------------------


def test_command_line(tmp_path, tiny_models):
    lora = tiny_models["qwen2_5_vl_lora"]
    server = VLLMServer(tiny_models["qwen2_5_vl"], served_model_name="m", loras={"a": lora}, port=8123)
    cmd = server.command()
    assert cmd[1:3] == ["-m", "vllm.entrypoints.openai.api_server"]
    assert cmd[cmd.index("--lora-modules") + 1] == f"a={tiny_models['qwen2_5_vl_lora']}"
    assert cmd[cmd.index("--limit-mm-per-prompt") + 1] == '{"image": 16, "video": 1}'
    assert server.base_url == "http://127.0.0.1:8123/v1"
    assert server.environment()["HF_HUB_OFFLINE"] == "1"  # local weights


def test_not_an_adapter_is_a_config_error(tmp_path, tiny_models):
    with pytest.raises(ConfigError, match="adapter_config.json"):
        VLLMServer(tiny_models["qwen2_5_vl"], loras={"a": tmp_path})


def test_port_in_use_is_a_config_error(tiny_models):
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        sock.listen()
        server = VLLMServer(tiny_models["qwen2_5_vl"], port=sock.getsockname()[1], python=sys.executable)
        with pytest.raises(ConfigError, match="already in use"):
            server.start(timeout_s=5)


def test_process_dying_at_start_raises_with_log_tail(tmp_path, tiny_models):
    # This env's python has no vLLM: the real command dies at import, like a broken install would.
    server = VLLMServer(tiny_models["qwen2_5_vl"], python=sys.executable, log_path=tmp_path / "s.log")
    with pytest.raises(ServerStartError, match="exited with code 1") as info:
        server.start(timeout_s=60)
    assert "No module named" in info.value.log_tail
    assert info.value.log_path == str(tmp_path / "s.log")
    assert not server.running
