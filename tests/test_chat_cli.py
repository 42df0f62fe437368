"""`grounding-agent chat`: the REPL's commands and the JSON-lines protocol (model-free backend)."""

from __future__ import annotations

import io
import json
import subprocess
import sys
from pathlib import Path

import jsonschema
import pytest

from grounding_agent import Session
from grounding_agent.cli import main
from grounding_agent.cli.chat import jsonl_reply, repl, serve_jsonl

REPO = Path(__file__).resolve().parents[1]
ANSWER_SCHEMA = json.loads((REPO / "schemas" / "answer.schema.json").read_text())
CLI = Path(sys.executable).parent / "grounding-agent"


@pytest.fixture()
def clip(real_clips) -> Path:
    return real_clips["timer1_charades_OHOFG.mp4"]


def test_jsonl_subprocess_answers_line_by_line(clip) -> None:
    """A chat app drives it as a subprocess: it writes a line, reads the reply, writes the next."""
    proc = subprocess.Popen(
        [str(CLI), "chat", str(clip), "--backend", "uniform", "--jsonl"],
        stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )  # fmt: skip
    try:
        proc.stdin.write(json.dumps({"message": "when does the person open the door?"}) + "\n")
        proc.stdin.flush()
        first = json.loads(proc.stdout.readline())  # answered before the next line is sent
        proc.stdin.write(json.dumps({"message": "what happens after that?"}) + "\n")
        proc.stdin.flush()
        second = json.loads(proc.stdout.readline())
        proc.stdin.close()
        assert proc.wait(timeout=60) == 0
    finally:
        proc.kill()
    for reply in (first, second):
        jsonschema.validate(reply, ANSWER_SCHEMA)
        assert set(reply["moments"][0]) == {"start_s", "end_s", "score", "explanation"}
    assert second["moments"][0]["start_s"] >= first["moments"][0]["end_s"]
    assert second["reference"]["turn"] == 1


def test_bad_lines_get_an_error_line_and_the_session_goes_on(clip) -> None:
    session = Session(clip, "uniform")
    stdin = io.StringIO('not json\n{"msg": "x"}\n\n{"message": "   "}\n{"message": "when does he sit?"}\n')
    stdout = io.StringIO()
    assert serve_jsonl(session, stdin, stdout) == 0
    replies = [json.loads(line) for line in stdout.getvalue().splitlines()]
    assert [("error" in r) for r in replies] == [True, True, True, False]
    assert (
        "not JSON" in replies[0]["error"]
        and '"message"' in replies[1]["error"]
        and "empty" in replies[2]["error"]
    )
    jsonschema.validate(replies[3], ANSWER_SCHEMA)
    assert jsonl_reply(session, "[1, 2]")["error"]


def test_repl_commands(clip, tmp_path) -> None:
    session = Session(clip, "uniform")
    export = tmp_path / "chat.json"
    lines = [
        "/plan",
        "when does the person open the door?",
        "what happens after that?",
        "/plan",
        "/history",
        f"/export {export}",
        "/nope",
        "/quit",
        "never read",
    ]
    stdout = io.StringIO()
    assert repl(session, io.StringIO("\n".join(lines) + "\n"), stdout) == 0
    out = stdout.getvalue()
    assert "no turns yet" in out
    # Turn 2 ("what happens after that?") grounds the next event: /plan shows its plan.
    assert out.count("plan of turn 2 (rule): s1: the next thing that happens") == 1
    assert "1. when does the person open the door?  ->  0.00-7.03 s" in out
    assert "unknown command /nope" in out
    assert len(session.turns) == 2  # the line after /quit was not read as a message
    data = json.loads(export.read_text())
    assert [t["message"] for t in data["turns"]] == lines[1:3]
    assert data["turns"][1]["answer"]["reference"]["kind"] == "after"


def test_chat_cli_errors_are_one_line(clip, capsys) -> None:
    assert main(["chat", "no/such.mp4", "--backend", "uniform", "--jsonl"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: ") and err.count("\n") == 1
    assert main(["chat", str(clip), "--backend", "uniform", "--follow-s", "0"]) == 2


def test_chat_end_of_input_ends_the_repl(clip, monkeypatch, capsys) -> None:
    monkeypatch.setattr(sys, "stdin", io.StringIO("when does the person open the door?\n"))
    assert main(["chat", str(clip), "--backend", "uniform"]) == 0
    out = capsys.readouterr().out
    assert "Templated answer" in out and "1. 0.00-7.03 s" in out
