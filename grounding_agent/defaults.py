"""One place for the defaults: how frames are sampled, token budgets, server limits, clip length, agent knobs.

Every default the library, the CLI and the recipes share is a field of a frozen dataclass here, so a
change is made once (CLI options read their defaults from these instances, never from literals).

    from grounding_agent.defaults import SAMPLING, AGENT
    sample_frames(video, fps=SAMPLING.fps, max_frames=SAMPLING.max_frames, max_pixels=SAMPLING.max_pixels)
"""

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


# --- Input limits: what one request may ask for, checked before any work starts (CLI, Python, chat). ---


@dataclass(frozen=True)
class InputLimits:
    """The most one request may ask for; beyond it the answer is a one-line `ConfigError`, not a runaway.

    Attributes:
        max_fps: frames sampled per second (no video is shot faster; a plan past the video's own rate
            only repeats frames).
        max_frames: frames one sampling may take (a plan is 8 bytes a frame, decoded pixels far more).
        max_sample_bytes: decoded pixels one `sample_frames` call may hold (frames x width x height x 3).
        max_top_k: moments one query may ask for.
        max_query_chars: characters of a query, chat message or edit instruction.
        max_seconds: a time read from an instruction (a week; beyond that it is a typo or an attack).
        max_line_chars: characters of one `chat --jsonl` input line.
        max_json_depth: nesting of one `chat --jsonl` line (a message needs 1).
    """

    max_fps: float = 240.0
    max_frames: int = 100_000
    max_sample_bytes: int = 8 << 30
    max_top_k: int = 1000
    max_query_chars: int = 4000
    max_seconds: float = 7 * 24 * 3600.0
    max_line_chars: int = 1 << 20
    max_json_depth: int = 32

    def check_count(self, value: object, name: str, most: int | None = None) -> int:
        """`value` as a whole number in 1..most (default `max_top_k`), else a one-line `ConfigError`."""
        from grounding_agent.errors import ConfigError

        most = self.max_top_k if most is None else most
        if isinstance(value, bool) or not isinstance(value, int) or not 1 <= value <= most:
            shown = value if isinstance(value, (int, float)) and abs(value) < 1e15 else "a huge or non-number"
            raise ConfigError(f"{name} must be a whole number from 1 to {most}, got {shown!r}")
        return value

    def check_fps(self, value: object, name: str = "fps") -> float:
        """`value` as frames per second in (0, max_fps], else a one-line `ConfigError`."""
        from grounding_agent.errors import ConfigError

        ok = isinstance(value, (int, float)) and not isinstance(value, bool) and 0 < value <= self.max_fps
        if not ok:  # NaN fails the comparison too
            shown = value if isinstance(value, (int, float)) and abs(value) < 1e15 else "a huge or non-number"
            raise ConfigError(
                f"{name} must be > 0 and at most {self.max_fps:g} frames per second, got {shown!r}"
            )
        return float(value)

    def check_text(self, text: str, name: str = "the query") -> str:
        """`text` if at most `max_query_chars` long, else a one-line `ConfigError` (the text is not echoed)."""
        from grounding_agent.errors import ConfigError

        if isinstance(text, str) and len(text) > self.max_query_chars:
            raise ConfigError(
                f"{name} is {len(text):,} characters; the most is {self.max_query_chars:,}: say it in fewer words"
            )
        return text


LIMITS = InputLimits()
__all__ += ["LIMITS", "InputLimits"]


@dataclass(frozen=True)
class EditLimits:
    """How much one edit instruction may ask for; beyond it a one-line `EditError` names the limit (never
    a silent truncation).

    Attributes:
        max_operations: operations read from one instruction (each may ground a moment: a model call);
            `schemas/edit_plan.schema.json` says the same `maxItems`.
        max_stem_chars: characters of a video's name kept in the names of files made from it (the web UI's
            exports), so a 255-byte name plus a suffix still fits the file system.
    """

    max_operations: int = 32
    max_stem_chars: int = 100


EDIT_LIMITS = EditLimits()
__all__ += ["EDIT_LIMITS", "EditLimits"]


@dataclass(frozen=True)
class TranscriptLimits:
    """How far a transcript may disagree with the video it is used on.

    Attributes:
        foreign_slack_s: words ending up to this far past the video's end are clamped to it (with a note);
            further, or a recorded duration this much longer than the video's, means the transcript is of
            another video and is refused. A recorded duration this much shorter gets a note.
    """

    foreign_slack_s: float = 1.0


TRANSCRIPT_LIMITS = TranscriptLimits()
__all__ += ["TRANSCRIPT_LIMITS", "TranscriptLimits"]


@dataclass(frozen=True)
class SpeechEditDefaults:
    """Word-exact speech edits (`edit`'s --pad-ms, --min-gap-s; `plan_edit(pad_ms=, min_gap_s=)`).

    Attributes:
        pad_ms: kept audio around wanted speech: a speech keep reaches this far past its first / last word,
            a silence cut stops this short of the speech (clamped halfway to an unwanted neighbouring word).
            Above half a frame at 25 fps, so snapping a boundary to the nearest frame never clips a word.
        min_gap_s: the shortest cut a silence or word (filler) removal makes, after padding: a shorter one
            would be a click, not a pause, and is left in.
        tail_max_s: how far a word's end (or start) moves to where the audio falls after Whisper's time;
            sound still loud that far out is background, not a tail. Whisper base ended a sentence's last
            word 0.29 s before the voice did on the generated talking clips (tests/test_edit_speech_exact.py).
        energy_hop_s: loudness window of that check and of silence detection.
        floor_margin_db: a tail has fallen when it is this close to the recording's floor (its quietest
            5 %), or below the silence threshold if that is lower: tails fade at -45 to -55 dBFS.
    """

    pad_ms: float = 60.0
    min_gap_s: float = 0.1
    tail_max_s: float = 0.5
    energy_hop_s: float = 0.01
    floor_margin_db: float = 6.0


SPEECH_EDIT = SpeechEditDefaults()
__all__ += ["SPEECH_EDIT", "SpeechEditDefaults"]


@dataclass(frozen=True)
class ShortFormDefaults:
    """Short-form outputs of an edit: burnt-in captions, face-following reframe, teasers.

    Attributes:
        caption_words: most words on one caption line (short lines read at a glance on a phone).
        caption_pause_s: a pause this long between two words starts a new line.
        caption_font: the caption font (fontconfig name; libass falls back to a sans font without it).
        caption_size: font height as a share of the output's height.
        caption_margin: safe margin, as a share of the width (sides) and height (bottom), >= 5 %.
        reframe_fps: frames per second the face detector looks at.
        reframe_max_pixels: those frames are shrunk to at most this many pixels first.
        reframe_median: samples in the moving median that steadies the crop centre.
        reframe_pan: fastest pan of the crop, in crop widths per second (unless a face would leave it).
        reframe_hold_s: a face seen this close in time also holds the crop where no face is found (the
            detector misses faces on some frames).
        teaser_slack_s: a teaser's length may miss the asked length by at most this (sentences are whole).
        teaser_pad_s: kept before a sentence's first word and after its last.
    """

    caption_words: int = 4
    caption_pause_s: float = 0.6
    caption_font: str = "DejaVu Sans"
    caption_size: float = 0.06
    caption_margin: float = 0.07
    reframe_fps: float = 4.0
    reframe_max_pixels: int = 640 * 360
    reframe_median: int = 5
    reframe_pan: float = 0.6
    reframe_hold_s: float = 1.0
    teaser_slack_s: float = 0.6
    teaser_pad_s: float = 0.08


SHORT_FORM = ShortFormDefaults()
ASPECTS = ("9:16", "1:1", "4:5", "16:9")  # --aspect choices: width:height of the output
__all__ += ["ASPECTS", "SHORT_FORM", "ShortFormDefaults"]


@dataclass(frozen=True)
class OcrSpanDefaults:
    """How precisely on-screen text spans are timed (`media.ocr.ScreenReader`).

    Attributes:
        refine_fps: after the coarse pass at `MEDIA.ocr_fps`, the frames between two samples that read
            differently are sampled at this rate (at most the video's own) and bisected, so a text's start
            and end are found within one 1/refine_fps interval; 0 turns the refinement off.
    """

    refine_fps: float = 30.0


OCR_SPANS = OcrSpanDefaults()
__all__ += ["OCR_SPANS", "OcrSpanDefaults"]


@dataclass(frozen=True)
class PhraseMatchDefaults:
    """Finding a quote in a transcript for an edit (`edit.sources.find_phrases`, through the one fuzzy
    matcher `media.text_match` that `ground`, `chat` and `transcribe --search` use).

    Attributes:
        edit_min_score: the weakest match an edit cuts or keeps. Number, currency, spelling, punctuation and
            contraction variants score 1.0 once normalised and a misheard letter still passes; a loose
            paraphrase (which `ground` still offers as its best guess) does not: an edit removes material.
    """

    edit_min_score: float = 0.8


PHRASE_MATCH = PhraseMatchDefaults()
__all__ += ["PHRASE_MATCH", "PhraseMatchDefaults"]
