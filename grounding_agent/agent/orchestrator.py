"""`Agent`: plan -> ground each step -> compose -> rerank -> explain, one plain method per stage.

`Agent.run` calls the stages in order (a straight line: no graph library needed); each reads the
`AgentState` and returns the keys it sets, merged by `merge`. An `on_step(kind, value)` callback hears
the plan ("plan", a `Plan`) and each grounded sub-event ("step", a `StepResult`) as soon as they exist,
before the later stages run, so a streaming client sees them as they happen. Answers carry their typed
trail (`results.ComposedMoment`).
"""

from __future__ import annotations

import asyncio
import operator
import os
import time
from collections.abc import Callable
from dataclasses import replace
from typing import Any, TypedDict

from grounding_agent.agent.coarse_to_fine import CoarseToFineGrounder, saliency_scorer
from grounding_agent.agent.compose import Composition, compose
from grounding_agent.agent.explain import ExplanationWriter, explain
from grounding_agent.agent.planner import Planner, RulePlanner, strip_edit_command
from grounding_agent.agent.rerank import Reranker
from grounding_agent.agent.results import AgentResult, ComposedMoment, StepResult
from grounding_agent.agent.subevents import Sampler, ground_steps, model_seconds
from grounding_agent.defaults import AgentConfig
from grounding_agent.errors import ConfigError
from grounding_agent.grounders.base import Grounder, check_request, timed
from grounding_agent.types import Frames, Plan, Video

VideoLike = Video | str | os.PathLike
# on_step(kind, value): ("plan", Plan) once planned, then ("step", StepResult) per sub-event once grounded.
OnStep = Callable[[str, Any], None]
STAGES = ("plan", "ground", "compose", "rerank", "explain")


class AgentState(TypedDict, total=False):
    """What flows through the stages. Each returns the keys it sets; timings, calls and notes add up."""

    video: Video
    query: str
    frames: Frames | None
    top_n: int
    plan: Plan
    steps: dict[str, StepResult]
    compositions: list[Composition]
    answers: list[ComposedMoment]
    timings_s: dict[str, float]
    model_calls: dict[str, int]
    notes: list[str]
    on_step: OnStep | None


def merge_sum(old: dict, new: dict) -> dict:
    """Add numbers key by key (timings and call counts from several stages)."""
    out = dict(old or {})
    for key, value in (new or {}).items():
        out[key] = out.get(key, 0) + value
    return out


# Keys whose updates add to what is there; every other key is replaced.
_REDUCERS: dict[str, Callable[[Any, Any], Any]] = {
    "timings_s": merge_sum,
    "model_calls": merge_sum,
    "notes": operator.add,
}


def merge(state: AgentState, update: dict[str, Any]) -> None:
    """Apply one stage's `update` to `state` in place."""
    for key, value in update.items():
        reduce = _REDUCERS.get(key)
        state[key] = reduce(state.get(key), value) if reduce is not None else value  # type: ignore[literal-required]


class Agent:
    """Plan -> ground each step -> compose -> rerank -> explain. Run it with `run` (or `arun`).

    Args:
        grounder: any `Grounder` (HF, vLLM, baselines).
        planner: a `Planner`; default the rule planner.
        reranker: a `rerank.Reranker` (CLIP saliency, optional verifier); None keeps composition scores.
        writer: an `explain.ExplanationWriter` for LLM-written sentences; None keeps templated ones.
        config: `AgentConfig` (`config.top_n`: moments returned per query).
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
        sampler: Sampler | None = None,
    ):
        self.grounder = grounder
        self.planner = planner or RulePlanner()
        self.reranker = reranker
        self.writer = writer
        self.config = config
        self.sampler = sampler

    # stages ----------------------------------------------------------------------------------------------

    def plan_node(self, state: AgentState) -> dict[str, Any]:
        timings: dict[str, float] = {}
        calls: dict[str, int] = {}
        with timed(timings, "plan"):
            plan = self.planner.plan(state["query"], calls=calls)
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
            notes.append(
                f"long video ({video.duration_s:.0f} s): coarse-to-fine, <= {per_step} VLM calls per step"
            )
        elif frames is None and grounder.needs_pixels:
            frames = grounder.frames_for(video, None, timings)  # sampled once, shared by every step
        with timed(timings, "ground"):
            steps = ground_steps(
                plan,
                video,
                grounder,
                config,
                frames=frames,
                sampler=self.sampler,
                on_grounded=_step_listener(state),
            )
        calls = grounder.calls if isinstance(grounder, CoarseToFineGrounder) else len(plan.steps)
        for key, value in model_seconds(steps).items():
            timings[f"grounder_{key}"] = value
        notes += [f"{r.step_id}: {n}" for r in steps.values() for n in r.notes]
        return {
            "steps": steps,
            "frames": frames,
            "timings_s": timings,
            "model_calls": {"grounder": calls},
            "notes": notes,
        }

    def compose_node(self, state: AgentState) -> dict[str, Any]:
        timings: dict[str, float] = {}
        plan, config = state["plan"], self.config
        with timed(timings, "compose"):
            comps = compose(
                plan,
                {sid: r.candidates for sid, r in state["steps"].items()},
                top_n=state.get("top_n") or config.top_n,
                before_tolerance_s=config.before_tolerance_s,
                nms_iou=config.nms_iou,
            )
        notes = (
            []
            if all(c.consistent for c in comps)
            else ["no candidates satisfied every relation; relations relaxed"]
        )
        answers = [ComposedMoment(c.moment, c) for c in comps]
        return {"compositions": comps, "answers": answers, "timings_s": timings, "notes": notes}

    def rerank_node(self, state: AgentState) -> dict[str, Any]:
        if self.reranker is None:
            return {}
        timings: dict[str, float] = {}
        plan, answers = state["plan"], state["answers"]
        # The span answers the whole query (an editing command's verb left out); a target step its own text.
        target = next((s.text for s in plan.steps if s.id == plan.target), None)
        query = target if target is not None else strip_edit_command(plan.query)
        moments = [a.moment for a in answers]
        with timed(timings, "rerank"):
            ranked = self.reranker.rerank(
                state["video"], [query] * len(moments), moments, state.get("frames"), timings
            )
        out = [ComposedMoment(r.moment, answers[r.index].composition, r) for r in ranked]
        verified = sum(1 for r in ranked if r.verifier is not None)
        return {"answers": out, "timings_s": timings, "model_calls": {"verifier": verified}}

    def explain_node(self, state: AgentState) -> dict[str, Any]:
        timings: dict[str, float] = {}
        plan, steps, tolerance = state["plan"], state["steps"], self.config.before_tolerance_s
        with timed(timings, "explain"):
            out = [
                replace(
                    a, explanation=explain(plan, a, steps, before_tolerance_s=tolerance, writer=self.writer)
                )
                for a in state["answers"]
            ]
        calls = {"explanation_llm": len(out)} if self.writer is not None else {}
        return {"answers": out, "timings_s": timings, "model_calls": calls}

    # running ---------------------------------------------------------------------------------------------

    def run(
        self,
        video: VideoLike,
        query: str,
        *,
        frames: Frames | None = None,
        top_k: int | None = None,
        on_step: OnStep | None = None,
    ) -> AgentResult:
        """Answer one query on one video: the stages in order.

        Args:
            video: a `Video` or a path.
            frames: frames of the whole video already sampled (shared by every step); default: sampled here.
            top_k: moments to return (default `config.top_n`).
            on_step: hears ("plan", Plan) and then ("step", StepResult) per sub-event as soon as they exist.

        Raises:
            ConfigError: empty query, bad config or top_k; VideoError subclasses: unreadable video; ServerError.
        """
        from grounding_agent.utils.extras import AGENT, require_spec

        require_spec(
            AGENT, "the agent"
        )  # the [agent] extra: what the agent and its LLM features are installed with
        t0 = time.perf_counter()
        state = self._start(video, query, frames, top_k)
        state["on_step"] = on_step
        for stage in STAGES:
            merge(state, getattr(self, f"{stage}_node")(state))
            if stage == "plan" and on_step is not None:
                on_step("plan", state["plan"])
        return self._result(state, time.perf_counter() - t0)

    async def arun(
        self,
        video: VideoLike,
        query: str,
        *,
        frames: Frames | None = None,
        top_k: int | None = None,
        on_step: OnStep | None = None,
    ) -> AgentResult:
        """`run` for async callers: it runs in a worker thread, the event loop stays free."""
        return await asyncio.to_thread(self.run, video, query, frames=frames, top_k=top_k, on_step=on_step)

    def _start(self, video: VideoLike, query: str, frames: Frames | None, top_k: int | None) -> AgentState:
        top_n = self.config.top_n if top_k is None else top_k
        video = check_request(video, top_n, query)
        return {
            "video": video, "query": query, "frames": frames, "top_n": top_n,
            "timings_s": {}, "model_calls": {}, "notes": [],
        }  # fmt: skip

    @staticmethod
    def _result(state: AgentState, total_s: float) -> AgentResult:
        timings = {**state["timings_s"], "total": total_s}
        return AgentResult(
            state["video"], state["query"], state["plan"], state["steps"], state["answers"], timings,
            dict(state["model_calls"]), list(state["notes"]),
        )  # fmt: skip

    # helpers ---------------------------------------------------------------------------------------------

    def _is_long(self, video: Video) -> bool:
        return video.duration_s > self.config.long_video_s and self._has_saliency()

    def _has_saliency(self) -> bool:
        return self.reranker is not None and self.reranker.saliency is not None

    def _coarse_scorer(self):
        return saliency_scorer(
            self.reranker.saliency,  # type: ignore[union-attr]
            fps=self.config.coarse_fps,
            keyframe_gap_s=self.config.coarse_keyframe_gap_s,
        )


def _step_listener(state: AgentState) -> Callable[[StepResult], None] | None:
    """Each sub-event to `on_step` the moment it is grounded (before the later steps, compose and rerank)."""
    on_step = state.get("on_step")
    return None if on_step is None else (lambda result: on_step("step", result))
