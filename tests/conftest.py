"""Shared fixtures: paths to the real data in ../shared/data, generated videos, tiny models, vLLM server."""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
SHARED_DATA = REPO.parent / "shared" / "data"
VIDEOS = SHARED_DATA / "videos"
REAL_CLIPS = ["univtg_charades_Y1HGC.mp4", "timer1_charades_OHOFG.mp4", "decord_flipping_a_pancake.mkv"]


@pytest.fixture(scope="session")
def shared_data() -> Path:
    if not SHARED_DATA.is_dir():
        pytest.fail(
            f"real test data missing: expected {SHARED_DATA} (the shared/ folder beside the checkout)"
        )
    return SHARED_DATA


@pytest.fixture(scope="session")
def real_clips(shared_data: Path) -> dict[str, Path]:
    """name -> path of the three real clips."""
    return {name: VIDEOS / name for name in REAL_CLIPS}


def sidecar(clip: Path) -> dict:
    """The JSON facts file written beside each real clip."""
    return json.loads(clip.with_suffix(".json").read_text())


# --- tiny random-weight models of the real architectures ------------------------------------------


@pytest.fixture(scope="session")
def tiny_models() -> dict[str, Path]:
    """name -> folder of the tiny models (qwen2_vl, qwen2_5_vl, qwen3_vl, clip, qwen2_5_vl_lora).

    Built once per version of tests/assets/build_tiny_models.py under ~/.cache/grounding-agent.
    """
    from tests.assets.build_tiny_models import cached_tiny_models

    return cached_tiny_models()


@pytest.fixture(scope="session")
def whisper_base() -> Path:
    """Folder of the real Whisper base model (CTranslate2), assembled once from its two registry packages
    under ~/.cache/grounding-agent/whisper-base-<versions> (see tests/assets/whisper_base.py)."""
    from tests.assets.whisper_base import whisper_base_dir

    return whisper_base_dir()


@pytest.fixture(scope="session")
def clip_frames(real_clips: dict[str, Path]):
    """8 frames spread over the real Charades clip Y1HGC (30.7 s, 15000/1001 fps), with real timestamps."""
    from grounding_agent.media.decode import sample_frames

    return sample_frames(real_clips["univtg_charades_Y1HGC.mp4"], max_frames=8)


# --- a live vLLM OpenAI-compatible server ----------------------------------------------------------

TINY_MODEL_NAME = "tiny-qwen2.5-vl"
TINY_ADAPTER_NAME = "tiny-lora"


@dataclass(frozen=True)
class LiveServer:
    """What a test needs to talk to the session's vLLM server over the OpenAI API."""

    base_url: str  # http://127.0.0.1:PORT/v1
    model: str  # served name of the base model
    adapter: str  # served name of the LoRA adapter
    log_path: Path
    pid: int


@pytest.fixture(scope="session")
def vllm_server(tiny_models: dict[str, Path], tmp_path_factory: pytest.TempPathFactory):
    """A real vLLM server on 127.0.0.1 (free port) serving the tiny Qwen2.5-VL and its LoRA adapter.

    Started once per session (~40 s on 2 CPU cores), stopped by PID at the end; a failed start fails
    the test with the server log's tail.
    """
    from grounding_agent.errors import ServerStartError
    from grounding_agent.grounders.serving import VLLMServer

    server = VLLMServer(
        tiny_models["qwen2_5_vl"],
        served_model_name=TINY_MODEL_NAME,
        loras={TINY_ADAPTER_NAME: tiny_models["qwen2_5_vl_lora"]},
        log_path=tmp_path_factory.mktemp("vllm") / "server.log",
    )
    try:
        server.start(timeout_s=300)
    except ServerStartError as exc:
        pytest.fail(f"{exc}\n--- vLLM log tail ---\n{exc.log_tail}", pytrace=False)
    try:
        yield LiveServer(server.base_url, TINY_MODEL_NAME, TINY_ADAPTER_NAME, server.log_path, server.pid)
    finally:
        server.stop()


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo):
    """A failing test that used the live server gets the server log's tail in its report."""
    outcome = yield
    report = outcome.get_result()
    live = getattr(item, "funcargs", {}).get("vllm_server")
    if isinstance(live, LiveServer) and report.when == "call" and report.failed:
        from grounding_agent.grounders.serving import read_log_tail

        report.sections.append(("vLLM server log (tail)", read_log_tail(live.log_path)))


# --- highlight signals: the excited-speech clip and a tiny speech-emotion model ----------------------


@pytest.fixture(scope="session")
def excited_clip():
    """`tests.excited_clip.ExcitedClip`: 60 s of calm speech with loud, high, fast speech + applause at
    26-36 s (`.excited_s`); built once per version of tests/excited_clip.py under ~/.cache/grounding-agent."""
    from tests.excited_clip import excited_clip as build

    return build()


@pytest.fixture(scope="session")
def tiny_emotion_model() -> Path:
    """Folder of a tiny random-weight Wav2Vec2ForSequenceClassification (tests/assets/tiny_audio_models.py)."""
    from tests.assets.tiny_audio_models import cached_tiny_emotion_model

    return cached_tiny_emotion_model()
