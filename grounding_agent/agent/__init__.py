"""The grounding agent: plan a (compositional) query, ground each sub-event, compose, rerank, explain.

    from grounding_agent.agent import Agent
    result = Agent(grounder).run("clip.mp4", "person opens the fridge, then drinks from a bottle")
    result.to_prediction().to_dict()   # windows + plan + steps + per-moment explanations
    result.evidence()                  # typed `Evidence`: sub-events, grounder, saliency, verifier

One job per module: `planner` (query -> Plan), `subevents` (each step -> candidates), `compose`
(relations -> answers), `rerank` (saliency, verifier), `explain` (facts, sentence), `coarse_to_fine`
(long videos), `results` (what comes back), `state` + `graph` (the LangGraph wiring), `orchestrator`
(`Agent`, one method per node), `llm` (the one chat client), `tool` (LangChain tool / Runnable).
"""

from grounding_agent.agent.compose import Composition, compose
from grounding_agent.agent.explain import ExplanationWriter
from grounding_agent.agent.llm import chat_model
from grounding_agent.agent.orchestrator import Agent
from grounding_agent.agent.planner import PLANNERS, LLMPlanner, Planner, RulePlanner, make_planner
from grounding_agent.agent.rerank import Reranked, Reranker, VLMVerifier
from grounding_agent.agent.results import AgentResult, Answer, StepResult
from grounding_agent.agent.subevents import ground_steps
from grounding_agent.defaults import AgentConfig

__all__ = [
    "PLANNERS",
    "Agent",
    "AgentConfig",
    "AgentResult",
    "Answer",
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
