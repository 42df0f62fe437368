"""`grounding-agent plan "QUERY" [--json]`: show how a query decomposes into sub-events.

With no LLM configured the rule planner is used; `--server URL --model NAME` plans with the served model
(falling back to the rule planner, with a note, when its answer is not a valid plan).
"""

from __future__ import annotations

import argparse

from grounding_agent.agent.planner import PLANNERS, make_planner
from grounding_agent.cli._common import positive_float, print_json, text_arg
from grounding_agent.defaults import SERVER
from grounding_agent.types import Plan


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "query", type=text_arg, help="the query, e.g. 'person opens the fridge, then drinks from a bottle'"
    )
    p.add_argument("--json", action="store_true", help="print the plan as JSON (schemas/plan.schema.json)")
    p.add_argument("--planner", choices=sorted(PLANNERS), help="default: llm with --server, else rule")
    p.add_argument(
        "--server", help="OpenAI-compatible base URL of the vLLM server, e.g. http://127.0.0.1:8000/v1"
    )
    p.add_argument("--model", help="served model (or LoRA) name to plan with")
    p.add_argument(
        "--timeout",
        type=positive_float,
        default=SERVER.request_timeout_s,
        help="llm: total seconds per request",
    )


def format_plan(plan: Plan) -> str:
    """A short human-readable rendering of a plan."""
    lines = [f"query:   {plan.query}", f"planner: {plan.planner}"]
    lines += [f"  {s.id}: {s.text}" for s in plan.steps]
    lines += [f"  {r.a} {r.kind} {r.b}" for r in plan.relations]
    lines.append(f"returns: {'the span of all steps' if plan.target == 'span' else plan.target}")
    lines += [f"note:    {n}" for n in plan.notes]
    return "\n".join(lines)


def run(args: argparse.Namespace) -> int:
    if (args.planner or ("llm" if args.server else "rule")) == "llm":
        from grounding_agent.utils import extras

        extras.require_spec(extras.LLM_CHAT, "the llm planner")
    planner = make_planner(args.planner, server=args.server, model=args.model, timeout_s=args.timeout)
    plan = planner.plan(args.query)
    if args.json:
        print_json(plan.to_dict())
    else:
        print(format_plan(plan))
    return 0
