"""The agent as a LangGraph `StateGraph`: plan -> ground -> compose -> rerank -> explain.

Wiring only: every node is a plain method of `pipeline.Agent`, tested on its own.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from langgraph.graph import END, START, StateGraph

from grounding_agent.agent.pipeline import AgentState

if TYPE_CHECKING:
    from grounding_agent.agent.pipeline import Agent

NODES = ("plan", "ground", "compose", "rerank", "explain")


def build_graph(agent: Agent):
    """Compile the linear graph over `agent`'s node methods."""
    graph = StateGraph(AgentState)
    for name in NODES:
        graph.add_node(name, getattr(agent, f"{name}_node"))
    graph.add_edge(START, NODES[0])
    for a, b in zip(NODES, NODES[1:]):
        graph.add_edge(a, b)
    graph.add_edge(NODES[-1], END)
    return graph.compile()
