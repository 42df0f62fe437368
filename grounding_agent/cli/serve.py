"""`grounding-agent serve`: vLLM's OpenAI-compatible server with the model and its LoRA adapters.

    grounding-agent serve --model Qwen/Qwen2.5-VL-7B-Instruct --lora charades=runs/lora --port 8000

Prints the API URL once the server is healthy, then runs until Ctrl-C / SIGTERM, which stop the
server (and its workers) before exiting 0. A server that dies on its own exits 2 with its log tail.
"""

from __future__ import annotations

import argparse
import signal
import sys
import time
from types import FrameType

from grounding_agent.cli._common import check_output_path, nonneg_int, port, positive_float, positive_int
from grounding_agent.defaults import COMMANDS, SERVER
from grounding_agent.errors import ConfigError, ServerError


def _key_value(text: str) -> tuple[str, str]:
    key, sep, value = text.partition("=")
    if not sep or not key or not value:
        raise argparse.ArgumentTypeError(f"expected NAME=VALUE, got {text!r}")
    return key.strip(), value.strip()


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--model", required=True, help="hub id or local folder of the base model")
    p.add_argument("--served-model-name", help="name requests use as `model` (default: --model as given)")
    p.add_argument(
        "--lora", action="append", type=_key_value, default=[], metavar="NAME=PATH",
        help="serve a PEFT adapter under NAME (repeatable); requests select it with model=NAME",
    )  # fmt: skip
    p.add_argument("--host", default="127.0.0.1", help="interface to listen on (0.0.0.0 for all)")
    p.add_argument("--port", type=port, default=COMMANDS.serve_port, help="port (0 = any free port)")
    p.add_argument(
        "--max-model-len", type=positive_int, default=SERVER.max_model_len, help="context length in tokens"
    )
    p.add_argument(
        "--limit-mm", action="append", type=_key_value, default=[], metavar="KIND=N",
        help=f"most items of a modality per request, e.g. image=32 (repeatable; default image={SERVER.max_images}, "
        f"video={SERVER.max_videos})",
    )  # fmt: skip
    p.add_argument(
        "--max-lora-rank", type=positive_int, default=SERVER.max_lora_rank, help="largest LoRA rank accepted"
    )
    p.add_argument("--vllm-python", help="python of the vLLM env (default: $GA_VLLM_PYTHON or .venv-vllm)")
    p.add_argument(
        "--startup-timeout",
        type=positive_float,
        default=COMMANDS.startup_timeout_s,
        help="seconds to wait for the server",
    )
    p.add_argument("--log", help="server log file (default: a temp file)")
    p.add_argument("vllm_args", nargs="*", help="extra vLLM arguments after `--`, passed as is")


class _Stop(Exception):
    """SIGINT or SIGTERM arrived."""


def _raise_stop(signum: int, frame: FrameType | None) -> None:
    raise _Stop()


def run(args: argparse.Namespace) -> int:
    from grounding_agent.grounders.serving import VLLMServer
    from grounding_agent.io import check_model_source

    check_model_source(args.model, "--model")  # before a vLLM start that takes half a minute to fail
    if args.log:
        # The log must not replace a file the server reads: the model, an adapter, the vLLM interpreter.
        reads = [("the --model folder", args.model), ("the --vllm-python interpreter", args.vllm_python)]
        reads += [(f"the --lora {name} adapter", path) for name, path in args.lora]
        check_output_path(args.log, "--log", inputs=tuple(reads))
    limits = SERVER.limit_mm_per_prompt()
    for kind, value in args.limit_mm:
        try:
            limits[kind] = nonneg_int(value)
        except argparse.ArgumentTypeError:
            raise ConfigError(f"--limit-mm {kind}={value}: the limit must be a whole number >= 0") from None
    server = VLLMServer(
        model=args.model,
        served_model_name=args.served_model_name,
        loras=dict(args.lora),
        host=args.host,
        port=args.port or None,
        max_model_len=args.max_model_len,
        limit_mm_per_prompt=limits,
        max_lora_rank=args.max_lora_rank,
        extra_args=args.vllm_args,
        python=args.vllm_python,
        log_path=args.log,
    )
    # Handle both explicitly: a process started in the background inherits an *ignored* SIGINT.
    previous = {sig: signal.signal(sig, _raise_stop) for sig in (signal.SIGINT, signal.SIGTERM)}
    try:
        print(f"starting vLLM for {args.model} (log: {server.log_path or 'temp file'}) ...", file=sys.stderr)
        server.start(timeout_s=args.startup_timeout)
        names = [server.served_model_name, *dict(args.lora)]
        print(f"serving {', '.join(names)} at {server.base_url}", flush=True)
        print("press Ctrl-C to stop", file=sys.stderr, flush=True)
        while server.running:
            time.sleep(0.5)
        code = server.stop()
        lines = server.log_tail(200).splitlines()
        last = lines[-1] if lines else "no output"
        cause = next((ln.strip() for ln in reversed(lines) if "Error" in ln), last)[-300:]
        raise ServerError(f"vLLM server exited with code {code}: {cause} (full log: {server.log_path})")
    except _Stop:
        print("stopping vLLM ...", file=sys.stderr, flush=True)
        return 0
    finally:
        for sig in previous:  # a second Ctrl-C must not interrupt the shutdown itself
            signal.signal(sig, signal.SIG_IGN)
        server.stop()
        for sig, handler in previous.items():
            signal.signal(sig, handler)
