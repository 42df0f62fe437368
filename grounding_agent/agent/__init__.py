"""The grounding agent: plan a (compositional) query, ground each sub-event, compose, rerank, explain.

    from grounding_agent.agent import Agent
    result = Agent(grounder).run("clip.mp4", "person opens the fridge, then drinks from a bottle")
    result.to_prediction().to_dict()   # windows + plan + steps + per-moment explanations

Plain modules hold the logic (`planner`, `pipeline` (sub-event grounding and the node methods),
`compose`, `rerank`, `explain`, `coarse_to_fine`); `graph` wires the nodes into a LangGraph
`StateGraph`; `tool` exposes the agent as a LangChain tool / Runnable `ground_video`.
"""

from grounding_agent.agent.compose import Composition, compose
from grounding_agent.agent.pipeline import Agent, AgentConfig, AgentResult, StepResult, ground_steps
from grounding_agent.agent.planner import PLANNERS, LLMPlanner, Planner, RulePlanner, make_planner

__all__ = [
    "PLANNERS",
    "Agent",
    "AgentConfig",
    "AgentResult",
    "Composition",
    "LLMPlanner",
    "Planner",
    "RulePlanner",
    "StepResult",
    "compose",
    "ground_steps",
    "make_planner",
]
