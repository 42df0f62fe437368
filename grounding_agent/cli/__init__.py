"""`grounding-agent` command line. Each subcommand lives in its own module with `add_parser` and `run`.

The registry `COMMANDS` maps a subcommand name to its module; the parser's choices come from it.

The top of the house: it may import every library package (and, for `eval` and `finetune`, load those
recipes at run time); nothing in the library imports `cli`. Options and their defaults come from
`options.py` and `grounding_agent.defaults`; a subcommand imports its heavy dependencies only when it runs.
"""

from __future__ import annotations

import argparse
import gc
import importlib
import logging
import os
import re
import sys
from collections.abc import Sequence
from typing import NoReturn

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
    "ui": "ui",
    "chat": "chat",
    "api": "api",
    "edit": "edit",
    "transcribe": "transcribe",
    "watch": "watch",
    "reel": "reel",
    "summarize": "summarize",
    "index": "index",
    "search": "search",
}

HELP: dict[str, str] = {
    "probe": "video metadata and the timestamps a sampling would take",
    "ground": "find when a query happens in a video",
    "plan": "show how a compositional query is decomposed",
    "highlights": "saliency curve and highlight windows of a video",
    "eval": "score predictions / run a grounder over a dataset / analyze a run",
    "serve": "launch the vLLM OpenAI-compatible server with LoRA adapters",
    "finetune": "run a fine-tuning recipe (LoRA/QLoRA SFT, or GRPO with --recipe grpo) from a YAML config",
    "ui": "web app: pick a video, chat, click moments, plan edits (Gradio)",
    "chat": "talk about one video: a REPL, or JSON lines for a chat app",
    "api": "HTTP service (FastAPI): ground, sessions, messages, streaming",
    "edit": "edit a video from an instruction: frame-exact plan, OTIO/EDL/FCPXML/SRT export, ffmpeg render",
    "transcribe": "what is said in a video, with word times (Whisper + VAD); SRT/VTT/JSON",
    "watch": "watch a live stream as it plays: standing alerts, online highlights, clips from a ring recording",
    "reel": "an edit across clips (a library search or --clip): multi-source OTIO/EDL/FCPXML, one render",
    "summarize": "a keyshot summary (15 percent, or --seconds): shots, importance, knapsack; exported like an edit",
    "index": "add videos to a library: frame vectors, transcripts, on-screen text (incremental, resumable)",
    "search": "search every video of a library by what is seen, said and written; --ground refines",
}


class OneLineErrorParser(argparse.ArgumentParser):
    """argparse, but a bad option is one `error: ...` line (exit 2) like every other user error; the full
    usage is one `--help` away. Subcommand parsers inherit the class."""

    def error(self, message: str) -> NoReturn:
        message = re.sub(r"^argument ([^:]+): ", r"\1 ", message)  # "--fps must be > 0", like our errors
        self.exit(2, f"error: {self.prog}: {message} (see {self.prog} --help)\n")


def build_parser(command: str | None = None) -> argparse.ArgumentParser:
    """The CLI parser. With `command`, only that subcommand's module is imported (and given its options);
    the others are listed by name and help alone, so `--help` and light commands never pay for the rest."""
    parser = OneLineErrorParser(prog="grounding-agent", description="Find when things happen in a video.")
    parser.add_argument("--debug", action="store_true", help="show tracebacks and debug logs")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for name, module in COMMANDS.items():
        p = sub.add_parser(name, help=HELP[name], description=HELP[name])
        if name == command:  # `--help` alone lists names and help: it imports no subcommand module
            mod = importlib.import_module(f"grounding_agent.cli.{module}")
            mod.add_arguments(p)
            p.set_defaults(_run=mod.run)
    return parser


def _command_in(argv: Sequence[str]) -> str | None:
    """The subcommand named in argv (the first word that is one), or None."""
    return next((a for a in argv if a in COMMANDS), None)


def main(argv: Sequence[str] | None = None) -> int:
    """Run one command; `argv` None means this process's own command line (the console script), after
    which the process ends: see `_before_exit`."""
    try:
        return _main(argv)
    except BrokenPipeError:
        # `grounding-agent ... --json | head`: the reader left. Exit quietly, like any Unix filter
        # (and point stdout at /dev/null so the interpreter's final flush does not complain either).
        try:
            os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        except (OSError, ValueError, AttributeError):  # stdout is no real file (a test harness)
            pass
        return 141
    finally:
        if argv is None:
            _before_exit()


def _before_exit() -> None:
    """Freeze the heap: the interpreter's last garbage collections would walk every object the imports
    made (with the agent's LLM, the openai SDK alone is ~500 modules of pydantic models: ~0.2 s), spent on
    memory the OS takes back anyway. Only the collector skips them: refcounting still frees objects,
    atexit handlers and the flush of stdout/stderr still run. Not for in-process callers (they pass
    `argv`): their later garbage must stay collectable."""
    gc.freeze()


def _main(argv: Sequence[str] | None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    _safe_stdout()
    parser = build_parser(_command_in(argv))
    try:
        args = parser.parse_args(argv)
    except SystemExit as exc:  # --help (0) or a bad option (2): a return code, for in-process callers too
        return exc.code if isinstance(exc.code, int) else 2
    if not args.debug:
        # Library progress bars and notices would bury the one-line answers/errors this CLI prints.
        os.environ.setdefault("TRANSFORMERS_VERBOSITY", "error")
        os.environ.setdefault("HF_HUB_DISABLE_PROGRESS_BARS", "1")
        os.environ.setdefault("TRANSFORMERS_NO_ADVISORY_WARNINGS", "1")
    logging.basicConfig(
        level=logging.DEBUG if args.debug else logging.WARNING, format="%(levelname)s %(name)s: %(message)s"
    )
    try:
        return int(args._run(args) or 0)
    except GroundingAgentError as exc:
        if args.debug:
            raise
        return _fail(exc)
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130
    except BrokenPipeError:
        raise
    except UnicodeDecodeError as exc:  # an input file or stream that is not UTF-8 text
        if args.debug:
            raise
        return _fail(f"input is not valid UTF-8 text ({exc.reason} at byte {exc.start}); convert it to UTF-8")
    except OSError as exc:  # the environment (a file we may not read, a full disk): one line, as a user error
        if args.debug:
            raise
        return _fail(exc)
    except Exception as exc:  # a bug of ours: still one line, the traceback is one --debug away
        if args.debug:
            raise
        what = f"{type(exc).__name__}: {_one_line(exc)}"
        print(f"error: internal error {what} (rerun with --debug for the traceback)", file=sys.stderr)
        return 1


def _one_line(exc: BaseException) -> str:
    lines = str(exc).strip().splitlines()
    return lines[0][:500] if lines else type(exc).__name__


def _fail(exc: BaseException | str) -> int:
    print(f"error: {exc if isinstance(exc, str) else _one_line(exc)}", file=sys.stderr)
    return 2


def _safe_stdout() -> None:
    """Text that is not valid UTF-8 (a query typed in a Latin-1 terminal arrives with surrogates) is
    written with "?" in its place, never as invalid bytes or a UnicodeEncodeError; read with U+FFFD."""
    for stream in (sys.stdin, sys.stdout, sys.stderr):  # stdin too: a chat typed in a Latin-1 terminal
        try:
            stream.reconfigure(errors="replace")
        except (AttributeError, ValueError):  # not a text file (e.g. replaced by a test harness)
            pass


if __name__ == "__main__":
    sys.exit(main())
