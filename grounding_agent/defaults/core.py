"""Defaults of the grounding engine and its surfaces: sampling, token budgets, servers, the agent, the HTTP
service and UI, media, highlights, editing, sessions, the commands' own options, eval limits."""

from __future__ import annotations

import os
from dataclasses import dataclass, replace
from pathlib import Path


@dataclass(frozen=True)
class SamplingSpec:
    """How a grounder samples a video: frames per second, a cap on frames, a cap on pixels per frame.

    Attributes:
        fps: frames sampled per second of video (fewer when `max_frames` caps them).
        max_frames: the most frames one request carries (within the server's image limit).
        max_pixels: frames are resized to at most this many pixels (None: the processor's own budget).
    """

    fps: float = 2.0
    max_frames: int = 32
    max_pixels: int | None = 448 * 448


@dataclass(frozen=True)
class TokenBudget:
    """Generation budgets in tokens: a plain answer ("12.00 - 15.50 seconds") and a reasoning answer."""

    answer: int = 48
    reasoning: int = 512
    chat: int = 256  # planner, verifier and explanation calls through the chat model

    def for_prompt(self, prompt: str) -> int:
        return self.reasoning if prompt == "reasoning" else self.answer


@dataclass(frozen=True)
class ServerLimits:
    """What a vLLM server started by this package accepts (`VLLMServer`, `grounding-agent serve`).

    Attributes:
        max_model_len: context length in tokens (<= the model's max_position_embeddings).
        max_images: images one request may carry (>= `SamplingSpec.max_frames`).
        max_videos: videos one request may carry.
        max_lora_rank: the largest LoRA rank accepted.
        request_timeout_s: seconds one request may take, in total.
    """

    max_model_len: int = 8192
    max_images: int = 32
    max_videos: int = 1
    max_lora_rank: int = 64
    request_timeout_s: float = 120.0

    def limit_mm_per_prompt(self) -> dict[str, int]:
        return {"image": self.max_images, "video": self.max_videos}


@dataclass(frozen=True)
class AgentConfig:
    """Knobs of the agent; defaults suit Charades-length clips.

    Attributes:
        top_k: candidates asked of the grounder per step.
        top_n: moments returned per query (after NMS).
        before_tolerance_s: slack of the "before" relation.
        nms_iou: temporal NMS threshold over the final moments.
        use_windows: ground later steps inside the window their "before" relations allow.
        min_window_gain: use a window only when it drops at least this share of the video.
        min_window_s: never ground inside a window shorter than this.
        long_video_s: videos longer than this are grounded coarse-to-fine (when a saliency scorer is set).
        max_vlm_calls: grounder calls allowed per query on a long video (shared by its steps).
        coarse_fps: saliency fps of the coarse pass on long videos.
        coarse_keyframe_gap_s: score the keyframes alone in the coarse pass when they are at most this many
            seconds apart on average: decoding keyframes only costs ~1/15 of decoding at `coarse_fps` on
            H.264 (`bench/decode.py`, floor_keyframes); 0 always samples at `coarse_fps`.
    """

    top_k: int = 5
    top_n: int = 5
    before_tolerance_s: float = 1.0
    nms_iou: float = 0.7
    use_windows: bool = True
    min_window_gain: float = 0.2
    min_window_s: float = 4.0
    long_video_s: float = 300.0
    max_vlm_calls: int = 8
    coarse_fps: float = 0.5
    coarse_keyframe_gap_s: float = 10.0


SAMPLING = SamplingSpec()
TOKENS = TokenBudget()
# `grounding-agent serve`: a GPU deployment of a real model.
SERVER = ServerLimits()
# `VLLMServer(...)` from Python: a small local server (the CPU test server of the tiny models), so that
# starting one needs no flags; pass `max_model_len=SERVER.max_model_len, ...` for a deployment.
LOCAL_SERVER = ServerLimits(max_model_len=2048, max_images=16, max_lora_rank=8)
# The vLLM grounder samples within the smaller server's image limit, so it works against either.
SERVED_SAMPLING = replace(SAMPLING, max_frames=LOCAL_SERVER.max_images)
AGENT = AgentConfig()
CLIP_LEN_S = 2.0  # QVHighlights' saliency clip length: one score per 2-second clip
DEFAULT_SERVER_URL = "http://127.0.0.1:8000/v1"

__all__ = [
    "AGENT",
    "CLIP_LEN_S",
    "DEFAULT_SERVER_URL",
    "LOCAL_SERVER",
    "SAMPLING",
    "SERVED_SAMPLING",
    "SERVER",
    "TOKENS",
    "AgentConfig",
    "SamplingSpec",
    "ServerLimits",
    "TokenBudget",
    "cache_dir",
]


def cache_dir(kind: str) -> Path:
    """Where cached `kind` ("embeddings", "transcripts", "ocr") live: $GROUNDING_AGENT_CACHE/kind, else
    ~/.cache/grounding-agent/kind."""
    root = os.environ.get("GROUNDING_AGENT_CACHE")
    return (Path(root) if root else Path.home() / ".cache" / "grounding-agent") / kind


# --- The HTTP service (`grounding-agent api`, `http.create_app`) and the web UI (`grounding-agent ui`). ---
# Both the CLI options and the library read these; neither repeats the numbers.


@dataclass(frozen=True)
class ServiceLimits:
    """What the HTTP service holds in memory and admits at once.

    Attributes:
        max_sessions: conversations kept (least recently used dropped beyond that).
        session_ttl_s: a conversation expires this many seconds after its last turn (or look-up).
        max_concurrency: model calls running in worker threads at once.
        max_pending: requests allowed to wait for the model (more get 503).
        ground_cache: sessions kept for /v1/ground, one per video (its frames decoded once).
        port: the port `grounding-agent api` listens on.
        max_body_bytes: a request body longer than this is refused (413) before it is parsed, whether
            it comes with a Content-Length or chunked.
        max_json_keys: keys one JSON object of a body may have (a body needs 3; more is refused cheaply
            before validation, so 200,000 unknown keys cost no more than a short body).
        max_number_chars: characters of one JSON number (a longer one is refused, not converted).
        max_query_chars: characters of a /v1/ground query; max_message_chars: of a chat message.
        max_path_chars: characters of a client-given video path.
        max_top_k: moments one /v1/ground request may ask for.
    """

    max_sessions: int = 32
    session_ttl_s: float = 1800.0
    max_concurrency: int = 4
    max_pending: int = 256
    ground_cache: int = 8
    port: int = 8080
    max_body_bytes: int = 64 * 1024
    max_json_keys: int = 16
    max_number_chars: int = 32
    max_query_chars: int = 2000
    max_message_chars: int = 4000
    max_path_chars: int = 1024
    max_top_k: int = 50


@dataclass(frozen=True)
class UILimits:
    """What the web UI accepts and holds: upload size, browser sessions kept, and its port."""

    max_upload_mb: int = 512
    max_sessions: int = 8
    port: int = 7860
    max_path_chars: int = 4096  # a longer file-route path is refused before the file system sees it


HTTP_SERVICE = ServiceLimits()
UI = UILimits()
LOCAL_HOST = "127.0.0.1"  # the api and the ui listen on this machine only unless told otherwise
# Host headers the api and the ui accept besides their bind address (--allowed-host adds more): a
# rebound DNS name pointing at 127.0.0.1 is refused (400).
LOCAL_NAMES = ("localhost", "127.0.0.1")
__all__ += ["HTTP_SERVICE", "LOCAL_HOST", "LOCAL_NAMES", "UI", "ServiceLimits", "UILimits"]


# --- Media, highlights, editing, sessions and the commands' own options. ---


@dataclass(frozen=True)
class MediaDefaults:
    """Streaming decode, speech recognition and on-screen text.

    Attributes:
        decode_chunk_s: seconds of video decoded at once when frames are streamed (held in memory together).
        asr_chunk_s: seconds of audio transcribed at once.
        ocr_fps: frames read for on-screen text per second.
        ocr_max_pixels: frames are shrunk to at most this many pixels before OCR.
    """

    decode_chunk_s: float = 60.0
    asr_chunk_s: float = 600.0
    ocr_fps: float = 0.5
    ocr_max_pixels: int = 960 * 540


@dataclass(frozen=True)
class HighlightDefaults:
    """Highlight detection: CLIP saliency sampling and runtime, generic prompts, window selection."""

    clip_fps: float = 1.0
    batch_size: int = 16
    backend: str = "onnx-int8"
    prompts: tuple[str, ...] = (
        "an exciting moment",
        "the highlight of the video",
        "something surprising happens",
        "people cheering and celebrating",
        "a fast, dramatic action",
    )
    top_k: int = 5
    nms_iou: float = 0.3
    diversity: float = 0.5


@dataclass(frozen=True)
class EditDefaults:
    """Editing: what counts as a silence, and the accurate render's x264 settings."""

    silence_db: float = -40.0
    min_silence_s: float = 0.5
    preset: str = "veryfast"
    crf: int = 18


@dataclass(frozen=True)
class SessionDefaults:
    """A conversation: the follow-up window ("what happens next"), history kept, vision cache size."""

    follow_s: float = 5.0
    max_turns: int = 200
    vision_cache_bytes: int = 1 << 30


@dataclass(frozen=True)
class CommandDefaults:
    """Options of single commands (and of the library function a command calls, where it has one)."""

    ground_top_k: int = 1  # `ground`: moments printed
    samples: int = 1  # 1 = greedy decoding
    seed: int = 0  # the `random` baseline's seed
    search_top_k: int = 3  # `transcribe --search`: matches shown
    serve_port: int = 8000  # `serve`: the vLLM server's port
    startup_timeout_s: float = 900.0  # `serve`: seconds to wait for the server
    eval_concurrency: int = 4  # `eval run`: queries in flight
    eval_delay_s: float = 0.0  # `eval run`: simulated per-query latency of the baselines (tests)
    worst: int = 10  # `eval analyze`: the worst queries shown


MEDIA = MediaDefaults()
HIGHLIGHTS = HighlightDefaults()
EDIT = EditDefaults()
SESSION = SessionDefaults()
COMMANDS = CommandDefaults()
__all__ += ["COMMANDS", "EDIT", "HIGHLIGHTS", "MEDIA", "SESSION"]


@dataclass(frozen=True)
class EvalLimits:
    """Eval files and run reports: bounds on what a JSON line may hold, and when a run is not a result."""

    max_json_number_chars: int = 100  # a longer number in a predictions/samples file is refused, not parsed
    max_json_line_chars: int = 16 << 20  # one jsonl line (real ones are under 4 KB)
    not_a_result_share: float = 0.5  # errors + fallbacks at or above this share: "NOT A RESULT"
    safetensors_max_header: int = 100 << 20  # a header longer than this is not a safetensors file
    weights_sample_bytes: int = 1 << 20  # bytes read at each end of a weights file for its fingerprint


EVAL = EvalLimits()
__all__ += ["EVAL"]
