"""Explanations: why a moment was returned — plan, sub-event windows and scores, saliency, verifier, a sentence.

The sentence is templated (`prompts/explain.yaml`, part "sentence") and always available; with an LLM
configured (`ExplanationWriter`) it is rewritten from the same facts, and the templated one is kept when
the LLM's answer is empty or the call fails.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Mapping
from typing import Any

from grounding_agent.agent.compose import satisfies
from grounding_agent.agent.llm import invoke_chat, message_text
from grounding_agent.agent.results import ComposedMoment, StepResult
from grounding_agent.errors import GroundingAgentError
from grounding_agent.types import Plan
from grounding_agent.utils.prompts import load_prompt

# The prompt asks for <= 40 words; longer answers are rejected (tiny or confused models ramble).
MAX_LLM_SENTENCE_WORDS = 80

log = logging.getLogger(__name__)


def _r(x: float) -> float:
    return round(float(x), 2)


def explanation_facts(
    plan: Plan, answer: ComposedMoment, steps: Mapping[str, StepResult], before_tolerance_s: float
) -> dict[str, Any]:
    """The structured part of an explanation (everything but the sentence), from the answer's typed trail."""
    composition, moment, reranked = answer.composition, answer.moment, answer.reranked
    sub_events = []
    for step in plan.steps:
        chosen = composition.chosen[step.id]
        result = steps.get(step.id)
        event = {
            "id": step.id,
            "text": step.text,
            "window_s": [_r(chosen.start_s), _r(chosen.end_s)],
            "score": round(chosen.score, 4),
            "searched_s": [_r(t) for t in result.window_s] if result else None,
            "candidates": len(result.candidates) if result else None,
        }
        said = (chosen.explanation or {}).get("said")  # a speech sub-event: the words the transcript heard
        if said:
            event["said"] = said
        sub_events.append(event)
    relations = [
        {
            "kind": r.kind,
            "a": r.a,
            "b": r.b,
            "satisfied": satisfies(r, composition.chosen[r.a], composition.chosen[r.b], before_tolerance_s),
        }
        for r in plan.relations
    ]
    return {
        "plan": plan.to_dict(),
        "target": plan.target,
        "moment_s": [_r(moment.start_s), _r(moment.end_s)],
        "score": round(moment.score, 4),
        "grounder_score": round(reranked.grounder_score if reranked else composition.moment.score, 4),
        "sub_events": sub_events,
        "relations": relations,
        "consistent": composition.consistent,
        "saliency": reranked.saliency.to_dict() if reranked and reranked.saliency else None,
        "verifier": reranked.verifier.to_dict() if reranked and reranked.verifier else None,
        **({"speech": reranked.speech.to_dict()} if reranked and reranked.speech is not None else {}),
    }


def template_sentence(facts: Mapping[str, Any]) -> str:
    """One plain sentence from the facts, rendered from `prompts/explain.yaml`."""
    plan = facts["plan"]
    steps = {s["id"]: s["text"] for s in plan["steps"]}
    if facts["target"] == "span":
        what = f'"{plan["query"].rstrip(". ")}"' if len(steps) == 1 else "The whole sequence"
    else:
        what = f'"{steps[facts["target"]]}"'
    words = {"before": "before", "during": "during"}
    relations = "; ".join(
        f'"{steps[r["a"]]}" {words[r["kind"]]} "{steps[r["b"]]}"' + ("" if r["satisfied"] else " (not met)")
        for r in facts["relations"]
    )
    events = ", ".join(
        f'"{e["text"]}" at {e["window_s"][0]}-{e["window_s"][1]} s'
        + (f' (said: "{e["said"]}")' if e.get("said") else "")
        for e in facts["sub_events"]
    )
    said = facts["sub_events"][0].get("said") if len(facts["sub_events"]) == 1 else None
    sal, ver = facts.get("saliency"), facts.get("verifier")
    return load_prompt("explain").render(
        "sentence",
        what=what,
        start_s=facts["moment_s"][0],
        end_s=facts["moment_s"][1],
        score=round(facts["score"], 2),
        events=events if len(facts["sub_events"]) > 1 else (f'said: "{said}"' if said else ""),
        relations=relations,
        inconsistent=not facts["consistent"],
        saliency_peak_s=f"{sal['peak_time_s']:.2f}" if sal else "",
        verifier_answer=repr(ver["answer"]) if ver else "",
        verifier_p_yes=f"{ver['p_yes']:.2f}" if ver else "",
    )


class ExplanationWriter:
    """Rewrites the facts as one sentence with a LangChain chat model (e.g. ChatOpenAI on vLLM)."""

    def __init__(self, chat_model: Any):
        self.model = chat_model
        self.prompt = load_prompt("explain")

    def write(self, query: str, facts: Mapping[str, Any]) -> str:
        compact = {k: v for k, v in facts.items() if k != "plan"}
        messages = [
            ("system", self.prompt.render("system")),
            ("human", self.prompt.render("user", query=query, facts=json.dumps(compact, ensure_ascii=False))),
        ]
        return " ".join(message_text(invoke_chat(self.model, messages, what="explanation")).split())


def explain(
    plan: Plan,
    answer: ComposedMoment,
    steps: Mapping[str, StepResult],
    *,
    before_tolerance_s: float,
    writer: ExplanationWriter | None = None,
) -> dict[str, Any]:
    """The full explanation of `answer.moment` (the reranked form of its composition's moment)."""
    facts = explanation_facts(plan, answer, steps, before_tolerance_s)
    facts["sentence"] = template_sentence(facts)
    facts["sentence_by"] = "template"
    if writer is not None:
        try:
            written = writer.write(plan.query, facts)
        except GroundingAgentError as exc:
            log.warning("explanation LLM failed (%s); keeping the templated sentence", exc)
            facts["notes"] = [f"explanation LLM failed: {exc}"]
        else:
            if written and len(written.split()) <= MAX_LLM_SENTENCE_WORDS:
                facts["template_sentence"], facts["sentence"], facts["sentence_by"] = (
                    facts["sentence"],
                    written,
                    "llm",
                )
            else:  # a rambling (or empty) answer is worse than the template
                facts["notes"] = [
                    f"explanation LLM answer rejected ({len(written.split())} words): {written[:120]!r}"
                ]
    return facts
