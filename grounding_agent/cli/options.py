"""The backend options every model-using subcommand shares (ground, chat, edit, eval run, ui, api).

    add_backend_options(parser)            # grounder, sampling, prompt, agent options
    grounder = build_grounder(args)        # the grounder they ask for
    agent = build_agent(args, grounder)    # the agent they ask for (compositional queries)

One spec: a subcommand that grounds gets every option `ground` has, with the same defaults.
"""

from __future__ import annotations

import argparse
import os
from typing import TYPE_CHECKING, Any

from grounding_agent.agent.planner import PLANNERS, RulePlanner
from grounding_agent.cli._common import (
    fps_float,
    frames_int,
    nonneg_float,
    positive_float,
    positive_int,
    top_k_int,
)
from grounding_agent.defaults import AGENT, COMMANDS, DEFAULT_SERVER_URL, SAMPLING, SERVED_SAMPLING, SERVER
from grounding_agent.errors import ConfigError
from grounding_agent.grounders.base import BaseGrounder, Grounder
from grounding_agent.grounders.registry import GROUNDERS, make_grounder
from grounding_agent.types import Video

if TYPE_CHECKING:
    from grounding_agent.agent import Agent

MODEL_BACKENDS = ("hf", "vllm")


def add_backend_options(p: argparse.ArgumentParser, *, multi_server: bool = False) -> None:
    """Grounder, sampling and prompt options, then the agent's and the baselines'.

    `multi_server` (eval run): `--server` repeats, giving a list (None when absent; `default_server()`).
    """
    p.add_argument("--backend", choices=sorted(GROUNDERS), default="vllm", help="grounder (default: vllm)")
    p.add_argument("--model", help="hf: hub id or folder; vllm: served model name (default: first served)")
    p.add_argument("--adapter", help="hf: PEFT adapter folder; vllm: name of a LoRA served with --lora")
    server_help = f"vLLM OpenAI API URL (default: $GA_VLLM_URL or {DEFAULT_SERVER_URL})"
    if multi_server:  # one grounder per server; eval's runner keeps each video's queries on one
        p.add_argument("--server", action="append", metavar="URL", help=server_help + "; repeat to fan out")
    else:
        p.add_argument("--server", default=default_server(), help=server_help)
    p.add_argument(
        "--top-k", type=top_k_int, default=COMMANDS.ground_top_k, help="how many moments to return"
    )
    p.add_argument("--fps", type=fps_float, default=SAMPLING.fps, help="frames sampled per second of video")
    p.add_argument(
        "--max-frames",
        type=frames_int,
        default=None,
        help=f"cap on frames (default: {SAMPLING.max_frames}; vllm {SERVED_SAMPLING.max_frames}, "
        "within the local server's image limit)",
    )
    p.add_argument(
        "--max-pixels",
        type=positive_int,
        default=SAMPLING.max_pixels,
        help="resize frames to at most N pixels",
    )
    p.add_argument("--prompt", choices=["grounding", "reasoning"], default="grounding", help="prompt style")
    p.add_argument(
        "--samples",
        type=positive_int,
        default=COMMANDS.samples,
        help="1 = greedy; N = N sampled answers, by agreement",
    )
    p.add_argument("--structured", action="store_true", help="vllm: force the answer format")
    p.add_argument("--quantization", choices=["4bit", "8bit"], help="hf: bitsandbytes quantization")
    p.add_argument(
        "--timeout",
        type=positive_float,
        default=SERVER.request_timeout_s,
        help="vllm: total seconds per request (a deadline)",
    )
    add_agent_arguments(p)
    add_asr_options(p, ocr=True)
    b = p.add_argument_group("model-free baselines (prior, uniform, random)")
    b.add_argument("--prior-train", help="training annotations the 'prior' baseline is fitted on")
    b.add_argument(
        "--seed",
        type=int,
        default=COMMANDS.seed,
        help=f"seed of the 'random' baseline (default {COMMANDS.seed})",
    )


def default_server() -> str:
    return os.environ.get("GA_VLLM_URL", DEFAULT_SERVER_URL)


def baseline_options(args: argparse.Namespace) -> dict[str, Any]:
    """Keyword arguments of the model-free baseline `args.backend` (options a subcommand lacks: defaults)."""
    opts: dict[str, Any] = {"delay_s": getattr(args, "delay_s", 0.0)}
    if args.backend == "random":
        opts["seed"] = getattr(args, "seed", 0)
    if args.backend == "prior":
        if not getattr(args, "prior_train", None):
            raise ConfigError("--backend prior is fitted on training annotations: pass --prior-train FILE")
        opts |= {"train_gt": args.prior_train, "dataset": getattr(args, "dataset", None) or "charades-sta"}
    return opts


def default_max_frames(backend: str) -> int:
    """--max-frames when not given: a vLLM request must stay within the server's image limit."""
    return SERVED_SAMPLING.max_frames if backend == "vllm" else SAMPLING.max_frames


def add_asr_options(p: argparse.ArgumentParser, *, required: bool = False, ocr: bool = False) -> None:
    """Speech options (ASR): what is said becomes evidence, and speech sub-queries search the transcript;
    with `ocr`, --ocr too (on-screen text sub-queries search the text read on sampled frames)."""
    g = p.add_argument_group("speech (what is said)")
    g.add_argument("--asr-model", metavar="DIR", required=required,
                   help="CTranslate2 Whisper folder (or a faster-whisper name, downloaded if online): "
                        "quoted speech and 'says'/'mentions' sub-queries are found in the transcript")  # fmt: skip
    g.add_argument("--asr-language", metavar="CODE", help="language spoken (default: detected)")
    if ocr:
        g.add_argument("--ocr", action="store_true",
                       help="read on-screen text (RapidOCR): 'the slide titled X' sub-queries search it")  # fmt: skip


def build_transcriber(args: argparse.Namespace):
    """A `speech.Transcriber` for --asr-model, or None without it (a bad folder fails here, in one line)."""
    if not getattr(args, "asr_model", None):
        return None
    from grounding_agent.media.asr import Transcriber

    return Transcriber(args.asr_model, language=getattr(args, "asr_language", None))


def build_grounder(args: argparse.Namespace) -> BaseGrounder:
    """The grounder the arguments ask for (model loading / server check happen here); with --asr-model
    (--ocr), wrapped so that speech (on-screen text) sub-queries are answered from the transcript (the
    text read on screen): `grounders.transcript`."""
    check_backend(args)  # missing extras and model folders: one line, before loading anything
    transcriber = build_transcriber(args)
    grounder = _visual_grounder(args)
    if transcriber is None and not getattr(args, "ocr", False):
        return grounder
    from grounding_agent.grounders.transcript import TranscriptGrounder

    reader = None
    if getattr(args, "ocr", False):
        from grounding_agent.media.ocr import ScreenReader

        reader = ScreenReader()
    return TranscriptGrounder(grounder, transcriber, screen_reader=reader)


def sampling_options(args: argparse.Namespace) -> dict[str, Any]:
    """fps, max_frames and max_pixels of the grounder `build_grounder` makes (--max-frames' default
    depends on the backend)."""
    max_frames = args.max_frames or default_max_frames(args.backend)
    return {"fps": args.fps, "max_frames": max_frames, "max_pixels": args.max_pixels}


def _visual_grounder(args: argparse.Namespace) -> BaseGrounder:
    """The registry's grounder (`grounders.make_grounder`) for --backend and its options."""
    sampling = sampling_options(args)
    if args.top_k < 1 or args.samples < 1 or sampling["max_frames"] < 1 or args.fps <= 0:
        raise ConfigError("--top-k, --samples and --max-frames must be >= 1 and --fps > 0")
    common = {**sampling, "prompt": args.prompt, "num_samples": args.samples}
    if args.backend == "hf":
        options = {"model": args.model, "adapter": args.adapter, "quantization": args.quantization, **common}
    elif args.backend == "vllm":
        model = args.adapter or args.model
        options = {
            "server": args.server,
            "model": model,
            "structured": args.structured,
            "timeout_s": args.timeout,
        }
        options |= common
    else:
        options = baseline_options(args)
    return make_grounder(args.backend, **options)


def add_agent_arguments(p: argparse.ArgumentParser) -> None:
    """Options of the agent, as one argument group."""
    g = p.add_argument_group("agent (compositional queries)")
    on_off = g.add_mutually_exclusive_group()  # "--agent --no-agent" is a contradiction, not "last wins"
    on_off.add_argument(
        "--agent",
        dest="agent",
        action="store_true",
        default=None,
        help="always plan/compose (default: only when the query has several sub-events)",
    )
    on_off.add_argument("--no-agent", dest="agent", action="store_false", help="never use the agent")
    g.add_argument("--explain", action="store_true", help="add an explanation to every returned moment")
    g.add_argument("--planner", choices=sorted(PLANNERS), help="default: rule (llm needs --server)")
    g.add_argument(
        "--planner-model",
        help="served model/LoRA name for the llm planner, verifier, explanations (default: the vllm grounder's)",
    )
    g.add_argument(
        "--saliency-model", help="CLIP hub id or folder: rerank with saliency; enables coarse-to-fine"
    )
    g.add_argument(
        "--verify", action="store_true", help="rerank with the served VLM's P(yes) (needs --server)"
    )
    g.add_argument(
        "--explain-llm", action="store_true", help="LLM-written explanation sentences (needs --server)"
    )
    g.add_argument(
        "--step-top-k",
        type=top_k_int,
        default=AGENT.top_k,
        help=f"candidates per sub-event (default {AGENT.top_k})",
    )
    g.add_argument(
        "--before-tolerance-s",
        type=nonneg_float,
        default=AGENT.before_tolerance_s,
        help=f"slack of 'X before Y' in seconds (default {AGENT.before_tolerance_s})",
    )
    g.add_argument(
        "--long-video-s",
        type=positive_float,
        default=AGENT.long_video_s,
        help=f"coarse-to-fine above this length (default {AGENT.long_video_s:g})",
    )
    g.add_argument(
        "--max-vlm-calls",
        type=positive_int,
        default=AGENT.max_vlm_calls,
        help=f"grounder calls per query on long videos (default {AGENT.max_vlm_calls})",
    )


def check_backend(args: argparse.Namespace, query: str | None = None) -> None:
    """What can be checked before any work starts: the optional dependencies the options need (one line
    naming the extra to install) and a local --model folder that does not exist.

    Raises:
        MissingDependencyError: an extra is not installed.
        ConfigError: --model names a local path that is not there.
    """
    from grounding_agent.io import check_model_source
    from grounding_agent.utils import extras

    needs: list[tuple[str, tuple[tuple[str, tuple[str, ...]], ...]]] = []  # (feature, specs)
    if args.backend == "hf":
        needs.append(("--backend hf", (extras.HF,)))
    elif args.backend == "vllm":
        needs.append(("--backend vllm", (extras.CLIENT,)))
    if query is not None and wants_agent(args, query):
        why = (
            "--agent"
            if getattr(args, "agent", None)
            else "a query with several sub-events (the agent; --no-agent skips it)"
        )
        needs.append((why, (extras.AGENT,)))
    flags = (("--verify", getattr(args, "verify", False)), ("--explain-llm", getattr(args, "explain_llm", False)),
             ("--planner llm", getattr(args, "planner", None) == "llm"))  # fmt: skip
    for flag, on in flags:
        if on:
            needs.append((flag, (extras.LLM_CHAT,)))
    if getattr(args, "saliency_model", None):
        needs.append(("--saliency-model", (extras.HF,)))
    extras.require_all(needs)
    if args.backend == "hf" and getattr(args, "model", None):
        check_model_source(args.model, "--model")
    if getattr(args, "saliency_model", None):
        check_model_source(args.saliency_model, "--saliency-model")


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
    # Here, not at the top: a one-step `ground` never builds an agent (~0.2 s of imports).
    from grounding_agent.agent import Agent, AgentConfig, ExplanationWriter, Reranker, VLMVerifier, chat_model
    from grounding_agent.agent.planner import make_planner

    server = getattr(args, "server", None)
    # The served model: --planner-model, else the vLLM grounder's own served name (an HF grounder's
    # --model is a local path the server does not know: it has none).
    model = args.planner_model or grounder.served_model
    needs_llm = [flag for flag, on in (("--verify", args.verify), ("--explain-llm", args.explain_llm)) if on]
    if args.planner == "llm":
        needs_llm.append("--planner llm")
    if needs_llm and not (server and model):
        raise ConfigError(
            f"{' and '.join(needs_llm)} need --server URL and --planner-model NAME (a served model)"
        )
    if args.step_top_k < 1 or args.max_vlm_calls < 1:
        raise ConfigError("--step-top-k and --max-vlm-calls must be >= 1")
    timeout_s = getattr(args, "timeout", None) or SERVER.request_timeout_s
    planner = make_planner(args.planner or "rule", server=server, model=model, timeout_s=timeout_s)
    chat = chat_model(server, model, timeout_s=timeout_s) if needs_llm else None
    saliency = None
    if args.saliency_model:
        from grounding_agent.highlights.clip import ClipSaliency

        saliency = ClipSaliency.from_pretrained(args.saliency_model)
    reranker = None
    speech = grounder.transcriber  # --asr-model: rerank by the words spoken too
    if saliency is not None or args.verify or speech is not None:
        reranker = Reranker(
            saliency=saliency, verifier=VLMVerifier(chat) if args.verify else None, speech=speech
        )
    config = AgentConfig(
        top_k=args.step_top_k,
        top_n=args.top_k,  # --top-k: moments returned, on the agent path too
        before_tolerance_s=args.before_tolerance_s,
        long_video_s=args.long_video_s,
        max_vlm_calls=args.max_vlm_calls,
    )
    writer = ExplanationWriter(chat) if args.explain_llm else None
    return Agent(grounder, planner=planner, reranker=reranker, writer=writer, config=config)


def build_session(
    args: argparse.Namespace, video: Video | str, *, grounder: Grounder | None = None, agent: Any = None
):
    """A `session.Session` over `video` from parsed backend options (the agent handles compositional
    queries unless --no-agent; --saliency-model's CLIP model also scores the session's frames).

    Pass `grounder` and `agent` to share loaded models between sessions (chat, HTTP API, UI)."""
    from grounding_agent.conversation.session import Session

    grounder = grounder or build_grounder(args)
    if agent is None and getattr(args, "agent", None) is not False:
        agent = build_agent(args, grounder)
    saliency = agent.reranker.saliency if agent is not None and agent.reranker is not None else None
    transcript = grounder.transcript(video)  # None without --asr-model
    return Session(video, grounder, saliency=saliency, agent=agent, top_k=args.top_k,
                   use_agent=getattr(args, "agent", None), transcript=transcript)  # fmt: skip


def run_agent(
    args: argparse.Namespace, grounder: Grounder, video: Video | str, query: str, *, qid: int | str = 0
) -> dict[str, Any]:
    """Run the agent; the `Prediction` dict (`plan`, `steps`; `explanations` filled in with --explain)."""
    out = build_agent(args, grounder).run(video, query).to_prediction(qid).to_dict()
    if not args.explain:  # same keys either way (one Prediction shape); the entries only with --explain
        out["explanations"] = [None] * len(out["explanations"])
    return out


def format_agent_output(out: dict[str, Any]) -> str:
    """Human-readable lines for a `run_agent` result."""
    plan = out["plan"]
    lines = [f"plan ({plan['planner']}): " + "; ".join(f"{s['id']}: {s['text']}" for s in plan["steps"])]
    lines += [f"  {r['a']} {r['kind']} {r['b']}" for r in plan["relations"]]
    for i, (start, end, score) in enumerate(out["pred_relevant_windows"]):
        lines.append(f"{i + 1}. {start:.2f}-{end:.2f} s  score {score:.3f}")
        if out.get("explanations") and out["explanations"][i]:
            lines.append(f"   {out['explanations'][i]['sentence']}")
    return "\n".join(lines)
