"""`grounding-agent chat --live SOURCE`: a chat app drives the CLI (JSON lines) while a real stream with
espeak-ng speech is published over UDP by ffmpeg on 127.0.0.1 and heard by real Whisper base; questions are
answered in stream time from what the watch kept so far; /quit stops the watch cleanly."""

from __future__ import annotations

import json
import subprocess
import sys
import time
from pathlib import Path

import pytest

from grounding_agent.cli.chat import LIVE_COMMANDS, repl
from grounding_agent.conversation.live import LiveSession
from tests.livegen import free_port, make_stream, publish_udp
from tests.test_hostile_options import assert_one_line_error, run_cli

CLI = Path(sys.executable).parent / "grounding-agent"
ASK_FOR_S = 45.0  # Whisper on 2 shared cores may lag the stream by several seconds


@pytest.fixture(scope="module")
def stream(tmp_path_factory):
    return make_stream(tmp_path_factory.mktemp("livechat") / "live.ts")


def _listening(port: int, timeout_s: float) -> bool:
    """Whether a UDP socket is bound to `port` (the watch opened its source), read from /proc/net/udp."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        for table in ("/proc/net/udp", "/proc/net/udp6"):
            rows = Path(table).read_text().splitlines()[1:] if Path(table).exists() else []
            if any(row.split()[1].endswith(f":{port:04X}") for row in rows):
                return True
        time.sleep(0.1)
    return False


def _ask(proc: subprocess.Popen, message: str) -> dict:
    proc.stdin.write(json.dumps({"message": message}) + "\n")
    proc.stdin.flush()
    return json.loads(proc.stdout.readline())


@pytest.mark.slow
def test_chat_live_answers_from_the_stream_so_far(stream, whisper_base, tmp_path):
    port, out = free_port(), tmp_path / "w"
    argv = [str(CLI), "chat", "--live", f"udp://127.0.0.1:{port}", "--out", str(out), "--asr-model",
            str(whisper_base), "--jsonl"]  # fmt: skip
    proc = subprocess.Popen(
        argv, stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
    )
    publisher = None
    try:
        assert _listening(port, 60.0), "the watch never opened its UDP source"
        time.sleep(0.3)
        publisher = publish_udp(stream.path, port)
        said = next(p for p in stream.phrases if "discount" in p.text)
        time.sleep(said.end_s + 0.5)  # the phrase has been spoken (stream time ~ wall time since publishing)
        deadline = time.monotonic() + ASK_FOR_S
        while True:
            answer = _ask(proc, "when did she mention the discount code?")
            assert "error" not in answer, answer
            if answer["moments"] or time.monotonic() > deadline:
                break
            time.sleep(0.5)  # not transcribed yet: ask again, as a user would
        assert len(answer["moments"]) == 1, answer
        moment = answer["moments"][0]
        assert abs(moment["start_s"] - said.start_s) < 1.0 and moment["end_s"] <= said.end_s + 1.0, (
            answer,
            said,
        )
        assert answer["text_source"] == "live-recall" and "discount" in answer["text"].lower()
        recent = _ask(proc, "what just happened?")
        assert "discount" in recent["text"].lower(), recent
        assert recent["window_s"][1] >= said.end_s and not recent["moments"]
        assert _ask(proc, "when did she mention free shipping?")["absent"] == "said"
        history = _ask(proc, "/history")
        assert "discount" in history["output"]
        quit_reply = _ask(proc, "/quit")
        assert quit_reply["command"] == "quit"
        assert proc.wait(timeout=60) == 0
        still_playing = publisher.poll() is None  # the watch stopped while the stream still played
        err = proc.stderr.read()
    finally:
        proc.kill()
        if publisher is not None:
            publisher.kill()
            publisher.wait(timeout=10)
    assert still_playing
    report = json.loads((out / "report.json").read_text())
    assert report["ended"] == "stopped" and report["asr_calls"] >= 2, (report, err)
    assert list((out / "ring").glob("seg-*.ts"))


def test_chat_live_refuses_in_one_line(stream, whisper_base, capsys, tmp_path):
    """A source that cannot be opened gives the watch's own one-line error; so do missing options."""
    missing = tmp_path / "missing.ts"
    rc, _, err = run_cli(
        capsys, "chat", "--live", missing, "--out", tmp_path / "a", "--asr-model", whisper_base
    )
    assert_one_line_error(rc, err, "no such file")
    rc, _, err = run_cli(capsys, "chat", "--live", stream.path, "--out", tmp_path / "b")
    assert_one_line_error(rc, err, "--asr-model")
    rc, _, err = run_cli(capsys, "chat", "--live", stream.path, "--asr-model", whisper_base)
    assert_one_line_error(rc, err, "--out")
    rc, _, err = run_cli(capsys, "chat", "--live", "-", "--out", tmp_path / "c", "--asr-model", whisper_base)
    assert_one_line_error(rc, err, "stdin carries the messages")
    rc, _, err = run_cli(capsys, "chat", str(stream.path), "--live", stream.path)
    assert_one_line_error(rc, err, "one of them")


def test_live_repl_commands_without_a_stream(stream, tmp_path):
    """The live REPL's own commands over a watch that has not started: nothing said yet, /export, /quit."""
    import io

    from grounding_agent.live import Watcher, WatchOptions

    session = LiveSession(Watcher(str(stream.path), WatchOptions(), tmp_path / "w"))
    export = tmp_path / "chat.json"
    lines = [
        "when did she mention the price?",
        "/history",
        f"/export {export}",
        "/plan",
        "/quit",
        "never read",
    ]
    out = io.StringIO()
    assert (
        repl(session, io.StringIO("\n".join(lines) + "\n"), out, commands=LIVE_COMMANDS, banner="live") == 0
    )
    text = out.getvalue()
    assert "has not been said so far" in text and "1. when did she mention the price?" in text
    assert "unknown command /plan" in text and "never read" not in text
    assert json.loads(export.read_text())["turns"][0]["answer"]["absent"] == "said"
