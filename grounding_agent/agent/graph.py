"""The agent as a LangGraph `StateGraph`: plan -> ground -> compose -> rerank -> explain.

Wiring only: every node is a plain method `NAME_node(state) -> dict` of the object given (`Agent`),
tested on its own.
"""

from __future__ import annotations

from typing import Any

from langgraph.graph import END, START, StateGraph

from grounding_agent.agent.state import AgentState

NODES = ("plan", "ground", "compose", "rerank", "explain")


def build_graph(nodes: Any):
    """Compile the linear graph over `nodes`' `plan_node`, `ground_node`, ... methods."""
    graph = StateGraph(AgentState)
    for name in NODES:
        graph.add_node(name, getattr(nodes, f"{name}_node"))
    graph.add_edge(START, NODES[0])
    for a, b in zip(NODES, NODES[1:]):
        graph.add_edge(a, b)
    graph.add_edge(NODES[-1], END)
    return graph.compile()
