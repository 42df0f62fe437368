"""What `grounding-agent ground` needs for `--agent` / `--explain` (the ground command module calls these).

    add_agent_arguments(parser)                    # in ground.add_arguments
    if wants_agent(args, query):                   # --agent, --no-agent, default: auto
        out = run_agent(args, grounder, video, query, qid=...)   # Prediction dict + plan (+ explanations)

Default ("auto"): the agent runs when the rule planner splits the query into more than one step; a simple
query goes straight to the grounder (one model call, nothing to compose).
"""

from __future__ import annotations

import argparse
from typing import Any

from grounding_agent.agent.compose import DEFAULT_BEFORE_TOLERANCE_S
from grounding_agent.agent.explain import ExplanationWriter
from grounding_agent.agent.pipeline import Agent, AgentConfig
from grounding_agent.agent.planner import PLANNERS, RulePlanner, chat_model, make_planner
from grounding_agent.agent.rerank import Reranker, VLMVerifier
from grounding_agent.errors import ConfigError
from grounding_agent.grounders.base import Grounder
from grounding_agent.types import Video


def add_agent_arguments(p: argparse.ArgumentParser) -> None:
    """Options of the agent, as one argument group."""
    g = p.add_argument_group("agent (compositional queries)")
    g.add_argument("--agent", dest="agent", action="store_true", default=None,
                   help="always plan/compose (default: only when the query has several sub-events)")
    g.add_argument("--no-agent", dest="agent", action="store_false", help="never use the agent")
    g.add_argument("--explain", action="store_true", help="add an explanation to every returned moment")
    g.add_argument("--planner", choices=sorted(PLANNERS), help="default: rule (llm needs --server)")
    g.add_argument("--planner-model",
                   help="served model/LoRA name for the llm planner, verifier, explanations (default: the vllm grounder's)")
    g.add_argument("--saliency-model", help="CLIP hub id or folder: rerank with saliency; enables coarse-to-fine")
    g.add_argument("--verify", action="store_true", help="rerank with the served VLM's P(yes) (needs --server)")
    g.add_argument("--explain-llm", action="store_true", help="LLM-written explanation sentences (needs --server)")
    g.add_argument("--step-top-k", type=int, default=5, help="candidates per sub-event (default 5)")
    g.add_argument("--before-tolerance-s", type=float, default=DEFAULT_BEFORE_TOLERANCE_S,
                   help="slack of 'X before Y' in seconds (default 1.0)")
    g.add_argument("--long-video-s", type=float, default=300.0, help="coarse-to-fine above this length (default 300)")
    g.add_argument("--max-vlm-calls", type=int, default=8, help="grounder calls per query on long videos (default 8)")


def wants_agent(args: argparse.Namespace, query: str) -> bool:
    """--agent / --no-agent, else whether the rule planner finds more than one sub-event."""
    agent = getattr(args, "agent", None)
    if agent is not None:
        return bool(agent)
    return len(RulePlanner().plan(query).steps) > 1


def build_agent(args: argparse.Namespace, grounder: Grounder) -> Agent:
    """An `Agent` from parsed options (`--server` / `--model` are read from the ground command's own options).

    Raises:
        ConfigError: an LLM feature without a server, or a bad number.
    """
    server = getattr(args, "server", None)
    # The served model: --planner-model, else the vLLM grounder's own served name (an HF grounder's
    # --model is a local path the server does not know).
    served = getattr(grounder, "model", None)
    model = args.planner_model or (served if isinstance(served, str) else None)
    needs_llm = [flag for flag, on in (("--verify", args.verify), ("--explain-llm", args.explain_llm)) if on]
    if args.planner == "llm":
        needs_llm.append("--planner llm")
    if needs_llm and not (server and model):
        raise ConfigError(f"{' and '.join(needs_llm)} need --server URL and --planner-model NAME (a served model)")
    if args.step_top_k < 1 or args.max_vlm_calls < 1:
        raise ConfigError("--step-top-k and --max-vlm-calls must be >= 1")
    planner = make_planner(args.planner or "rule", server=server, model=model)
    chat = chat_model(server, model) if needs_llm else None
    saliency = None
    if args.saliency_model:
        from grounding_agent.saliency import ClipSaliency

        saliency = ClipSaliency.from_pretrained(args.saliency_model)
    reranker = None
    if saliency is not None or args.verify:
        reranker = Reranker(saliency=saliency, verifier=VLMVerifier(chat) if args.verify else None)
    config = AgentConfig(
        top_k=args.step_top_k,
        before_tolerance_s=args.before_tolerance_s,
        long_video_s=args.long_video_s,
        max_vlm_calls=args.max_vlm_calls,
    )
    writer = ExplanationWriter(chat) if args.explain_llm else None
    return Agent(grounder, planner=planner, reranker=reranker, writer=writer, config=config)


def run_agent(
    args: argparse.Namespace, grounder: Grounder, video: Video | str, query: str, *, qid: int | str = 0
) -> dict[str, Any]:
    """Run the agent; the `Prediction` dict plus `plan`, `steps` and (with --explain) `explanations`."""
    out = build_agent(args, grounder).run(video, query).to_prediction(qid).to_dict()
    if not args.explain:
        out.pop("explanations", None)
    return out


def format_agent_output(out: dict[str, Any]) -> str:
    """Human-readable lines for a `run_agent` result."""
    plan = out["plan"]
    lines = [f"plan ({plan['planner']}): " + "; ".join(f"{s['id']}: {s['text']}" for s in plan["steps"])]
    lines += [f"  {r['a']} {r['kind']} {r['b']}" for r in plan["relations"]]
    for i, (start, end, score) in enumerate(out["pred_relevant_windows"]):
        lines.append(f"{i + 1}. {start:.2f}-{end:.2f} s  score {score:.3f}")
        if out.get("explanations"):
            lines.append(f"   {out['explanations'][i]['sentence']}")
    return "\n".join(lines)
