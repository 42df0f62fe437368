"""`grounding-agent` command line. Each subcommand lives in its own module with `add_parser` and `run`.

The registry `COMMANDS` maps a subcommand name to its module; the parser's choices come from it.
"""

from __future__ import annotations

import argparse
import importlib
import logging
import os
import sys
from collections.abc import Sequence

from grounding_agent.errors import GroundingAgentError

# name -> module under grounding_agent.cli (imported lazily so `probe` never pays for torch).
COMMANDS: dict[str, str] = {
    "probe": "probe",
    "ground": "ground",
    "plan": "plan",
    "highlights": "highlights",
    "eval": "eval",
    "serve": "serve",
    "finetune": "finetune",
}

HELP: dict[str, str] = {
    "probe": "video metadata and the timestamps a sampling would take",
    "ground": "find when a query happens in a video",
    "plan": "show how a compositional query is decomposed",
    "highlights": "saliency curve and highlight windows of a video",
    "eval": "score predictions / run a grounder over a dataset",
    "serve": "launch the vLLM OpenAI-compatible server with LoRA adapters",
    "finetune": "run a LoRA/QLoRA fine-tuning recipe from a YAML config",
}


def build_parser(command: str | None = None) -> argparse.ArgumentParser:
    """The CLI parser. With `command`, only that subcommand's module is imported (and given its options);
    the others are listed by name and help alone, so `--help` and light commands never pay for the rest."""
    parser = argparse.ArgumentParser(prog="grounding-agent", description="Find when things happen in a video.")
    parser.add_argument("--debug", action="store_true", help="show tracebacks and debug logs")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for name, module in COMMANDS.items():
        p = sub.add_parser(name, help=HELP[name], description=HELP[name])
        if command is None or name == command:
            mod = importlib.import_module(f"grounding_agent.cli.{module}")
            mod.add_arguments(p)
            p.set_defaults(_run=mod.run)
    return parser


def _command_in(argv: Sequence[str]) -> str | None:
    """The subcommand named in argv (the first word that is one), or None."""
    return next((a for a in argv if a in COMMANDS), None)


def main(argv: Sequence[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    parser = build_parser(_command_in(argv))
    args = parser.parse_args(argv)
    if not args.debug:
        # Library progress bars and notices would bury the one-line answers/errors this CLI prints.
        os.environ.setdefault("TRANSFORMERS_VERBOSITY", "error")
        os.environ.setdefault("HF_HUB_DISABLE_PROGRESS_BARS", "1")
        os.environ.setdefault("TRANSFORMERS_NO_ADVISORY_WARNINGS", "1")
    logging.basicConfig(level=logging.DEBUG if args.debug else logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    try:
        return int(args._run(args) or 0)
    except GroundingAgentError as exc:
        if args.debug:
            raise
        print(f"error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
