"""Sub-event grounding: each step of a plan grounded to top-k candidate moments, in plan order.

A step related by "before" to a step already grounded only needs the part of the video its relation
allows (after the earliest end of the earlier step's candidates, or before the latest start of the later
one's), so a pixel grounder is shown just that window, at the same frame budget — i.e. denser frames where
the event can be. Composition still enforces the relations exactly.
"""

from __future__ import annotations

from collections.abc import Callable

from grounding_agent.agent.results import StepResult
from grounding_agent.defaults import AgentConfig
from grounding_agent.grounders.base import Grounder, at_least, frame_interval_s
from grounding_agent.types import Frames, Moment, Plan, Video

# (video, start_s, end_s) -> the frames of that window.
Sampler = Callable[[Video, float, float], Frames]


def relation_window(
    plan: Plan, step_id: str, done: dict[str, StepResult], duration_s: float, before_tolerance_s: float
) -> tuple[float, float]:
    """The part of [0, duration_s] where `step_id` can lie given the steps already grounded."""
    lo, hi = 0.0, duration_s
    for r in plan.relations:
        if r.kind != "before":
            continue  # "during" partners can extend either side; no useful cut
        if r.b == step_id and r.a in done and done[r.a].candidates:  # after a: starts after a's earliest end
            lo = max(lo, min(m.end_s for m in done[r.a].candidates) - before_tolerance_s)
        if r.a == step_id and r.b in done and done[r.b].candidates:  # before b: ends before b's latest start
            hi = min(hi, max(m.start_s for m in done[r.b].candidates) + before_tolerance_s)
    return max(0.0, lo), min(duration_s, hi)


def clip_to(moments: list[Moment], window_s: tuple[float, float], min_length_s: float = 0.0) -> list[Moment]:
    """Moments cut to the window, slivers widened to `min_length_s`; those not inside it are dropped (an
    instant, start == end, counts as inside when it lies in the window)."""
    lo, hi = window_s
    out = []
    for m in moments:
        start, end = max(m.start_s, lo), min(m.end_s, hi)
        if end > start or lo <= m.start_s == m.end_s <= hi:
            out.append(at_least(Moment(start, end, m.score, m.explanation), min_length_s, hi, start_s=lo))
    return out


def window_sampler(grounder: Grounder) -> Sampler:
    """Sample a window at the grounder's own fps / max_frames (`video.sample_frames`)."""
    from grounding_agent.media.decode import sample_frames  # lazy: decoding only for pixel grounders

    fps, max_frames = grounder.fps, grounder.max_frames

    def sample(video: Video, start_s: float, end_s: float) -> Frames:
        return sample_frames(video, fps=fps, max_frames=max_frames, start_s=start_s, end_s=end_s)

    return sample


def ground_steps(
    plan: Plan,
    video: Video,
    grounder: Grounder,
    config: AgentConfig = AgentConfig(),
    *,
    frames: Frames | None = None,
    sampler: Sampler | None = None,
    on_grounded: Callable[[StepResult], None] | None = None,
) -> dict[str, StepResult]:
    """Ground every step of `plan`, in order, to at most `config.top_k` candidates each.

    Args:
        frames: frames of the whole video to share between steps (sampled once by the caller).
        sampler: frames of a window for windowed steps; default `window_sampler(grounder)`.
        on_grounded: hears each step's result as soon as it is grounded (streaming to a client).

    A step whose grounder answer held no usable moment gets its whole window as one candidate with
    score 0 (recorded in its notes), so composition can still answer. No candidate is shorter than one
    sampled frame interval.
    """
    duration_s = video.duration_s
    done: dict[str, StepResult] = {}
    for step in plan.steps:
        window = (0.0, duration_s)
        step_frames = frames
        notes: list[str] = []
        if config.use_windows and grounder.needs_pixels:
            lo, hi = relation_window(plan, step.id, done, duration_s, config.before_tolerance_s)
            useful = (hi - lo) <= (1.0 - config.min_window_gain) * duration_s and (
                hi - lo
            ) >= config.min_window_s
            if useful:
                window = (lo, hi)
                step_frames = (sampler or window_sampler(grounder))(video, lo, hi)
                notes.append(f"grounded inside {lo:.2f}-{hi:.2f} s allowed by its relations")
        grounding = grounder.ground(video, step.text, top_k=config.top_k, frames=step_frames)
        min_length_s = frame_interval_s(step_frames, grounder.fps)
        candidates = clip_to(list(grounding.moments[: config.top_k]), window, min_length_s)
        if not candidates:
            candidates = [Moment(window[0], window[1], 0.0)]
            notes.append("grounder gave no usable moment; the whole window stands in with score 0")
        done[step.id] = StepResult(step.id, step.text, window, candidates, grounding, notes)
        if on_grounded is not None:
            on_grounded(done[step.id])
    return done


def model_seconds(results: dict[str, StepResult]) -> dict[str, float]:
    """Grounder time per stage summed over steps ("decode", "preprocess", "model", ...)."""
    total: dict[str, float] = {}
    for r in results.values():
        if r.grounding is not None:
            for key, value in r.grounding.timings_s.items():
                total[key] = total.get(key, 0.0) + value
    return total
