"""Long videos, CONE-style: a cheap saliency curve proposes windows, the VLM grounds inside the best ones.

A VLM sees a bounded number of frames, so on an hour-long video one call spreads them a minute apart.
Instead, a coarse query-saliency curve (CLIP similarity at a low fps) over the whole video ranks fixed
windows; the wrapped grounder is called inside the best windows only (at its own fps, i.e. densely), up to
`max_calls` calls per query. Grounders answer in video time for windowed frames (their requests carry the
window's offset), so candidates only need clipping to the window they came from.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np

from grounding_agent.agent.subevents import clip_to
from grounding_agent.errors import ConfigError
from grounding_agent.grounders.base import (
    BaseGrounder,
    Grounder,
    Grounding,
    check_request,
    frame_interval_s,
    timed,
)
from grounding_agent.types import Frames, Moment, Video
from grounding_agent.utils.temporal import nms, tiou

# (video, query) -> (times_s, values): a coarse relevance curve over the whole video.
CoarseScorer = Callable[[Video, str], tuple[np.ndarray, np.ndarray]]


@dataclass(frozen=True)
class Window:
    start_s: float
    end_s: float
    saliency: float


def propose_windows(
    times_s: np.ndarray, values: np.ndarray, duration_s: float, *, window_s: float, max_windows: int
) -> list[Window]:
    """Best non-overlapping windows of length `window_s` by mean curve value inside, best first.

    Windows slide with a stride of half their length; the last one ends at the video's end.
    """
    times_s, values = np.asarray(times_s, float), np.asarray(values, float)
    if window_s >= duration_s:
        return [Window(0.0, duration_s, float(values.mean()) if len(values) else 0.0)]
    stride = window_s / 2
    starts = list(np.arange(0.0, duration_s - window_s, stride)) + [duration_s - window_s]
    scored = []
    for start in starts:
        inside = (times_s >= start) & (times_s < start + window_s)
        scored.append(
            Window(
                float(start),
                float(start + window_s),
                float(values[inside].mean()) if inside.any() else -np.inf,
            )
        )
    scored.sort(key=lambda w: -w.saliency)
    chosen: list[Window] = []
    for w in scored:
        if all(tiou((w.start_s, w.end_s), (c.start_s, c.end_s)) == 0.0 for c in chosen):
            chosen.append(w)
            if len(chosen) == max_windows:
                break
    return chosen


class CoarseToFineGrounder(BaseGrounder):
    """Wraps a grounder for long videos; at most `max_calls` calls of it per `ground`.

    Args:
        grounder: the VLM grounder (its `fps` / `max_frames` are used inside each window).
        scorer: coarse relevance curve over the whole video (e.g. CLIP saliency at `coarse_fps`).
        window_s: length of the windows the VLM sees.
        max_calls: VLM calls allowed per query (the budget; enforced).
        sampler: `f(video, start_s, end_s) -> Frames`; default: `video.sample_frames` at the grounder's
            fps and max_frames.
    """

    needs_pixels = True

    def __init__(
        self,
        grounder: Grounder,
        scorer: CoarseScorer,
        *,
        window_s: float = 60.0,
        max_calls: int = 3,
        sampler: Callable[[Video, float, float], Frames] | None = None,
    ):
        if max_calls < 1:
            raise ConfigError(f"max_calls must be >= 1, got {max_calls}")
        if window_s <= 0:
            raise ConfigError(f"window_s must be > 0, got {window_s}")
        self.grounder, self.scorer = grounder, scorer
        self.window_s, self.max_calls = window_s, max_calls
        self.sampler = sampler
        self.name = f"coarse_to_fine:{grounder.name}"
        self.fps, self.max_frames = grounder.fps, grounder.max_frames
        self.calls = 0  # grounder calls made by this wrapper over its life (for budgets and benches)

    def _sample(self, video: Video, start_s: float, end_s: float) -> Frames:
        if self.sampler is not None:
            return self.sampler(video, start_s, end_s)
        from grounding_agent.media.decode import sample_frames

        return sample_frames(video, fps=self.fps, max_frames=self.max_frames, start_s=start_s, end_s=end_s)

    def ground(self, video: Video, query: str, *, top_k: int = 1, frames: Frames | None = None) -> Grounding:
        """Ground `query` inside the best windows. `frames` is ignored: each window is sampled afresh."""
        video = check_request(video, top_k, query)
        timings: dict[str, float] = {}
        with timed(timings, "coarse"):
            times_s, values = self.scorer(video, query)
            windows = propose_windows(
                times_s, values, video.duration_s, window_s=self.window_s, max_windows=self.max_calls
            )
        out = Grounding(moments=[], timings_s=timings, duration_s=video.duration_s)
        candidates: list[Moment] = []
        for w in windows[: self.max_calls]:
            with timed(timings, "decode"):
                window_frames = self._sample(video, w.start_s, w.end_s)
            g = self.grounder.ground(video, query, top_k=top_k, frames=window_frames)
            self.calls += 1
            out.raw_text.extend(g.raw_text)
            out.failures.extend(g.failures)
            for key, value in g.timings_s.items():
                timings[key] = timings.get(key, 0.0) + value
            min_length_s = frame_interval_s(window_frames, self.fps)
            for m in clip_to(list(g.moments), (w.start_s, w.end_s), min_length_s):
                expl = {
                    **(m.explanation or {}),
                    "coarse_window_s": [w.start_s, w.end_s],
                    "coarse_saliency": w.saliency,
                }
                candidates.append(m.with_score(m.score, expl))
        out.moments = nms(candidates, iou_threshold=0.7, max_keep=top_k)
        out.info = {
            "backend": "coarse_to_fine",
            "grounder": self.grounder.name,
            "vlm_calls": min(len(windows), self.max_calls),
            "windows_s": [[w.start_s, w.end_s, w.saliency] for w in windows],
        }
        return out


def saliency_scorer(saliency: Any, *, fps: float = 0.5, keyframe_gap_s: float = 0.0) -> CoarseScorer:
    """Adapt a `ClipSaliency` (anything with `curve(path, query, fps=, keyframes_only=)`) to a `CoarseScorer`.

    With `keyframe_gap_s` > 0 and keyframes at most that far apart on average, only keyframes are scored:
    the coarse pass then costs a keyframe-only decode instead of a decode of (nearly) every frame.
    """

    def score(video: Video, query: str) -> tuple[np.ndarray, np.ndarray]:
        curve = saliency.curve(
            str(video.path), query, fps=fps, keyframes_only=keyframes_dense(video, keyframe_gap_s)
        )
        return np.asarray(curve.times_s), np.asarray(curve.values)

    return score


def keyframes_dense(video: Video, max_gap_s: float) -> bool:
    """True when `video`'s keyframes are at most `max_gap_s` apart on average (and there are several)."""
    if max_gap_s <= 0:
        return False
    from grounding_agent.media.video import frame_times  # lazy: the index is only read for a long video

    _, key_starts_s = frame_times(video)
    return len(key_starts_s) >= 2 and video.duration_s / len(key_starts_s) <= max_gap_s
