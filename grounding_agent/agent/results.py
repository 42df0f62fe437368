"""What the agent hands back: each step's grounding (`StepResult`), each returned moment with its typed
evidence (`ComposedMoment`), the whole result (`AgentResult`)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from grounding_agent.agent.compose import Composition
from grounding_agent.agent.rerank import Reranked
from grounding_agent.grounders.base import Grounding, prediction
from grounding_agent.types import Evidence, Moment, Plan, Prediction, Video


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


@dataclass(frozen=True)
class ComposedMoment:
    """One moment the agent returns and the typed trail to it: the composition of sub-event moments it came
    from, the reranker's say, its explanation. (A chat reply is `conversation.answers.Answer`.)

    Attributes:
        moment: the moment with its final score.
        composition: the choice of sub-event moments it was composed from.
        reranked: what the reranker found (None without a reranker).
        explanation: the explanation facts and sentence (set by the explain node).
    """

    moment: Moment
    composition: Composition
    reranked: Reranked | None = None
    explanation: dict[str, Any] | None = None

    def evidence(self) -> list[Evidence]:
        """Every channel's support for this moment: the sub-events it was composed from, then the reranker's."""
        out = [
            Evidence("composition", m.start_s, m.end_s, score=m.score, source=step_id)
            for step_id, m in self.composition.chosen.items()
        ]
        if self.reranked is not None:
            out += self.reranked.evidence()
        else:
            out.append(Evidence("grounder", self.moment.start_s, self.moment.end_s, score=self.moment.score))
        return out


@dataclass
class AgentResult:
    """A query's answer: the plan, each step's grounding, the answers best first (each with its evidence)."""

    video: Video
    query: str
    plan: Plan
    steps: dict[str, StepResult]
    answers: list[ComposedMoment]
    timings_s: dict[str, float]
    model_calls: dict[str, int]
    notes: list[str]

    @property
    def moments(self) -> list[Moment]:
        """The returned moments, best first, each with its explanation."""
        return [a.moment.with_score(a.moment.score, a.explanation) for a in self.answers]

    def evidence(self) -> list[Evidence]:
        """The evidence of every answer, in answer order."""
        return [e for a in self.answers for e in a.evidence()]

    def to_prediction(self, qid: int | str = 0, vid: str | None = None) -> Prediction:
        """The one `Prediction` shape (`grounders.base.prediction`), with the plan, steps and explanations."""
        groundings = [self.steps[s.id].grounding for s in self.plan.steps]
        return prediction(
            qid,
            vid if vid is not None else self.video.path.stem,
            self.query,
            [a.moment for a in self.answers],
            duration_s=self.video.duration_s,
            plan=self.plan.to_dict(),
            steps=[self.steps[s.id].to_dict() for s in self.plan.steps],
            explanations=[a.explanation for a in self.answers],
            raw_text=[t for g in groundings if g is not None for t in g.raw_text],
            parse_failures=[f.to_dict() for g in groundings if g is not None for f in g.failures],
            timings_s=self.timings_s,
            model_calls=self.model_calls,
            notes=self.notes,
            grounder=next((g.info for g in groundings if g is not None and g.info), None),
        )
