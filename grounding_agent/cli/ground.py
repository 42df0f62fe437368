"""`grounding-agent ground VIDEO "QUERY"`: when does the query happen in the video?

    grounding-agent ground clip.mp4 "person opens the door" --backend hf --model Qwen/Qwen2.5-VL-7B-Instruct
    grounding-agent ground clip.mp4 "person opens the door" --server http://127.0.0.1:8000/v1
    grounding-agent ground clip.mp4 "..." --json     # a Prediction (schemas/prediction.schema.json)
    grounding-agent ground clip.mp4 "X, then Y" --explain   # compositional: the agent plans and composes

A query the rule planner splits into several sub-events goes through the agent (`--agent` / `--no-agent`
override); its JSON adds `plan`, `steps` and, with `--explain`, `explanations`.
"""

from __future__ import annotations

import argparse
import os
from pathlib import Path

from grounding_agent.agent.cli_support import add_agent_arguments, format_agent_output, run_agent, wants_agent
from grounding_agent.cli._common import fmt_s, print_json
from grounding_agent.errors import ConfigError
from grounding_agent.grounders import GROUNDERS
from grounding_agent.grounders.base import BaseGrounder, Grounding
from grounding_agent.types import Video

DEFAULT_SERVER = "http://127.0.0.1:8000/v1"
MODEL_BACKENDS = ("hf", "vllm")


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("video", help="video file")
    p.add_argument("query", help="what to find, e.g. 'the person opens the door'")
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
    p.add_argument("--qid", default="0", help="query id written into the JSON prediction")
    p.add_argument("--json", action="store_true", help="print a Prediction as JSON")
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


def run(args: argparse.Namespace) -> int:
    from grounding_agent.video import open_video

    video = open_video(args.video)
    grounder = build_grounder(args)
    if wants_agent(args, args.query):
        out = run_agent(args, grounder, video, args.query, qid=args.qid)
        out.update(vid=Path(args.video).stem, duration_s=video.duration_s)
        print_json(out) if args.json else print(format_agent_output(out))
        return 0
    grounding = grounder.ground(video, args.query, top_k=args.top_k)
    if args.json:
        prediction = grounding.to_prediction(args.qid, Path(args.video).stem, args.query)
        prediction.extra["duration_s"] = video.duration_s
        print_json(prediction.to_dict())
    else:
        print(_human(video, args.query, grounder, grounding))
    return 0


def _human(video: Video, query: str, grounder: BaseGrounder, grounding: Grounding) -> str:
    lines = [f"{video.path.name} ({video.duration_s:.2f} s), {grounder.name}", f'query: "{query}"']
    for rank, m in enumerate(grounding.moments, 1):
        lines.append(f"  {rank}. {fmt_s(m.start_s)} -> {fmt_s(m.end_s)}   score {m.score:.3f}")
    if grounding.info.get("fallback"):
        lines.append("  (no answer could be read: the whole video is returned with score 0)")
    for failure in grounding.failures:
        lines.append(f"  unreadable answer ({failure.reason}): {failure.text[:120]!r}")
    timings = ", ".join(f"{k} {v:.2f} s" for k, v in grounding.timings_s.items())
    if timings:
        lines.append(f"  time: {timings}")
    return "\n".join(lines)
