"""One bad line never ends a chat: in `chat --jsonl` every hostile line (deep nesting, a 20 MB line, a
5,000-digit number, a hostile /edit or /export) is one `{"error"}` line and the next message is still answered
by the same process; at the prompt each is one `error:` line. No input or unnamed file changes."""

from __future__ import annotations

import hashlib
import io
import json
import subprocess
import sys
from pathlib import Path

import pytest

from grounding_agent.cli.chat import repl, serve_jsonl
from tests.test_hostile_options import CLIP

DIGITS = "9" * 300
NESTED = "[" * 50_000 + "]" * 50_000
HOSTILE = {
    "nested 50,000 deep": NESTED,
    "nested inside message": '{"message": ' + NESTED + "}",
    "20 MB line": '{"message": "' + "x" * (20 << 20) + '"}',
    "5,000-digit number": '{"message": "hi", "n": 1' + "1" * 5000 + "}",
    "/edit 300 digits": json.dumps({"message": f"/edit cut 0:05 to {DIGITS}"}),
    "/edit empty quote": json.dumps({"message": '/edit remove every time he says ""'}),
    "/export onto the video": json.dumps({"message": f"/export {CLIP} cut 0:05 to 0:10"}),
    "/export into a missing folder": json.dumps({"message": "/export no/such/dir/cut.otio cut 0:05 to 0:10"}),
    "/export 300 digits": json.dumps({"message": f"/export cut.otio keep the best {DIGITS} moments"}),
    "unknown command": json.dumps({"message": "/" + "x" * 1000}),
    "huge message": json.dumps({"message": "when " * 20_000}),
}
MAIN = "import sys; from grounding_agent.cli import main; sys.exit(main(sys.argv[1:]))"
NORMAL = json.dumps({"message": "when does he open the door?"})


def digest(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


@pytest.mark.slow
def test_jsonl_session_survives_every_hostile_line(tmp_path: Path) -> None:
    before = digest(CLIP)
    lines = [*HOSTILE.values(), NORMAL]
    run = subprocess.run(
        [sys.executable, "-c", MAIN, "chat", str(CLIP), "--backend", "uniform", "--jsonl"],
        input="\n".join(lines) + "\n",
        capture_output=True,
        text=True,
        cwd=tmp_path,
        timeout=300,
    )
    assert run.returncode == 0, run.stderr
    replies = [json.loads(line) for line in run.stdout.splitlines()]
    assert len(replies) == len(lines), run.stdout[:2000]
    for name, reply in zip(HOSTILE, replies):
        assert set(reply) == {"error"}, (name, reply)
        assert len(reply["error"]) < 600 and DIGITS not in reply["error"], name
    assert replies[-1]["moments"], replies[-1]  # the same process still answers
    assert digest(CLIP) == before and list(tmp_path.iterdir()) == []


class _Session:
    """A session whose turns raise what third-party code raises on hostile input."""

    video = type("V", (), {"path": CLIP, "duration_s": 30.0})()
    grounder = type("G", (), {"name": "fake"})()
    turns: list = []

    def ask(self, message: str):
        if message == "boom":
            raise RecursionError("maximum recursion depth exceeded")
        answer = type("A", (), {"text": f"ok {message}", "moments": [], "reference": None})()
        answer.to_dict = lambda: {"text": answer.text, "moments": []}
        return answer


def test_jsonl_failed_turn_is_error_line_and_goes_on() -> None:
    out = io.StringIO()
    serve_jsonl(_Session(), io.StringIO('{"message": "boom"}\n{"message": "again"}\n'), out)
    first, second = (json.loads(line) for line in out.getvalue().splitlines())
    assert "RecursionError" in first["error"] and second["text"] == "ok again"


def test_jsonl_overlong_line_is_skipped_not_held(monkeypatch) -> None:
    from grounding_agent.cli import chat

    monkeypatch.setattr(chat, "LIMITS", chat.LIMITS.__class__(max_line_chars=100))
    lines = list(chat.bounded_lines(io.StringIO("a" * 1000 + "\nshort\n"), 100))
    assert lines == [None, "short\n"]


def test_prompt_session_survives_hostile_commands() -> None:
    lines = ["boom", f"/edit cut 0:05 to {DIGITS}", "/export", "hello"]
    out = io.StringIO()
    assert repl(_Session(), io.StringIO("\n".join(lines) + "\n"), out) == 0
    text = out.getvalue().splitlines()
    errors = [line for line in text if line.startswith("error: ")]
    assert len(errors) == 2 and any("RecursionError" in e for e in errors), text
    assert text[-1] == "ok hello"
