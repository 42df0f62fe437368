"""The grounding agent: plan a (compositional) query, ground each sub-event, compose, rerank, explain.

    from grounding_agent.agent import Agent
    result = Agent(grounder).run("clip.mp4", "person opens the fridge, then drinks from a bottle")
    result.to_prediction().to_dict()   # windows + plan + steps + per-moment explanations
    result.evidence()                  # typed `Evidence`: sub-events, grounder, saliency, verifier

One job per module: `planner` (query -> Plan), `subevents` (each step -> candidates), `compose`
(relations -> answers), `rerank` (saliency, verifier), `explain` (facts, sentence), `coarse_to_fine`
(long videos), `results` (what comes back), `orchestrator` (`Agent`: the stages called in order, an
`on_step` callback hearing the plan and each sub-event as they happen), `llm` (the one chat client),
`tool` (LangChain tool / Runnable). The stages are a straight line, so no graph library drives them.

May import: the core modules (`types`, `errors`, `defaults`, `io`), `utils`, `media` and `grounders`;
saliency arrives as an injected scorer. Never `conversation`, `http`, `ui` or `cli` (they import it).
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from grounding_agent.agent.compose import Composition, compose
    from grounding_agent.agent.explain import ExplanationWriter
    from grounding_agent.agent.llm import chat_model
    from grounding_agent.agent.orchestrator import Agent
    from grounding_agent.agent.planner import PLANNERS, LLMPlanner, Planner, RulePlanner, make_planner
    from grounding_agent.agent.rerank import Reranked, Reranker, VLMVerifier
    from grounding_agent.agent.results import AgentResult, ComposedMoment, StepResult
    from grounding_agent.agent.subevents import ground_steps
    from grounding_agent.defaults import AgentConfig

# name -> the module that defines it. Loaded on first use: a CLI `ground` on a one-step query needs the
# rule planner alone, not the graph, the reranker and their imports (~0.2 s of its start-up).
_EXPORTS = {
    "Composition": "agent.compose", "compose": "agent.compose",
    "ExplanationWriter": "agent.explain",
    "chat_model": "agent.llm",
    "Agent": "agent.orchestrator",
    "PLANNERS": "agent.planner", "LLMPlanner": "agent.planner", "Planner": "agent.planner",
    "RulePlanner": "agent.planner", "make_planner": "agent.planner",
    "Reranked": "agent.rerank", "Reranker": "agent.rerank", "VLMVerifier": "agent.rerank",
    "AgentResult": "agent.results", "ComposedMoment": "agent.results", "StepResult": "agent.results",
    "ground_steps": "agent.subevents",
    "AgentConfig": "defaults",
}  # fmt: skip


def __getattr__(name: str) -> Any:
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    value = getattr(importlib.import_module(f"grounding_agent.{module}"), name)
    globals()[name] = value  # later look-ups skip this function
    return value


def __dir__() -> list[str]:
    return sorted([*globals(), *_EXPORTS])


__all__ = [
    "PLANNERS",
    "Agent",
    "AgentConfig",
    "AgentResult",
    "ComposedMoment",
    "Composition",
    "ExplanationWriter",
    "LLMPlanner",
    "Planner",
    "Reranked",
    "Reranker",
    "RulePlanner",
    "StepResult",
    "VLMVerifier",
    "chat_model",
    "compose",
    "ground_steps",
    "make_planner",
]
