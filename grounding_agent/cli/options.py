"""The backend options every model-using subcommand shares (ground, chat, edit, eval run, ui, api).

    add_backend_options(parser)            # grounder, sampling, prompt, agent options
    grounder = build_grounder(args)        # the grounder they ask for
    agent = build_agent(args, grounder)    # the agent they ask for (compositional queries)

One spec: a subcommand that grounds gets every option `ground` has, with the same defaults.
"""

from __future__ import annotations

import argparse
import os
from typing import Any

from grounding_agent.agent.compose import DEFAULT_BEFORE_TOLERANCE_S
from grounding_agent.agent.explain import ExplanationWriter
from grounding_agent.agent.pipeline import Agent, AgentConfig
from grounding_agent.agent.planner import PLANNERS, RulePlanner, chat_model, make_planner
from grounding_agent.agent.rerank import Reranker, VLMVerifier
from grounding_agent.errors import ConfigError
from grounding_agent.grounders import GROUNDERS
from grounding_agent.grounders.base import BaseGrounder, Grounder
from grounding_agent.types import Video

DEFAULT_SERVER = "http://127.0.0.1:8000/v1"
MODEL_BACKENDS = ("hf", "vllm")


def add_backend_options(p: argparse.ArgumentParser) -> None:
    """Grounder, sampling and prompt options, then the agent's."""
    p.add_argument("--backend", choices=sorted(GROUNDERS), default="vllm", help="grounder (default: vllm)")
    p.add_argument("--model", help="hf: hub id or folder; vllm: served model name (default: first served)")
    p.add_argument("--adapter", help="hf: PEFT adapter folder; vllm: name of a LoRA served with --lora")
    p.add_argument(
        "--server", default=os.environ.get("GA_VLLM_URL", DEFAULT_SERVER),
        help=f"vLLM OpenAI API URL (default: $GA_VLLM_URL or {DEFAULT_SERVER})",
    )  # fmt: skip
    p.add_argument("--top-k", type=int, default=1, help="how many moments to return")
    p.add_argument("--fps", type=float, default=2.0, help="frames sampled per second of video")
    p.add_argument("--max-frames", type=int, default=32, help="cap on frames (vllm: within its image limit)")
    p.add_argument("--max-pixels", type=int, default=448 * 448, help="resize frames to at most N pixels")
    p.add_argument("--prompt", choices=["grounding", "reasoning"], default="grounding", help="prompt style")
    p.add_argument("--samples", type=int, default=1, help="1 = greedy; N = N sampled answers, by agreement")
    p.add_argument("--structured", action="store_true", help="vllm: force the answer format")
    p.add_argument("--quantization", choices=["4bit", "8bit"], help="hf: bitsandbytes quantization")
    p.add_argument("--timeout", type=float, default=120.0, help="vllm: seconds per request")
    add_agent_arguments(p)


def build_grounder(args: argparse.Namespace) -> BaseGrounder:
    """The grounder the arguments ask for (model loading / server check happen here)."""
    if args.top_k < 1 or args.samples < 1 or args.max_frames < 1 or args.fps <= 0:
        raise ConfigError("--top-k, --samples and --max-frames must be >= 1 and --fps > 0")
    sampling = {"fps": args.fps, "max_frames": args.max_frames, "max_pixels": args.max_pixels}
    common = {**sampling, "prompt": args.prompt, "num_samples": args.samples}
    if args.backend == "hf":
        if not args.model:
            raise ConfigError("--backend hf needs --model (a hub id or a local model folder)")
        return GROUNDERS["hf"](args.model, adapter=args.adapter, quantization=args.quantization, **common)
    if args.backend == "vllm":
        return GROUNDERS["vllm"](
            args.server,
            args.adapter or args.model,
            structured=args.structured,
            timeout_s=args.timeout,
            **common,
        )
    return GROUNDERS[args.backend]()


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
