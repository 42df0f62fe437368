"""What every grounder is: `ground(video, query) -> Grounding`, sync and async.

A grounder turns (video, query) into ranked `Moment`s. Model-backed grounders read `Frames` (pixels +
real timestamps); the caller may pass frames it already sampled (several queries on one video share
them), otherwise the grounder samples with its own `fps` / `max_frames`.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any, Protocol, runtime_checkable

from grounding_agent.parsing import ParseFailure, parse_answer
from grounding_agent.temporal import nms, tiou
from grounding_agent.types import Frames, Moment, Prediction, Video

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
    """

    moments: list[Moment]
    raw_text: list[str] = field(default_factory=list)
    failures: list[ParseFailure] = field(default_factory=list)
    timings_s: dict[str, float] = field(default_factory=dict)
    info: dict[str, Any] = field(default_factory=dict)

    @property
    def best(self) -> Moment | None:
        return self.moments[0] if self.moments else None

    def to_prediction(self, qid: int | str, vid: str, query: str) -> Prediction:
        """QVHighlights-shaped prediction; raw text, failures and timings go to `extra`."""
        return Prediction.from_moments(
            qid,
            vid,
            query,
            self.moments,
            raw_text=list(self.raw_text),
            parse_failures=[f.to_dict() for f in self.failures],
            timings_s=dict(self.timings_s),
            **({"grounder": self.info} if self.info else {}),
        )


@runtime_checkable
class Grounder(Protocol):
    """Anything that grounds a query in a video.

    `needs_pixels` tells callers whether to decode frames at all (model-free baselines do not).
    """

    name: str
    needs_pixels: bool

    def ground(
        self, video: Video, query: str, *, top_k: int = 1, frames: Frames | None = None
    ) -> Grounding: ...

    async def aground(
        self, video: Video, query: str, *, top_k: int = 1, frames: Frames | None = None
    ) -> Grounding: ...


class BaseGrounder:
    """Convenience base: `aground` runs `ground` in a worker thread; frame sampling on demand.

    Subclasses implement `ground`; async-native backends (vLLM) override `aground` too.
    """

    name: str = "base"
    needs_pixels: bool = True
    fps: float = 2.0
    max_frames: int = 32
    # Resize frames to at most this many pixels before the processor (None = the processor's budget).
    max_pixels: int | None = 448 * 448

    def ground(self, video: Video, query: str, *, top_k: int = 1, frames: Frames | None = None) -> Grounding:
        raise NotImplementedError

    async def aground(
        self, video: Video, query: str, *, top_k: int = 1, frames: Frames | None = None
    ) -> Grounding:
        return await asyncio.to_thread(self.ground, video, query, top_k=top_k, frames=frames)

    def frames_for(self, video: Video, frames: Frames | None, timings_s: dict[str, float]) -> Frames:
        """`frames` if given, else sample the video at this grounder's fps/max_frames (timed as "decode").

        Sampling goes through the shared frame cache: a second query on the same video decodes nothing.
        """
        if frames is not None:
            timings_s.setdefault("decode", 0.0)
            return frames
        from grounding_agent.video import sample_frames  # lazy: decord is heavy and optional here

        with timed(timings_s, "decode"):
            return sample_frames(
                video, fps=self.fps, max_frames=self.max_frames, max_pixels=self.max_pixels, cache=True
            )

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
    grounding.moments = rank_candidates(candidates, top_k, sampled=sampled)
    grounding.info = {**info, "prompt": request.prompt, "confidence": "agreement" if sampled else "mean_token_logprob"}
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
