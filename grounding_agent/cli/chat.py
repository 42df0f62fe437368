"""`grounding-agent chat VIDEO`: talk about one video (a `Session`): an interactive REPL or JSON lines.

    grounding-agent chat clip.mp4 --server http://127.0.0.1:8000/v1
    > when does the person open the fridge?
    > what does he do after that?
    > /plan            (the last answer's plan)   /history   /export chat.json   /quit

    echo '{"message": "when does he open the door?"}' | grounding-agent chat clip.mp4 --backend uniform --jsonl

`--jsonl`: one JSON object per stdin line, `{"message": "..."}`; one reply per stdout line (an `Answer`,
schemas/answer.schema.json: `text`, `moments` [{start_s, end_s, score, explanation}], `plan`, ...). A bad
line or a failed turn gets `{"error": "..."}` on its line and the session goes on.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Callable
from typing import Any, TextIO

from grounding_agent.cli._common import positive_float
from grounding_agent.cli.options import add_backend_options, build_session
from grounding_agent.errors import ConfigError, GroundingAgentError
from grounding_agent.io import dumps_json, write_json_atomic

HELP_TEXT = (
    "commands: /plan  /history  /export FILE.json  /edit INSTRUCTION  /export FILE.edl|.otio|.fcpxml|.srt [INSTRUCTION]"
    "  /help  /quit   (anything else is a message)"
)


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("video", help="video file")
    add_backend_options(p)
    p.add_argument(
        "--jsonl", action="store_true", help="JSON lines on stdin/stdout (for a chat app driving it)"
    )
    p.add_argument(
        "--follow-s",
        type=positive_float,
        default=None,
        help="how far 'right after' / 'what happens next' look (s)",
    )


def run(args: argparse.Namespace) -> int:
    from grounding_agent.media.video import open_video

    session = build_session(args, open_video(args.video))
    if args.follow_s is not None:
        if args.follow_s <= 0:
            raise ConfigError("--follow-s must be > 0")
        session.follow_s = args.follow_s
    if args.jsonl:
        return serve_jsonl(session, sys.stdin, sys.stdout)
    return repl(session, sys.stdin, sys.stdout)


# --- JSON lines ----------------------------------------------------------------------------------------


def serve_jsonl(session: Any, stdin: TextIO, stdout: TextIO) -> int:
    """One reply line per input line, flushed at once (the caller waits for it)."""
    for line in stdin:
        if not line.strip():
            continue
        stdout.write(dumps_json(jsonl_reply(session, line)) + "\n")
        stdout.flush()
    return 0


def jsonl_reply(session: Any, line: str) -> dict[str, Any]:
    try:
        request = json.loads(line)
    except json.JSONDecodeError as exc:
        return {
            "error": f'not JSON ({exc.msg} at column {exc.colno}); send one object per line: {{"message": "..."}}'
        }
    if not isinstance(request, dict) or not isinstance(request.get("message"), str):
        return {
            "error": 'each line must be a JSON object with a string "message", e.g. {"message": "when does he sit?"}'
        }
    try:
        return session.ask(request["message"]).to_dict()
    except GroundingAgentError as exc:
        return {"error": str(exc).splitlines()[0] if str(exc) else type(exc).__name__}


# --- interactive ---------------------------------------------------------------------------------------


def repl(session: Any, stdin: TextIO, stdout: TextIO) -> int:
    """Read messages until /quit or end of input; commands start with '/'."""
    interactive = stdin.isatty()
    if interactive:
        try:
            import readline  # noqa: F401  (line editing and up-arrow history of typed lines)
        except ImportError:
            pass
    video = session.video
    print(f"{video.path.name} ({video.duration_s:.2f} s), {session.grounder.name}. {HELP_TEXT}", file=stdout)
    while True:
        try:
            line = input("> ") if interactive else stdin.readline()
        except EOFError:
            break
        if not interactive and not line:
            break
        line = line.strip()
        if not line:
            continue
        if line.startswith("/"):
            name, _, rest = line[1:].partition(" ")
            command = COMMANDS.get(name)
            if command is None:
                print(f"unknown command /{name}; {HELP_TEXT}", file=stdout)
                continue
            if command(session, rest.strip(), stdout) == "quit":
                break
            continue
        try:
            print(format_answer(session.ask(line)), file=stdout)
        except GroundingAgentError as exc:
            print(f"error: {exc}", file=stdout)
        stdout.flush()
    return 0


def format_answer(answer: Any) -> str:
    lines = [answer.text]
    for i, m in enumerate(answer.moments, 1):
        lines.append(f"  {i}. {m.start_s:.2f}-{m.end_s:.2f} s  score {m.score:.3f}")
    if answer.reference:
        ref = answer.reference
        lines.append(
            f'  ("{ref["phrase"]}" = turn {ref["turn"]}: searched {answer.window_s[0]:.2f}-{answer.window_s[1]:.2f} s)'
        )
    return "\n".join(lines)


def _plan(session: Any, rest: str, out: TextIO) -> None:
    """The plan of the last turn that grounded something."""
    turn = next((t for t in reversed(session.turns) if t.answer.plan is not None), None)
    if turn is None:
        print("no plan yet: nothing has been grounded" if session.turns else "no turns yet", file=out)
        return
    plan = turn.answer.plan
    print(
        f"plan of turn {turn.index} ({plan.planner}): " + "; ".join(f"{s.id}: {s.text}" for s in plan.steps),
        file=out,
    )
    for r in plan.relations:
        print(f"  {r.a} {r.kind} {r.b}", file=out)


def _history(session: Any, rest: str, out: TextIO) -> None:
    if not session.turns:
        print("no turns yet", file=out)
    for turn in session.turns:
        spans = ", ".join(f"{m.start_s:.2f}-{m.end_s:.2f} s" for m in turn.answer.moments) or "no moment"
        print(f"{turn.index}. {turn.message}  ->  {spans}", file=out)


def _export(session: Any, rest: str, out: TextIO) -> None:
    if not rest:
        print(
            "usage: /export FILE.json (the chat) | /export FILE.edl|.otio|.xml|.fcpxml|.srt|.vtt|.txt [INSTRUCTION] (an edit)",
            file=out,
        )
        return
    if not rest.lower().endswith(".json"):  # an edit: the last /edit plan, or INSTRUCTION's
        from grounding_agent.cli.edit import repl_export

        path, _, instruction = rest.partition(" ")
        repl_export(session, path, instruction.strip(), out)
        return
    data = {"video": session.video.to_dict(), "grounder": session.grounder.name, "turns": session.history()}
    print(f"wrote {write_json_atomic(rest, data)}", file=out)


def _edit(session: Any, rest: str, out: TextIO) -> None:
    from grounding_agent.cli.edit import repl_edit  # the editing stack loads only when asked

    repl_edit(session, rest, out)


def _help(session: Any, rest: str, out: TextIO) -> None:
    print(HELP_TEXT, file=out)


def _quit(session: Any, rest: str, out: TextIO) -> str:
    return "quit"


# name -> handler(session, rest of the line, stdout); returns "quit" to stop. Other helpers add commands here.
COMMANDS: dict[str, Callable[[Any, str, TextIO], Any]] = {
    "plan": _plan,
    "history": _history,
    "export": _export,
    "edit": _edit,
    "help": _help,
    "quit": _quit,
    "exit": _quit,
}
