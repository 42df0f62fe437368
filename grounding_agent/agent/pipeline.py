"""The agent's pipeline: sub-event grounding, and `Agent`, whose node methods the LangGraph graph wires.

Sub-event grounding: each step of a plan grounded to top-k candidate moments. Steps are grounded in plan order. A step related by "before" to a step already grounded only needs the
part of the video its relation allows (after the earliest end of the earlier step's candidates, or before
the latest start of the later one's), so a pixel grounder is shown just that window, at the same frame
budget — i.e. denser frames where the event can be. Composition still enforces the relations exactly.
"""

from __future__ import annotations

import operator
import time
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Annotated, Any, TypedDict

from grounding_agent.agent.coarse_to_fine import CoarseToFineGrounder, saliency_scorer
from grounding_agent.agent.compose import DEFAULT_BEFORE_TOLERANCE_S, Composition, compose
from grounding_agent.agent.explain import ExplanationWriter, explain
from grounding_agent.agent.planner import Planner, RulePlanner
from grounding_agent.agent.rerank import Reranker
from grounding_agent.errors import ConfigError
from grounding_agent.grounders.base import Grounder, Grounding, timed
from grounding_agent.types import Frames, Moment, Plan, Prediction, Video

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
    """

    top_k: int = 5
    top_n: int = 5
    before_tolerance_s: float = DEFAULT_BEFORE_TOLERANCE_S
    nms_iou: float = 0.7
    use_windows: bool = True
    min_window_gain: float = 0.2
    min_window_s: float = 4.0
    long_video_s: float = 300.0
    max_vlm_calls: int = 8


@dataclass
class StepResult:
    """One step's grounding: the window it was grounded in and its candidates (video time)."""

    step_id: str
    text: str
    window_s: tuple[float, float]
    candidates: list[Moment]
    grounding: Grounding | None = None
    notes: list[str] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {
            "id": self.step_id,
            "text": self.text,
            "window_s": list(self.window_s),
            "candidates": [m.to_window() for m in self.candidates],
        }
        if self.grounding is not None:
            out["raw_text"] = list(self.grounding.raw_text)
            out["parse_failures"] = [f.to_dict() for f in self.grounding.failures]
            out["timings_s"] = dict(self.grounding.timings_s)
        if self.notes:
            out["notes"] = list(self.notes)
        return out


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


def clip_to(moments: list[Moment], window_s: tuple[float, float]) -> list[Moment]:
    """Moments cut to the window; those with no extent inside it are dropped."""
    lo, hi = window_s
    out = []
    for m in moments:
        start, end = max(m.start_s, lo), min(m.end_s, hi)
        if end > start:
            out.append(Moment(start, end, m.score, m.explanation))
    return out


def ground_steps(
    plan: Plan,
    video: Video,
    grounder: Grounder,
    config: AgentConfig = AgentConfig(),
    *,
    frames: Frames | None = None,
    sampler: Any = None,
) -> dict[str, StepResult]:
    """Ground every step of `plan`, in order, to at most `config.top_k` candidates each.

    Args:
        frames: frames of the whole video to share between steps (sampled once by the caller).
        sampler: `f(video, start_s, end_s) -> Frames` for windowed steps; default samples with the
            grounder's own `fps` / `max_frames` via `grounding_agent.video.sample_frames`.

    A step whose grounder answer held no usable moment gets its whole window as one candidate with
    score 0 (recorded in its notes), so composition can still answer.
    """
    duration_s = video.duration_s
    done: dict[str, StepResult] = {}
    for step in plan.steps:
        window = (0.0, duration_s)
        step_frames = frames
        notes: list[str] = []
        if config.use_windows and getattr(grounder, "needs_pixels", True):
            lo, hi = relation_window(plan, step.id, done, duration_s, config.before_tolerance_s)
            useful = (hi - lo) <= (1.0 - config.min_window_gain) * duration_s and (hi - lo) >= config.min_window_s
            if useful:
                window = (lo, hi)
                step_frames = (sampler or _default_sampler(grounder))(video, lo, hi)
                notes.append(f"grounded inside {lo:.2f}-{hi:.2f} s allowed by its relations")
        grounding = grounder.ground(video, step.text, top_k=config.top_k, frames=step_frames)
        candidates = clip_to(list(grounding.moments[: config.top_k]), window)
        if not candidates:
            candidates = [Moment(window[0], window[1], 0.0)]
            notes.append("grounder gave no usable moment; the whole window stands in with score 0")
        done[step.id] = StepResult(step.id, step.text, window, candidates, grounding, notes)
    return done


def _default_sampler(grounder: Grounder):
    from grounding_agent.video import sample_frames  # lazy: decoding is only needed for pixel grounders

    fps = getattr(grounder, "fps", 2.0)
    max_frames = getattr(grounder, "max_frames", 32)

    def sample(video: Video, start_s: float, end_s: float) -> Frames:
        return sample_frames(video, fps=fps, max_frames=max_frames, start_s=start_s, end_s=end_s)

    return sample


def _merge_sum(old: dict, new: dict) -> dict:
    """LangGraph reducer: add numbers key by key (timings and call counts from several nodes)."""
    out = dict(old or {})
    for key, value in (new or {}).items():
        out[key] = out.get(key, 0) + value
    return out


def model_seconds(results: dict[str, StepResult]) -> dict[str, float]:
    """Grounder time per stage summed over steps ("decode", "preprocess", "model", ...)."""
    total: dict[str, float] = {}
    for r in results.values():
        if r.grounding is not None:
            for key, value in r.grounding.timings_s.items():
                total[key] = total.get(key, 0.0) + value
    return total


# --- the agent: one plain method per graph node ---------------------------------------------------------


class AgentState(TypedDict, total=False):
    """What flows through the graph. Each node returns the keys it sets; timings, calls and notes merge."""

    video: Video
    query: str
    frames: Frames | None
    plan: Plan
    steps: dict[str, StepResult]
    compositions: list[Composition]
    moments: list[Moment]
    timings_s: Annotated[dict[str, float], _merge_sum]
    model_calls: Annotated[dict[str, int], _merge_sum]
    notes: Annotated[list[str], operator.add]


@dataclass
class AgentResult:
    """A query's answer: the plan, each step's grounding, the final moments (each with its explanation)."""

    video: Video
    query: str
    plan: Plan
    steps: dict[str, StepResult]
    moments: list[Moment]
    timings_s: dict[str, float]
    model_calls: dict[str, int]
    notes: list[str]

    def to_prediction(self, qid: int | str = 0, vid: str | None = None) -> Prediction:
        """`Prediction` (QVHighlights shape) plus `plan`, `steps`, per-moment `explanations`, timings, calls."""
        ranked = sorted(self.moments, key=lambda m: -m.score)
        return Prediction.from_moments(
            qid,
            vid if vid is not None else self.video.path.stem,
            self.query,
            ranked,
            duration_s=self.video.duration_s,
            plan=self.plan.to_dict(),
            steps=[self.steps[s.id].to_dict() for s in self.plan.steps],
            explanations=[m.explanation for m in ranked],
            timings_s={k: round(v, 4) for k, v in self.timings_s.items()},
            model_calls=dict(self.model_calls),
            **({"notes": list(self.notes)} if self.notes else {}),
        )


class Agent:
    """Plan -> ground each step -> compose -> rerank -> explain. Run it with `run` (through the LangGraph graph).

    Args:
        grounder: any `Grounder` (HF, vLLM, baselines).
        planner: a `Planner`; default the rule planner.
        reranker: a `rerank.Reranker` (CLIP saliency, optional verifier); None keeps composition scores.
        writer: an `explain.ExplanationWriter` for LLM-written sentences; None keeps templated ones.
        config: `AgentConfig`.
        coarse_fps: saliency fps of the coarse pass on long videos (needs `reranker.saliency`).
        sampler: `f(video, start_s, end_s) -> Frames` for windowed grounding; default `video.sample_frames`
            at the grounder's fps / max_frames.
    """

    def __init__(
        self,
        grounder: Grounder,
        *,
        planner: Planner | None = None,
        reranker: Reranker | None = None,
        writer: ExplanationWriter | None = None,
        config: AgentConfig = AgentConfig(),
        coarse_fps: float = 0.5,
        sampler: Any = None,
    ):
        self.grounder = grounder
        self.planner = planner or RulePlanner()
        self.reranker = reranker
        self.writer = writer
        self.config = config
        self.coarse_fps = coarse_fps
        self.sampler = sampler
        self._graph = None

    # nodes -----------------------------------------------------------------------------------------------

    def plan_node(self, state: AgentState) -> dict[str, Any]:
        timings: dict[str, float] = {}
        with timed(timings, "plan"):
            plan = self.planner.plan(state["query"])
        calls = {"planner_llm": 1} if getattr(self.planner, "name", "") == "llm" else {}
        return {"plan": plan, "timings_s": timings, "model_calls": calls, "notes": list(plan.notes)}

    def ground_node(self, state: AgentState) -> dict[str, Any]:
        video, plan, config = state["video"], state["plan"], self.config
        timings: dict[str, float] = {}
        grounder, frames, notes = self.grounder, state.get("frames"), []
        if self._is_long(video):
            per_step = config.max_vlm_calls // len(plan.steps)
            if per_step < 1:
                raise ConfigError(
                    f"the plan has {len(plan.steps)} steps but max_vlm_calls is {config.max_vlm_calls}; raise the budget"
                )
            grounder = CoarseToFineGrounder(
                self.grounder, self._coarse_scorer(), max_calls=per_step, sampler=self.sampler
            )
            config = replace(config, use_windows=False)
            notes.append(f"long video ({video.duration_s:.0f} s): coarse-to-fine, <= {per_step} VLM calls per step")
        elif frames is None and getattr(grounder, "needs_pixels", False) and hasattr(grounder, "frames_for"):
            frames = grounder.frames_for(video, None, timings)  # sampled once, shared by every step
        with timed(timings, "ground"):
            steps = ground_steps(plan, video, grounder, config, frames=frames, sampler=self.sampler)
        calls = grounder.calls if isinstance(grounder, CoarseToFineGrounder) else len(plan.steps)
        for key, value in model_seconds(steps).items():
            timings[f"grounder_{key}"] = value
        notes += [f"{r.step_id}: {n}" for r in steps.values() for n in r.notes]
        return {"steps": steps, "frames": frames, "timings_s": timings, "model_calls": {"grounder": calls}, "notes": notes}

    def compose_node(self, state: AgentState) -> dict[str, Any]:
        timings: dict[str, float] = {}
        plan, config = state["plan"], self.config
        with timed(timings, "compose"):
            comps = compose(
                plan,
                {sid: r.candidates for sid, r in state["steps"].items()},
                top_n=config.top_n,
                before_tolerance_s=config.before_tolerance_s,
                nms_iou=config.nms_iou,
            )
        notes = [] if all(c.consistent for c in comps) else ["no candidates satisfied every relation; relations relaxed"]
        # Each composed moment carries the index of its composition so later nodes can find it.
        moments = [c.moment.with_score(c.moment.score, {"composition": i}) for i, c in enumerate(comps)]
        return {"compositions": comps, "moments": moments, "timings_s": timings, "notes": notes}

    def rerank_node(self, state: AgentState) -> dict[str, Any]:
        if self.reranker is None:
            return {}
        timings: dict[str, float] = {}
        plan, moments = state["plan"], state["moments"]
        query = plan.query if plan.target == "span" else next(s.text for s in plan.steps if s.id == plan.target)
        with timed(timings, "rerank"):
            ranked = self.reranker.rerank(state["video"], [query] * len(moments), moments, state.get("frames"), timings)
        verified = sum(1 for m in ranked if (m.explanation or {}).get("verifier"))
        return {"moments": ranked, "timings_s": timings, "model_calls": {"verifier": verified}}

    def explain_node(self, state: AgentState) -> dict[str, Any]:
        timings: dict[str, float] = {}
        plan, comps = state["plan"], state["compositions"]
        out = []
        with timed(timings, "explain"):
            for m in state["moments"]:
                evidence = dict(m.explanation or {})
                comp = comps[evidence.pop("composition")]
                facts = explain(
                    plan, comp, state["steps"], m.with_score(m.score, evidence),
                    before_tolerance_s=self.config.before_tolerance_s, writer=self.writer,
                )
                out.append(m.with_score(m.score, facts))
        calls = {"explanation_llm": len(out)} if self.writer is not None else {}
        return {"moments": out, "timings_s": timings, "model_calls": calls}

    # running ---------------------------------------------------------------------------------------------

    def graph(self):
        """The compiled LangGraph graph (built once)."""
        if self._graph is None:
            from grounding_agent.agent.graph import build_graph

            self._graph = build_graph(self)
        return self._graph

    def run(self, video: Video | str | Path, query: str, *, frames: Frames | None = None) -> AgentResult:
        """Answer one query on one video.

        Args:
            video: a `Video` or a path.
            frames: frames of the whole video already sampled (shared by every step); default: sampled here.

        Raises:
            ConfigError: empty query, bad config; VideoError subclasses: unreadable video; ServerError.
        """
        t0 = time.perf_counter()
        state = self.graph().invoke(self._start(video, query, frames))
        return self._result(state, time.perf_counter() - t0)

    async def arun(self, video: Video | str | Path, query: str, *, frames: Frames | None = None) -> AgentResult:
        """`run` for async callers (the graph's `ainvoke`; blocking nodes run in worker threads)."""
        t0 = time.perf_counter()
        state = await self.graph().ainvoke(self._start(video, query, frames))
        return self._result(state, time.perf_counter() - t0)

    @staticmethod
    def _start(video: Video | str | Path, query: str, frames: Frames | None) -> AgentState:
        if not isinstance(video, Video):
            from grounding_agent.video import open_video

            video = open_video(video)
        return {"video": video, "query": query, "frames": frames, "timings_s": {}, "model_calls": {}, "notes": []}

    @staticmethod
    def _result(state: AgentState, total_s: float) -> AgentResult:
        timings = {**state["timings_s"], "total": total_s}
        return AgentResult(
            state["video"], state["query"], state["plan"], state["steps"], state["moments"], timings,
            dict(state["model_calls"]), list(state["notes"]),
        )

    # helpers ---------------------------------------------------------------------------------------------

    def _is_long(self, video: Video) -> bool:
        return video.duration_s > self.config.long_video_s and self._has_saliency()

    def _has_saliency(self) -> bool:
        return self.reranker is not None and self.reranker.saliency is not None

    def _coarse_scorer(self):
        return saliency_scorer(self.reranker.saliency, fps=self.coarse_fps)  # type: ignore[union-attr]
