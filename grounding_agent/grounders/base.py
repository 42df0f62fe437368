"""What every grounder is: `ground(video, query) -> Grounding`, sync and async.

A grounder turns (video, query) into ranked `Moment`s. Model-backed grounders read `Frames` (pixels +
real timestamps); the caller may pass frames it already sampled (several queries on one video share
them), otherwise the grounder samples with its own `fps` / `max_frames`.
"""

from __future__ import annotations

import asyncio
import os
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any, Protocol, runtime_checkable

from grounding_agent.defaults import LIMITS, SAMPLING
from grounding_agent.errors import ConfigError
from grounding_agent.grounders.describe import (
    DESCRIBE_MAX_FRAMES,
    DescribeRequest,
    Description,
    template_description,
)
from grounding_agent.grounders.parsing import ParseFailure, parse_answer
from grounding_agent.types import Frames, Moment, Prediction, Video
from grounding_agent.utils.temporal import nms, tiou

# Keys of `Grounding.timings_s`: video decoding, turning frames + text into model inputs, the model itself.
TIMING_KEYS = ("decode", "preprocess", "model")


@dataclass
class Grounding:
    """One query's answer from one grounder.

    Attributes:
        moments: ranked best first, each inside [0, video duration]; `score` is the grounder's confidence.
        raw_text: what the model wrote, one string per generated candidate (empty for model-free grounders).
        failures: candidates whose text held no usable time span.
        timings_s: seconds spent per stage ("decode", "preprocess", "model"; more keys allowed).
        info: backend details worth keeping (model name, prompt version, confidence method, ...).
        duration_s: the video's duration (set by the grounders; None when unknown).
    """

    moments: list[Moment]
    raw_text: list[str] = field(default_factory=list)
    failures: list[ParseFailure] = field(default_factory=list)
    timings_s: dict[str, float] = field(default_factory=dict)
    info: dict[str, Any] = field(default_factory=dict)
    duration_s: float | None = None

    @property
    def best(self) -> Moment | None:
        return self.moments[0] if self.moments else None

    def to_prediction(
        self, qid: int | str, vid: str, query: str, *, duration_s: float | None = None
    ) -> Prediction:
        """The one `Prediction` shape (see `prediction`); a single grounder call has no plan or steps."""
        return prediction(
            qid,
            vid,
            query,
            self.moments,
            duration_s=duration_s if duration_s is not None else self.duration_s,
            raw_text=self.raw_text,
            parse_failures=[f.to_dict() for f in self.failures],
            timings_s=self.timings_s,
            model_calls={"grounder": 1},
            grounder=self.info,
        )


def prediction(
    qid: int | str,
    vid: str,
    query: str,
    moments: Sequence[Moment],
    *,
    duration_s: float | None,
    plan: dict[str, Any] | None = None,
    steps: Sequence[dict[str, Any]] = (),
    explanations: Sequence[dict[str, Any] | None] | None = None,
    raw_text: Sequence[str] = (),
    parse_failures: Sequence[dict[str, Any]] = (),
    timings_s: dict[str, float] | None = None,
    model_calls: dict[str, int] | None = None,
    notes: Sequence[str] = (),
    grounder: dict[str, Any] | None = None,
) -> Prediction:
    """The one `Prediction` shape of grounders and the agent: the same keys every time
    (`schemas/prediction.schema.json`); windows best first, `explanations[i]` about window i (None: none).
    """
    if explanations is None:
        explanations = [m.explanation for m in moments]
    if len(explanations) != len(moments):
        raise ConfigError(f"{len(explanations)} explanations for {len(moments)} moments; give one per moment")
    # Stable: equal scores keep the caller's order; each explanation stays with its moment.
    ranked = sorted(zip(moments, explanations), key=lambda pair: -pair[0].score)
    return Prediction.from_moments(
        qid,
        vid,
        query,
        [m for m, _ in ranked],
        duration_s=duration_s,
        plan=plan,
        steps=list(steps),
        explanations=[e for _, e in ranked],
        raw_text=list(raw_text),
        parse_failures=list(parse_failures),
        timings_s={k: round(v, 4) for k, v in (timings_s or {}).items()},
        model_calls=dict(model_calls or {}),
        notes=list(notes),
        grounder=dict(grounder or {}),
    )


def check_request(video: Video | str | os.PathLike, top_k: int, query: str | None = None) -> Video:
    """What every `ground` does first: open a path as a `Video`; refuse a `top_k` outside
    1..`LIMITS.max_top_k` and a `query` longer than `LIMITS.max_query_chars`, before any work.

    Raises:
        ConfigError: top_k or query out of bounds. VideoError subclasses: the path is not a readable video.
    """
    LIMITS.check_count(top_k, "top_k")
    LIMITS.check_text(query)
    if isinstance(video, Video):
        return video
    from grounding_agent.media.video import open_video  # lazy: decoding is heavy and optional here

    return open_video(video)


def frame_interval_s(frames: Frames | None, fps: float = SAMPLING.fps) -> float:
    """Seconds between two sampled frames: the shortest moment worth returning."""
    rate = frames.fps if frames is not None and frames.fps > 0 else fps
    return 1.0 / rate


def at_least(moment: Moment, min_length_s: float, end_s: float, *, start_s: float = 0.0) -> Moment:
    """`moment` widened about its centre to `min_length_s`, kept inside [start_s, end_s] (by default the
    whole video, [0, duration]); longer ones as is.

    A grounder's frame-exact answer (7.72-7.72 s) says "around this frame": one frame interval is the
    finest the model could see.
    """
    length_s = min(min_length_s, end_s - start_s)
    if moment.length_s >= length_s:
        return moment
    centre_s = 0.5 * (moment.start_s + moment.end_s)
    lo_s = min(max(start_s, centre_s - 0.5 * length_s), end_s - length_s)
    return Moment(lo_s, lo_s + length_s, moment.score, moment.explanation)


@runtime_checkable
class Grounder(Protocol):
    """Anything that grounds a query in a video: what every caller (Session, agent, CLI, eval) may read.

    `video` is a `Video` or a path (opened with `check_request`); `top_k` >= 1 moments at most come back.

    Attributes:
        name: what the grounder is ("vllm:<model>", "hf:<model>", "uniform", ...).
        needs_pixels: whether callers should decode frames at all (model-free baselines do not).
        fps, max_frames, max_pixels: how it samples frames (`frames_for`); callers sampling for it use them.
        concurrency: requests it keeps in flight at once in its async API (vLLM's cap; 1 elsewhere).
        text_model: the VLM behind `describe` ("vlm:<text_model>" answers); None: templated answers.
        served_model: the model name a vLLM server answers to (for LLM planners / verifiers); None if none.
        transcriber: the speech recogniser answering speech sub-queries (`grounders.transcript`), or None.
    """

    name: str
    needs_pixels: bool
    fps: float
    max_frames: int
    max_pixels: int | None
    concurrency: int
    text_model: str | None
    served_model: str | None
    transcriber: Any

    def ground(
        self, video: Video | str | os.PathLike, query: str, *, top_k: int = 1, frames: Frames | None = None
    ) -> Grounding: ...

    async def aground(
        self, video: Video | str | os.PathLike, query: str, *, top_k: int = 1, frames: Frames | None = None
    ) -> Grounding: ...

    def frames_for(self, video: Video, frames: Frames | None, timings_s: dict[str, float]) -> Frames: ...

    def describe(
        self,
        frames: Frames | None,
        request: DescribeRequest,
        moments: Sequence[Moment],
        *,
        max_tokens: int | None = None,
        max_frames: int = DESCRIBE_MAX_FRAMES,
    ) -> Description: ...

    def transcript(self, video: Video | str | os.PathLike) -> Any: ...

    def model_cards(self) -> list[dict[str, Any]]: ...

    async def aclose(self) -> None: ...


class BaseGrounder:
    """Convenience base: `aground` runs `ground` in a worker thread; frame sampling on demand; templated
    text answers; the defaults of every `Grounder` attribute.

    Subclasses implement `ground`; async-native backends (vLLM) override `aground` too, VLM-backed ones
    `describe` and `text_model`.
    """

    name: str = "base"
    needs_pixels: bool = True
    fps: float = SAMPLING.fps
    max_frames: int = SAMPLING.max_frames
    # Resize frames to at most this many pixels before the processor (None = the processor's budget).
    max_pixels: int | None = SAMPLING.max_pixels
    concurrency: int = 1
    text_model: str | None = None
    served_model: str | None = None
    transcriber: Any = None

    def ground(
        self, video: Video | str | os.PathLike, query: str, *, top_k: int = 1, frames: Frames | None = None
    ) -> Grounding:
        raise NotImplementedError

    async def aground(
        self, video: Video | str | os.PathLike, query: str, *, top_k: int = 1, frames: Frames | None = None
    ) -> Grounding:
        return await asyncio.to_thread(self.ground, video, query, top_k=top_k, frames=frames)

    def frames_for(self, video: Video, frames: Frames | None, timings_s: dict[str, float]) -> Frames:
        """`frames` if given, else sample the video at this grounder's fps/max_frames (timed as "decode").

        Sampling goes through the shared frame cache: a second query on the same video decodes nothing.
        """
        if frames is not None:
            timings_s.setdefault("decode", 0.0)
            return frames
        from grounding_agent.media.decode import sample_frames  # lazy: decord is heavy and optional here

        with timed(timings_s, "decode"):
            return sample_frames(
                video, fps=self.fps, max_frames=self.max_frames, max_pixels=self.max_pixels, cache=True
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
        """A text answer to `request` over `frames` (at most `max_frames` shown, `max_tokens` written).
        Without a language model (`text_model` None): a templated sentence from `moments` that says so."""
        return template_description(self.name, request, moments)

    def transcript(self, video: Video | str | os.PathLike) -> Any:
        """The video's speech transcript, or None without a `transcriber`."""
        return None

    def model_cards(self) -> list[dict[str, Any]]:
        """What a model server says it serves (`/models` entries); [] for in-process and model-free ones."""
        return []

    async def aclose(self) -> None:
        """Release what the async API holds in the running event loop (clients, connections)."""

    def __repr__(self) -> str:
        return f"{type(self).__name__}(name={self.name!r})"


@contextmanager
def timed(timings_s: dict[str, float], key: str) -> Iterator[None]:
    """Add the wall time of the block to `timings_s[key]`."""
    t0 = time.perf_counter()
    try:
        yield
    finally:
        timings_s[key] = timings_s.get(key, 0.0) + time.perf_counter() - t0


# --- shared by the model-backed grounders ----------------------------------------------------------


def moments_from_answers(
    grounding: Grounding,
    texts: list[str],
    confidences: list[float],
    *,
    duration_s: float,
    model_duration_s: float | None = None,
    time_offset_s: float = 0.0,
) -> list[list[Moment]]:
    """Parse each generated answer into video-time moments; failures are recorded on `grounding`.

    Each moment's score is its stated confidence (1.0 if none) times the answer's `confidence`.
    `time_offset_s` maps the model's time to video time (see `qwen_inputs.GroundingRequest`).
    """
    candidates: list[list[Moment]] = []
    for text, confidence in zip(texts, confidences):
        parsed = parse_answer(text, model_duration_s or duration_s)
        if parsed.failure is not None:
            grounding.failures.append(parsed.failure)
        moments = [m.shifted(time_offset_s).with_score(m.score * confidence) for m in parsed.moments]
        candidates.append([_clamp(m, duration_s) for m in moments])
    return candidates


def rank_candidates(candidates: list[list[Moment]], top_k: int, *, sampled: bool) -> list[Moment]:
    """Best first, at most `top_k`.

    Greedy (one answer): the answer's moments by score. Sampled (n answers): each answer's first moment
    scored by agreement, the mean temporal IoU with the other answers' first moments; near-duplicates
    merged by temporal NMS.
    """
    if not sampled:
        moments = [m for answer in candidates for m in answer]
        return sorted(moments, key=lambda m: m.score, reverse=True)[:top_k]
    firsts = [answer[0] for answer in candidates if answer]
    scored = []
    for i, m in enumerate(firsts):
        others = [tiou((m.start_s, m.end_s), (o.start_s, o.end_s)) for j, o in enumerate(firsts) if j != i]
        scored.append(m.with_score(sum(others) / len(others) if others else 0.0))
    return nms(scored, iou_threshold=0.9, max_keep=top_k)


def grounding_from_answers(
    texts: list[str],
    confidences: list[float],
    *,
    duration_s: float,
    request: Any,
    top_k: int,
    num_samples: int,
    timings_s: dict[str, float],
    info: dict[str, Any],
    fallback: bool,
) -> Grounding:
    """What every model-backed grounder does with its generated answers: parse (failures recorded), map to
    video time, rank (greedy: by score; sampled: by agreement), fall back to the whole video if asked.

    `request` is the `qwen_inputs.GroundingRequest` the answers were generated from.
    """
    grounding = Grounding(moments=[], raw_text=texts, timings_s=timings_s)
    candidates = moments_from_answers(
        grounding,
        texts,
        confidences,
        duration_s=duration_s,
        model_duration_s=request.model_duration_s,
        time_offset_s=request.time_offset_s,
    )
    sampled = num_samples > 1
    min_length_s = frame_interval_s(request.frames)
    candidates = [[at_least(m, min_length_s, duration_s) for m in answer] for answer in candidates]
    grounding.moments = rank_candidates(candidates, top_k, sampled=sampled)
    grounding.duration_s = float(duration_s)
    grounding.info = {
        **info,
        "prompt": request.prompt,
        "confidence": "agreement" if sampled else "mean_token_logprob",
    }
    if fallback:
        whole_video_fallback(grounding, duration_s)
    return grounding


def whole_video_fallback(grounding: Grounding, duration_s: float) -> None:
    """No answer parsed: return the whole video with score 0 (and say so), rather than nothing.

    Recall-oriented callers (eval, the agent's reranker) still get a candidate; `info["fallback"]`
    and `failures` keep the failure visible.
    """
    if not grounding.moments:
        grounding.moments = [Moment(0.0, float(duration_s), 0.0)]
        grounding.info["fallback"] = "whole_video"


def _clamp(moment: Moment, duration_s: float) -> Moment:
    """Clamp a shifted moment to the video (float noise from shifting must not break the invariant)."""
    end_s = min(moment.end_s, duration_s)
    return Moment(min(moment.start_s, end_s), end_s, moment.score, moment.explanation)
