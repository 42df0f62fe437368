"""`grounding-agent chat VIDEO`: talk about one video (a `Session`): an interactive REPL or JSON lines.

    grounding-agent chat clip.mp4 --server http://127.0.0.1:8000/v1
    > when does the person open the fridge?
    > what does he do after that?
    > /plan            (the last answer's plan)   /history   /export chat.json   /quit

    echo '{"message": "when does he open the door?"}' | grounding-agent chat clip.mp4 --backend uniform --jsonl

    grounding-agent chat --live udp://127.0.0.1:5000 --out w --asr-model DIR
    > when did she mention the price?        (moments in stream time, from what was said so far)
    > what just happened?                    (what was said, shown and reported in the last 30 s)

`--jsonl`: one JSON object per stdin line, `{"message": "..."}`; one reply per stdout line (an `Answer`,
schemas/answer.schema.json: `text`, `moments` [{start_s, end_s, score, explanation}], `plan`, ...). A bad
line or a failed turn gets `{"error": "..."}` on its line and the session goes on. A message that starts
with "/" is a command, as at the prompt (`{"message": "/edit cut 0:05 to 0:10"}`): its reply is
`{"command": "edit", "output": "..."}`, or `{"error": "..."}`.

`--live SOURCE`: a watch of the stream (`live.Watcher`, `--fps`, `--keep-s`, its recording under `--out`)
runs in a background thread while the chat answers from what it kept (`conversation.live.LiveSession`, no
model call), in either mode; `/quit` or the end of input stops the watch and writes `--out`/report.json.
"""

from __future__ import annotations

import argparse
import io
import json
import logging
import sys
import threading
import time
import weakref
from collections.abc import Callable, Iterator
from typing import Any, TextIO

from grounding_agent.cli._common import command_inputs, positive_float
from grounding_agent.cli.options import add_backend_options, build_session
from grounding_agent.cli.terminal import CleanWriter
from grounding_agent.cli.watch import SOURCE_HELP, add_recording_arguments
from grounding_agent.defaults import LIMITS, LIVE, SAMPLING
from grounding_agent.errors import ConfigError, GroundingAgentError, StreamError
from grounding_agent.io import dumps_json, refuse_inputs, write_json_atomic

log = logging.getLogger(__name__)

HELP_TEXT = (
    "commands: /plan  /history  /export FILE.json  /edit INSTRUCTION  /export FILE.edl|.otio|.fcpxml|.srt [INSTRUCTION]"
    "  /help  /quit   (anything else is a message)"
)
LIVE_HELP_TEXT = (
    "commands: /history  /export FILE.json  /help  /quit   (anything else is a question about the stream)"
)


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("video", nargs="?", help="video file (or --library DIR: talk about a whole library)")
    p.add_argument(
        "--library", metavar="DIR|URL", help="talk about every video of this library: questions are searched "
        "across it, follow-ups go to the video found (`grounding-agent index`)",
    )  # fmt: skip
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
    p.add_argument("--live", metavar="SOURCE", help="talk about a live stream as it plays (needs --asr-model "
                   f"and --out): {SOURCE_HELP}")  # fmt: skip
    add_recording_arguments(p, out_required=False)
    p.set_defaults(fps=None)  # resolved in `run`: SAMPLING.fps for a video, LIVE.fps for --live


def run(args: argparse.Namespace) -> int:
    from grounding_agent.media.video import open_video

    if sum(map(bool, (args.video, args.library, args.live))) != 1:
        raise ConfigError(
            "give a VIDEO, --library DIR (a whole library) or --live SOURCE (a stream), one of them"
        )
    if args.live:
        return run_live(args)
    args.fps = SAMPLING.fps if args.fps is None else args.fps
    if args.library:
        return run_library(args)
    session = build_session(args, open_video(args.video))
    _INPUTS[session] = command_inputs(args)  # what /export must never write over
    if args.follow_s is not None:
        if args.follow_s <= 0:
            raise ConfigError("--follow-s must be > 0")
        session.follow_s = args.follow_s
    if args.jsonl:
        return serve_jsonl(session, sys.stdin, sys.stdout)
    return repl(session, sys.stdin, sys.stdout)


def run_library(args: argparse.Namespace) -> int:
    """`chat --library DIR`: each line searched across the library, or handed to the video found."""
    from grounding_agent.cli.options import build_agent, build_grounder
    from grounding_agent.library import Library
    from grounding_agent.library.chat import LibraryChat

    grounder = build_grounder(args)
    agent = None if args.agent is False else build_agent(args, grounder)
    kwargs = {"grounder": grounder, "agent": agent, "top_k": args.top_k, "use_agent": args.agent}
    chat = LibraryChat(Library(args.library), session_kwargs=kwargs)
    for line in bounded_lines(sys.stdin, LIMITS.max_line_chars):
        message = _library_message(line, args.jsonl)
        if isinstance(message, dict) or not message.strip():
            reply: dict[str, Any] = message if isinstance(message, dict) else {}
        else:
            answer, why = guarded(chat.ask, message)
            reply = {"error": why} if why else answer
        if reply:
            text = dumps_json(reply) if args.jsonl else reply.get("text") or f"error: {reply['error']}"
            sys.stdout.write(text + "\n")
            sys.stdout.flush()
    return 0


def _library_message(line: str | None, jsonl: bool) -> str | dict[str, Any]:
    """The message of one input line, or the `{"error"}` reply it gets."""
    if line is None:
        return {"error": _TOO_LONG}
    if not jsonl or not line.strip():
        return line.strip()
    try:
        request = json.loads(line)
    except (json.JSONDecodeError, RecursionError, ValueError):
        return {"error": 'not a JSON line; send one object per line: {"message": "..."}'}
    if not isinstance(request, dict) or not isinstance(request.get("message"), str):
        return {"error": 'each line must be a JSON object with a string "message"'}
    return request["message"]


# --- JSON lines ----------------------------------------------------------------------------------------


def serve_jsonl(session: Any, stdin: TextIO, stdout: TextIO, commands: Commands | None = None) -> int:
    """One reply line per input line, flushed at once (the caller waits for it). Nothing a line holds ends
    the session: a bad line, a failed turn or command is an `{"error": ...}` line and the next is read."""
    for line in bounded_lines(stdin, LIMITS.max_line_chars):
        if line is not None and not line.strip():
            continue
        reply = jsonl_reply(session, line, commands) if line is not None else {"error": _TOO_LONG}
        stdout.write(dumps_json(reply) + "\n")
        stdout.flush()
        if reply.get("command") == "quit":
            break
    return 0


_TOO_LONG = (
    f"line longer than {LIMITS.max_line_chars:,} characters (skipped); send one short JSON object per line"
)


def bounded_lines(stream: TextIO, limit: int) -> Iterator[str | None]:
    """The lines of `stream`, or None for one longer than `limit`: read past in pieces, never held whole."""
    while line := stream.readline(limit + 1):
        if len(line) <= limit or line.endswith("\n"):
            yield line
            continue
        while line and not line.endswith("\n"):
            line = stream.readline(limit)
        yield None


def jsonl_reply(session: Any, line: str, commands: Commands | None = None) -> dict[str, Any]:
    """The reply to one line: an `Answer` dict, a command's `{"command", "output"}`, or `{"error"}`."""
    try:
        request = json.loads(line)
    except json.JSONDecodeError as exc:
        return {
            "error": f'not JSON ({exc.msg} at column {exc.colno}); send one object per line: {{"message": "..."}}'
        }
    except (RecursionError, ValueError):  # 50,000-deep nesting; a number of 5,000 digits
        return {
            "error": 'not a JSON line this chat reads (nested too deep or a number too long); send {"message": "..."}'
        }
    if not isinstance(request, dict) or not isinstance(request.get("message"), str):
        return {
            "error": 'each line must be a JSON object with a string "message", e.g. {"message": "when does he sit?"}'
        }
    message = request["message"].strip()
    if message.startswith("/"):  # a command, as typed at the prompt
        return _command_reply(session, message, commands or COMMANDS)
    answer, why = guarded(_ask_dict, session, request["message"])
    return {"error": why} if why else answer


def _command_reply(session: Any, line: str, commands: Commands) -> dict[str, Any]:
    name, _, rest = line[1:].partition(" ")
    command = commands.get(name)
    if command is None:
        return {"error": f"unknown command /{name[:40]}; {_help_text(commands)}"}
    out = io.StringIO()
    result, why = guarded(command, session, rest.strip(), out)
    text = out.getvalue().strip()
    errors = [ln.removeprefix("error: ") for ln in text.splitlines() if ln.startswith("error: ")]
    if why or errors:
        return {"error": why or errors[0]}
    return {"command": "quit" if result == "quit" else name, "output": text}


def _ask_dict(session: Any, message: str) -> dict[str, Any]:
    return session.ask(message).to_dict()


def _ask_text(session: Any, message: str) -> str:
    return format_answer(session.ask(message))


def guarded(call: Callable[..., Any], *args: Any) -> tuple[Any, str | None]:
    """(call(*args), None), or (None, one line saying why) when it raised: a turn or command that fails (a typed
    error, or a library's own exception on hostile input) never ends the conversation."""
    try:
        return call(*args), None
    except GroundingAgentError as exc:
        return None, _first_line(exc)
    except Exception as exc:  # noqa: BLE001 (the REPL's boundary: the session outlives any one turn)
        log.debug("chat turn failed", exc_info=True)
        return None, f"internal error {type(exc).__name__}: {_first_line(exc)} (nothing else changed)"


def _first_line(exc: BaseException) -> str:
    lines = str(exc).splitlines()
    return lines[0][:500] if lines else type(exc).__name__


# --- interactive ---------------------------------------------------------------------------------------


def repl(
    session: Any,
    stdin: TextIO,
    stdout: TextIO,
    *,
    commands: Commands | None = None,
    banner: str | None = None,
) -> int:
    """Read messages until /quit or end of input; commands start with '/'. Everything printed goes through
    the terminal sanitizer (`terminal.clean`): model, transcript and OCR text may hold escape sequences."""
    commands = commands or COMMANDS
    stdout = CleanWriter(stdout)
    interactive = stdin.isatty()
    if interactive:
        try:
            import readline  # noqa: F401  (line editing and up-arrow history of typed lines)
        except ImportError:
            pass
    if banner is None:
        video = session.video
        banner = f"{video.path.name} ({video.duration_s:.2f} s), {session.grounder.name}. {HELP_TEXT}"
    print(banner, file=stdout)
    lines = bounded_lines(stdin, LIMITS.max_line_chars)
    while True:
        try:
            line = input("> ") if interactive else next(lines, False)
        except EOFError:
            break
        if line is False:
            break
        if line is None or len(line) > LIMITS.max_line_chars:
            print(f"error: {_TOO_LONG}", file=stdout)
            continue
        line = line.strip()
        if not line:
            continue
        if line.startswith("/"):
            name, _, rest = line[1:].partition(" ")
            command = commands.get(name)
            if command is None:
                print(f"unknown command /{name[:40]}; {_help_text(commands)}", file=stdout)
                continue
            result, why = guarded(command, session, rest.strip(), stdout)
            if why:
                print(f"error: {why}", file=stdout)
            if result == "quit":
                break
            continue
        text, why = guarded(_ask_text, session, line)
        print(f"error: {why}" if why else text, file=stdout)
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
    is_chat = rest.lower().endswith(".json")
    path, _, instruction = (rest, "", "") if is_chat else rest.partition(" ")
    inputs = [("the video this chat is about", session.video.path), *_INPUTS.get(session, [])]
    try:
        refuse_inputs([("/export", path)], inputs)
        if not is_chat:  # an edit: the last /edit plan, or INSTRUCTION's
            from grounding_agent.cli.edit import repl_export

            repl_export(session, path, instruction.strip(), out)
            return
        data = {
            "video": session.video.to_dict(),
            "grounder": session.grounder.name,
            "turns": session.history(),
        }
        print(f"wrote {write_json_atomic(path, data)}", file=out)
    except GroundingAgentError as exc:  # one line, and the conversation goes on
        print(f"error: {exc}", file=out)


# session -> the files its command reads (the video, --prior-train ...), set by `run`.
_INPUTS: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()


def _edit(session: Any, rest: str, out: TextIO) -> None:
    from grounding_agent.cli.edit import repl_edit  # the editing stack loads only when asked

    repl_edit(session, rest, out)


def _help(session: Any, rest: str, out: TextIO) -> None:
    print(HELP_TEXT, file=out)


def _quit(session: Any, rest: str, out: TextIO) -> str:
    return "quit"


Commands = dict[str, Callable[[Any, str, TextIO], Any]]
# name -> handler(session, rest of the line, stdout); returns "quit" to stop. Other helpers add commands here.
COMMANDS: Commands = {
    "plan": _plan,
    "history": _history,
    "export": _export,
    "edit": _edit,
    "help": _help,
    "quit": _quit,
    "exit": _quit,
}


def _help_text(commands: Commands) -> str:
    return LIVE_HELP_TEXT if commands is LIVE_COMMANDS else HELP_TEXT


# --- a live stream (--live SOURCE) ---------------------------------------------------------------------


def run_live(args: argparse.Namespace) -> int:
    """`chat --live SOURCE`: see the module docstring. The source's error (it cannot be opened) is the
    command's one-line error; a watch that ends later leaves the chat answering from what it kept."""
    from grounding_agent.cli.watch import check_out, live_whisper, write_report
    from grounding_agent.conversation.session import Session
    from grounding_agent.live import Watcher, WatchOptions

    if args.live == "-":
        raise ConfigError("chat --live -: stdin carries the messages; give the stream's URL or a file")
    if not args.out:
        raise ConfigError("chat --live needs --out DIR: the stream's ring recording and report go there")
    if not args.asr_model:
        raise ConfigError(
            "chat --live answers from what is said: pass --asr-model DIR (a CTranslate2 Whisper folder)"
        )
    out = check_out(args.out, args.live)
    whisper = live_whisper(args, "chat --live")
    options = WatchOptions(fps=args.fps or LIVE.fps, keep_s=args.keep_s, asr_language=args.asr_language)
    watch = BackgroundWatch(Watcher(args.live, options, out, whisper=whisper))
    watch.start(wait_s=options.timeout_s + LIVE.backoff_max_s)
    try:
        session = Session.live(watch.watcher)
        if args.jsonl:
            return serve_jsonl(session, sys.stdin, sys.stdout, LIVE_COMMANDS)
        banner = f"live: {args.live}, answering from what was said so far. {LIVE_HELP_TEXT}"
        return repl(session, sys.stdin, sys.stdout, commands=LIVE_COMMANDS, banner=banner)
    finally:
        report = watch.stop(wait_s=LIVE.chat_stop_s)
        if report is not None:
            write_report(out, report.to_dict())


class BackgroundWatch:
    """A `live.Watcher` run in a daemon thread for a chat over it."""

    POLL_S = 0.05

    def __init__(self, watcher: Any):
        self.watcher = watcher
        self.error: BaseException | None = None
        self._thread = threading.Thread(target=self._run, name="chat-live-watch", daemon=True)

    def _run(self) -> None:
        try:
            self.watcher.run()
        except Exception as exc:  # noqa: BLE001 - handed to the chat's thread by `start`
            self.error = exc

    def _connected(self) -> bool:
        source = self.watcher.source
        return source is not None and source.connects > 0

    def start(self, wait_s: float) -> None:
        """Start the watch; wait (at most `wait_s`) until the source is open, or raise its error in one line."""
        self._thread.start()
        deadline = time.monotonic() + wait_s
        while self._thread.is_alive() and not self._connected() and time.monotonic() < deadline:
            time.sleep(self.POLL_S)
        if isinstance(self.error, GroundingAgentError):
            raise self.error
        if self.error is not None:
            raise StreamError(f"{self.watcher.spec}: the watch failed ({_first_line(self.error)})")

    def stop(self, wait_s: float) -> Any:
        """Stop the watch (after the packet in hand) and wait for it to finish; its report (None: it did not
        finish within `wait_s`, e.g. a silent source still timing out; the daemon thread ends with us)."""
        self.watcher.stop()
        self._thread.join(wait_s)
        if self._thread.is_alive():
            print(f"the watch did not finish within {wait_s:g} s; no report.json", file=sys.stderr)
            return None
        return self.watcher.report


def _live_export(session: Any, rest: str, out: TextIO) -> None:
    if not rest.lower().endswith(".json"):
        print("usage: /export FILE.json (the chat so far)", file=out)
        return
    source = session.recall.watcher.spec
    try:
        if "://" not in source and source != "-":
            refuse_inputs([("/export", rest)], [("the stream this chat watches", source)])
        data = {"source": source, "turns": session.history()}
        print(f"wrote {write_json_atomic(rest, data)}", file=out)
    except GroundingAgentError as exc:
        print(f"error: {exc}", file=out)


def _live_help(session: Any, rest: str, out: TextIO) -> None:
    print(LIVE_HELP_TEXT, file=out)


LIVE_COMMANDS: Commands = {
    "history": _history,
    "export": _live_export,
    "help": _live_help,
    "quit": _quit,
    "exit": _quit,
}
