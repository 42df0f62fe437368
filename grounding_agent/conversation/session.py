"""A conversation about one video: open and decode it once, then ground and answer many messages.

    from grounding_agent import Session
    session = Session("clip.mp4", grounder="vllm", server="http://127.0.0.1:8000/v1")
    session.ground("the person opens the fridge", top_k=3)      # a Prediction
    session.ask("what does he do after that?").text              # grounded in the part after the last answer

Frames are sampled once (lazily, at the grounder's fps / max_frames) and kept; CLIP embeddings are
computed once when a saliency model is given. `ask` reads each message with `followups.read_message`:
a follow-up ("after that", "before that", "again", ...) searches only the part of the video its
reference allows, measured from the previous answer's best moment. Text answers come from the grounder's
own VLM (`describe`); model-free grounders get a templated text that says it is templated.
No returned moment is shorter than one sampled frame interval. Replies are `answers.Answer`s.
"""

from __future__ import annotations

import contextlib
import itertools
import threading
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from grounding_agent.conversation import replies, summary_reply
from grounding_agent.conversation.answers import Answer, Turn, jsonable, moment_dict
from grounding_agent.conversation.followups import Reading, read_message
from grounding_agent.conversation.moments import check_query, moment_key, unit_score, widen
from grounding_agent.defaults import LIMITS, SESSION
from grounding_agent.errors import ConfigError
from grounding_agent.grounders.registry import make_grounder
from grounding_agent.grounders.vision_cache import VisionCache, use
from grounding_agent.types import TIME_EPS_S, Evidence, Frames, Moment, Plan, Prediction, Video

if TYPE_CHECKING:
    from grounding_agent.conversation.describe import Describer
    from grounding_agent.grounders.base import Grounder
    from grounding_agent.highlights.clip import ClipSaliency

__all__ = ["Session"]


class Session:
    """One video, many questions. See the module docstring.

    Args:
        video: a `Video` or a path.
        grounder: a `Grounder`, or a registry name ("vllm", "hf", "uniform", ...) built with `**options`.
        saliency: a `saliency.ClipSaliency`; frame embeddings are computed once and scored per query.
        agent: an `agent.Agent` used for compositional queries ("X, then Y").
        transcript: speech transcript of the video (set by the speech wiring), or None.
        describer: what writes text answers; default: the grounder's own VLM, a template without one.
        top_k: moments per `ask` answer.
        follow_s: how far "right after", "what happens next", "right before" look (seconds).
        use_agent: True / False to force / forbid the agent; None: when the rule planner splits the query.
        fps, max_frames, max_pixels: frame sampling (default: the grounder's).
        max_turns: turns kept (older ones are dropped, so memory stays bounded).
        vision_cache: reuse the in-process model's processor and vision-tower outputs across questions
            (the frames are the same; `grounders.vision_cache`); False recomputes them every time.
        **options: grounder options when `grounder` is a name.
    """

    def __init__(
        self,
        video: Video | str | Path,
        grounder: Grounder | str,
        *,
        saliency: ClipSaliency | None = None,
        agent: Any = None,
        transcript: Any = None,
        describer: Describer | None = None,
        top_k: int = 1,
        follow_s: float = SESSION.follow_s,
        use_agent: bool | None = None,
        fps: float | None = None,
        max_frames: int | None = None,
        max_pixels: int | None = None,
        max_turns: int = SESSION.max_turns,
        vision_cache: bool = True,
        **options: Any,
    ):
        LIMITS.check_count(top_k, "top_k")  # limits first: before a model is loaded or a frame decoded
        if fps is not None:
            LIMITS.check_fps(fps)
        if max_frames is not None:
            LIMITS.check_count(max_frames, "max_frames", LIMITS.max_frames)
        if isinstance(grounder, str):
            if grounder in ("hf", "vllm"):  # the grounder samples with the session's settings
                sampling = {"fps": fps, "max_frames": max_frames, "max_pixels": max_pixels}
                options.update({k: v for k, v in sampling.items() if v is not None})
            grounder = make_grounder(grounder, **options)
        elif options:
            raise ConfigError(f"unknown Session options {sorted(options)}")
        if follow_s <= 0 or max_turns < 1:
            raise ConfigError("max_turns must be >= 1 and follow_s > 0")
        self.video = video if isinstance(video, Video) else _open(video)
        self.grounder = grounder
        self.saliency, self.agent, self.transcript = saliency, agent, transcript
        if transcript is not None and grounder.transcriber is None:
            # Speech sub-queries ("when does she say 'X'") are answered from the transcript (speech wiring).
            from grounding_agent.grounders.transcript import TranscriptGrounder
            from grounding_agent.media.asr import KnownTranscript

            self.grounder = grounder = TranscriptGrounder(grounder, KnownTranscript(transcript))
        self.top_k, self.follow_s, self.use_agent, self.max_turns = top_k, follow_s, use_agent, max_turns
        self.fps = float(fps or grounder.fps)
        self.max_frames = int(max_frames or grounder.max_frames)
        self.max_pixels = max_pixels if max_pixels is not None else grounder.max_pixels
        self._describer = describer
        self.turns: list[Turn] = []
        self._frames: Frames | None = None
        self._embeddings: Any = None
        self._lock = threading.RLock()  # one message at a time per session (turn order is the history)
        self._frames_lock = threading.Lock()
        self._embed_lock = threading.Lock()
        self._qids = itertools.count()
        self._listener = _Listener()  # the on_event of the ask() running in this thread
        self._turn_count = 0
        self.vision_cache = VisionCache() if vision_cache else None  # dropped with the session

    # --- what is decoded once ----------------------------------------------------------------------

    @property
    def frames(self) -> Frames:
        """The session's frames, sampled once on first use and kept."""
        with self._frames_lock:
            if self._frames is None:
                from grounding_agent.media.decode import sample_frames

                self._frames = sample_frames(
                    self.video,
                    fps=self.fps,
                    max_frames=self.max_frames,
                    max_pixels=self.max_pixels,
                    cache=True,
                )
            return self._frames

    @property
    def embeddings(self) -> Any:
        """CLIP embeddings of the session's frames (computed once), or None without a saliency model."""
        if self.saliency is None:
            return None
        with self._embed_lock:
            if self._embeddings is None:
                self._embeddings = self.saliency.embed(self.frames)
            return self._embeddings

    @property
    def describer(self) -> Describer:
        if self._describer is None:
            from grounding_agent.conversation.describe import describer_for

            self._describer = describer_for(self.grounder)
        return self._describer

    @property
    def frame_interval_s(self) -> float:
        """One sampled frame interval: no returned moment is shorter."""
        needs_pixels = self.grounder.needs_pixels
        fps = (
            self.frames.fps
            if needs_pixels
            else min(self.fps, self.max_frames / max(self.video.duration_s, TIME_EPS_S))
        )
        return min(1.0 / fps, self.video.duration_s)

    def saliency_curve(self, query: str | None = None) -> tuple[np.ndarray, np.ndarray] | None:
        """(times_s, CLIP cosine per frame) for `query` (default: the last grounded query), or None
        without a saliency model or a query."""
        query = query or next((t.query for t in reversed(self.turns) if t.query), None)
        if self.saliency is None or not query:
            return None
        emb = self.embeddings
        return emb.times_s, emb.similarity(self.saliency.embed_texts([query]))[:, 0]

    # --- grounding ---------------------------------------------------------------------------------

    def ground(self, query: str, *, top_k: int = 1) -> Prediction:
        """Moments of `query` in the whole video (no reference to the conversation), as a Prediction."""
        query = check_query(query, top_k)
        with self._using_vision_cache():
            moments, plan, prediction, evidence = self._search(query, top_k)
        # Kept as a turn, so a later "what happens after that?" refers to it.
        spans = "; ".join(f"{m.start_s:.2f}-{m.end_s:.2f} s (score {m.score:.2f})" for m in moments)
        self._remember(
            query, Answer(f"Grounded {query!r}: {spans}.", moments, evidence, plan, "session"), query
        )
        return prediction

    def _search(
        self, query: str, top_k: int, window_s: tuple[float, float] | None = None
    ) -> tuple[list[Moment], Plan, Prediction, list[Evidence]]:
        """Ground `query` inside `window_s` (default: the whole video): moments, plan, prediction, evidence."""
        lo, hi = window_s or (0.0, self.video.duration_s)
        needs_pixels = self.grounder.needs_pixels
        qid = next(self._qids)
        if self._wants_agent(query):
            # The plan and each grounded sub-event reach listeners (SSE) as the agent produces them.
            result = self.agent.run(
                self.video, query, frames=self.frames if needs_pixels else None, on_step=self._agent_step
            )
            prediction = result.to_prediction(qid)
            raw, plan, kind, source, note = result.moments, result.plan, "composition", "agent", ""
            absent = None
            step_evidence = []
            for step in plan.steps:
                r = result.steps[step.id]
                # Each sub-event's candidates are evidence of their own (source: the step id).
                step_evidence += [Evidence("grounder", m.start_s, m.end_s, unit_score(m.score), r.text, r.step_id)
                                  for m in r.candidates]  # fmt: skip
        else:
            plan = Plan.single(query)
            self._emit("plan", plan.to_dict())
            frames = self._frames_in(lo, hi, sample=True) if needs_pixels else None
            # Candidates outside the window are dropped, so a windowed search asks for a few more (a
            # model-free grounder cannot be shown the window at all: more still).
            ask_k = top_k if window_s is None else max(top_k, 5 if needs_pixels else 10)
            grounding = self.grounder.ground(self.video, query, top_k=ask_k, frames=frames)
            prediction = grounding.to_prediction(qid, self.video.path.stem, query)
            raw, kind, source, step_evidence = grounding.moments, "grounder", self.grounder.name, []
            absent = grounding.info.get("absent")  # looked and not found: no moment, never the whole window
            note = (grounding.raw_text[0] if grounding.raw_text else "")[:300]
            self._emit("step", {"id": "s1", "text": query, "window_s": [lo, hi],
                                "candidates": [m.to_window() for m in raw]})  # fmt: skip
        moments = [] if absent else self._fit(raw, (lo, hi), top_k)
        if absent:
            prediction.extra["absent"] = absent
        prediction.pred_relevant_windows = [m.to_window() for m in moments]
        if "explanations" in prediction.extra:  # one per returned window
            prediction.extra["explanations"] = [jsonable(m.explanation) for m in moments]
        prediction.extra["duration_s"] = self.video.duration_s
        if window_s is not None:
            prediction.extra["window_s"] = [lo, hi]
        evidence = [Evidence(kind, m.start_s, m.end_s, unit_score(m.score), note, source) for m in moments]
        evidence += step_evidence + self._saliency_evidence(query, moments)
        return moments, plan, prediction, evidence

    def _wants_agent(self, query: str) -> bool:
        if self.agent is None or self.use_agent is False:
            return False
        if self.use_agent:
            return True
        return len(self.agent.planner.plan(query).steps) > 1

    def _fit(self, moments: list[Moment], window_s: tuple[float, float], top_k: int) -> list[Moment]:
        """Inside the window, at least one frame interval long, no duplicates, best first, at most top_k;
        the whole window with score 0 when nothing usable is left."""
        lo, hi = window_s
        min_s = self.frame_interval_s
        out: list[Moment] = []
        for m in sorted(moments, key=lambda m: -m.score):
            start, end = max(m.start_s, lo), min(m.end_s, hi)
            if end <= start and not (m.start_s >= lo and m.end_s <= hi):
                continue  # entirely outside the window
            fitted = widen(Moment(start, max(start, end), m.score, m.explanation), min_s, lo, hi)
            if fitted is not None and all(moment_key(fitted) != moment_key(o) for o in out):
                out.append(fitted)
        if not out and hi - lo >= min_s - TIME_EPS_S:
            out = [
                Moment(lo, hi, 0.0, {"fallback": "the grounder found nothing usable here; the whole window"})
            ]
        return out[:top_k]

    def _frames_in(self, lo: float, hi: float, *, sample: bool = False) -> Frames:
        """The session's frames inside [lo, hi]; the nearest one if none falls inside (or, with `sample`,
        that window sampled at the session's rate, from the frame cache when possible)."""
        frames = self.frames
        if lo <= frames.window_s[0] + TIME_EPS_S and hi >= self.video.duration_s - TIME_EPS_S:
            return frames
        t = frames.timestamps_s
        inside = (t >= lo - TIME_EPS_S) & (t <= hi + TIME_EPS_S)
        if inside.sum() >= 2 or (inside.any() and not sample):
            return replace(frames.subset(inside), window_s=(lo, hi))
        if sample and hi - lo > TIME_EPS_S:
            from grounding_agent.media.decode import sample_frames

            return sample_frames(
                self.video, fps=self.fps, max_frames=self.max_frames, start_s=lo, end_s=hi,
                max_pixels=self.max_pixels, cache=True,
            )  # fmt: skip
        return frames.subset(np.array([int(np.argmin(np.abs(t - (lo + hi) / 2)))]))

    def _saliency_evidence(self, query: str, moments: list[Moment]) -> list[Evidence]:
        curve = self.saliency_curve(query) if self.saliency is not None else None
        if curve is None:
            return []
        times, scores = curve
        out = []
        for m in moments:
            inside = (times >= m.start_s) & (times <= m.end_s)
            if inside.any():
                cos = float(scores[inside].mean())
                out.append(Evidence("saliency", m.start_s, m.end_s, (1 + cos) / 2, f"mean CLIP cosine {cos:.3f}",
                                    self.saliency.model_id))  # fmt: skip
        return out

    # --- conversation ------------------------------------------------------------------------------

    def ask(self, message: str, *, on_event: Callable[[str, dict[str, Any]], None] | None = None) -> Answer:
        """Answer one chat message in the context of the earlier turns (see the module docstring).

        `on_event(kind, data)` is called as the answer takes shape: "reference" (a follow-up's earlier
        turn), "plan", "step" (each grounded sub-event), "moments", "text" (for streaming clients).
        """
        if not isinstance(message, str) or not message.strip():
            raise ConfigError("the message is empty; ask something about the video")
        message = LIMITS.check_text(message.strip(), "the message")
        with self._lock, self._using_vision_cache():
            self._listener.fn = on_event
            try:
                reading = read_message(message)
                handler = {"follow": self._follow, "around": self._around, "ground": self._ground_turn,
                           "summary": self._summary_turn}.get(reading.intent, self._describe_turn)  # fmt: skip
                answer, query = handler(message, reading)
            finally:
                self._listener.fn = None
            self._remember(message, answer, query)
            return answer

    def _using_vision_cache(self) -> Any:
        """Context in which the in-process model reuses this session's processor / vision outputs."""
        return contextlib.nullcontext() if self.vision_cache is None else use(self.vision_cache)

    def _remember(self, message: str, answer: Answer, query: str) -> None:
        with self._lock:
            self._turn_count += 1
            self.turns.append(Turn(message, answer, query, self._turn_count))
            del self.turns[: -self.max_turns]

    def _agent_step(self, kind: str, value: Any) -> None:
        if kind == "plan":
            self._emit("plan", value.to_dict())
        else:
            self._emit("step", {"id": value.step_id, "text": value.text, "window_s": list(value.window_s),
                                "candidates": [m.to_window() for m in value.candidates]})  # fmt: skip

    def _emit(self, kind: str, data: Any) -> None:
        fn = self._listener.fn
        if fn is not None:
            fn(kind, data)

    def _ground_turn(self, message: str, reading: Reading) -> tuple[Answer, str]:
        moments, plan, prediction, evidence = self._search(reading.event, self.top_k)
        if replies.absent_reason(prediction):
            return replies.absent(self, prediction, plan, evidence, None), reading.event
        best = moments[0] if moments else None
        window = (best.start_s, best.end_s) if best else None
        return self._answer(message, moments, evidence, plan, window), reading.event

    def _around(self, message: str, reading: Reading) -> tuple[Answer, str]:
        """ "What does he do after X?": ground X, then tell what happens in the window after (before, during) it."""
        anchors, plan, prediction, evidence = self._search(reading.event, 1)
        if replies.absent_reason(prediction):  # "what does she say after 'X'?" where X is never said
            return replies.absent(self, prediction, plan, evidence, None), reading.event
        if not anchors:  # a video shorter than one frame interval
            return self._answer(message, [], evidence, plan, None), reading.event
        anchor, duration = anchors[0], self.video.duration_s
        if reading.relation == "after":
            window = (anchor.end_s, min(duration, anchor.end_s + self.follow_s))
        elif reading.relation == "before":
            window = (max(0.0, anchor.start_s - self.follow_s), anchor.start_s)
        else:
            window = (anchor.start_s, anchor.end_s)
        explanation = {
            "relation": reading.relation,
            "anchor": reading.event,
            "anchor_s": [anchor.start_s, anchor.end_s],
        }
        moments = self._fit([Moment(*window, anchor.score, explanation)], window, 1)
        if not moments:
            return replies.nothing(reading.relation, anchor, window, plan, evidence), reading.event
        return self._answer(message, moments, evidence, plan, window), reading.event

    def _follow(self, message: str, reading: Reading) -> tuple[Answer, str]:
        return replies.follow(self, message, reading)

    def _summary_turn(self, message: str, reading: Reading) -> tuple[Answer, str]:
        return summary_reply.summary_answer(self, message), ""

    def _describe_turn(self, message: str, reading: Reading) -> tuple[Answer, str]:
        return self._answer(message, [], [], None, None), ""

    def _answer(
        self,
        message: str,
        moments: list[Moment],
        evidence: list[Evidence],
        plan: Plan | None,
        window_s: tuple[float, float] | None,
    ) -> Answer:
        """Ask the describer about `window_s` (the whole video when None) and assemble the answer."""
        from grounding_agent.conversation.describe import DescribeRequest
        from grounding_agent.media.speech_query import asks_what_is_said

        if self.transcript is not None and asks_what_is_said(message):
            return replies.said(self, moments, evidence, plan, window_s)
        self._emit("moments", [moment_dict(m) for m in moments])
        describer = self.describer
        request = DescribeRequest(message, self.video.duration_s, window_s)
        frames = None
        if describer.needs_pixels:
            frames = self.frames if window_s is None else self._frames_in(*window_s)
        description = describer.describe(frames, request, moments)
        if not description.text.strip():  # say so rather than reply with nothing
            description = replace(
                description, text=f"The model ({description.source}) gave an empty answer.", source="session"
            )
        self._emit("text", {"text": description.text, "text_source": description.source})
        return Answer(description.text, moments, evidence, plan, description.source, window_s)

    def history(self) -> list[dict[str, Any]]:
        """The kept turns as JSON-ready dicts."""
        return [
            {"turn": t.index, "message": t.message, "query": t.query, "answer": t.answer.to_dict()}
            for t in self.turns
        ]

    def edit(self, instruction: str, **options: Any) -> Any:
        """An `EditPlan` of this video for `instruction` (`grounding_agent.edit.plan_edit`): described moments
        are found with the session's grounder (the agent for compositional ones), highlights use its
        saliency, words and speech its transcript. `options` go to `plan_edit` (e.g. threshold_db)."""
        from grounding_agent.edit import plan_edit

        options.setdefault("grounder", self.grounder)
        options.setdefault("agent", self.agent)
        options.setdefault("use_agent", self._wants_agent)
        options.setdefault("saliency", self.saliency)
        options.setdefault("transcript", self.transcript)
        return plan_edit(self.video, instruction, **options)

    @staticmethod
    def live(watcher: Any, **options: Any) -> Any:
        """Chat over a live watch so far (`conversation.live.LiveSession`): "when did she say X?"."""
        from grounding_agent.conversation.live import LiveSession

        return LiveSession(watcher, **options)

    def summarize(self, seconds: float | None = None, ratio: float | None = None, **options: Any) -> Any:
        """A keyshot summary `EditPlan` (`summaries.summarize`) with this session's saliency and transcript."""
        return summary_reply.summarize(self, seconds=seconds, ratio=ratio, **options)


class _Listener(threading.local):
    """Per thread: the `on_event` of the `ask` running in it (None outside one)."""

    fn: Callable[[str, dict[str, Any]], None] | None = None


def _open(path: str | Path) -> Video:
    from grounding_agent.media.video import open_video

    return open_video(path)
