"""Servers that misbehave: a 200 reply that is no chat completion, or one trickled byte by byte, is one typed
`ServerError` line (exit 2 on the CLI) within the deadline, for the grounder, the LLM planner and the
verifier; `eval run` records it per query and carries on.

The server is `MisbehavingServerForTests`, a test double of the vLLM server's HTTP layer on 127.0.0.1.
"""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from grounding_agent.errors import ConfigError, ServerError
from grounding_agent.grounders.vllm import VLLMGrounder
from tests.test_hostile_options import CLIP, assert_one_line_error, run_cli
from tests.test_hostile_options import empty_cwd as empty_cwd  # noqa: F401 (a fixture)

ANSWER = "1.00 - 2.00 seconds"
COMPLETION = {
    "id": "c1", "object": "chat.completion", "created": 0, "model": "m",
    "choices": [{"index": 0, "message": {"role": "assistant", "content": ANSWER}, "finish_reason": "stop"}],
}  # fmt: skip
MODELS = {"object": "list", "data": [{"id": "m", "object": "model", "created": 0, "owned_by": "tests"}]}

# mode -> (content type, body) of every chat completion reply (status 200).
BAD_REPLIES = {
    "html": ("text/html", b"<html><body><h1>502 Bad Gateway</h1></body></html>"),
    "truncated-json": ("application/json", json.dumps(COMPLETION).encode()[:37]),
    "foo": ("application/json", b'{"foo": 1}'),
    "choices-null": ("application/json", json.dumps({**COMPLETION, "choices": None}).encode()),
    "choices-empty": ("application/json", json.dumps({**COMPLETION, "choices": []}).encode()),
    "message-null": (
        "application/json",
        json.dumps(
            {**COMPLETION, "choices": [{"index": 0, "message": None, "finish_reason": "stop"}]}
        ).encode(),
    ),
    "json-list": ("application/json", b"[1, 2, 3]"),
}
# 200 replies shaped like a completion whose fields hold the wrong types: read as an unreadable answer.
ODD_REPLIES = {
    "content-number": {**COMPLETION, "choices": [{"index": 0, "message": {"role": "assistant", "content": 123},
                                                  "finish_reason": "stop"}]},
    "logprobs-text": {**COMPLETION, "choices": [{**COMPLETION["choices"][0],
                                                 "logprobs": {"content": [{"token": "1", "logprob": "x"}, {"logprob": 1e999}]}}]},
    "usage-garbage": {**COMPLETION, "usage": "lots"},
}  # fmt: skip


class MisbehavingServerForTests:
    """An OpenAI-compatible server on 127.0.0.1 that answers /v1/models properly and chat completions in
    `mode`: one of BAD_REPLIES, "good", or "trickle" (a good reply sent one byte every `byte_every_s`,
    for at most `trickle_max_s`: it stops by itself). `trickle_models` trickles the model list too."""

    def __init__(self, mode: str, *, byte_every_s: float = 0.25, trickle_max_s: float = 30.0,
                 trickle_models: bool = False):  # fmt: skip
        self.mode, self.byte_every_s, self.trickle_max_s = mode, byte_every_s, trickle_max_s
        self.trickle_models = trickle_models
        self.requests = 0
        self.client_left_after_bytes: list[int] = []  # per trickled reply the client gave up on
        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), self._handler())
        self.httpd.daemon_threads = True
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}/v1"
        self._thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)
        self._thread.start()

    def _handler(self) -> type[BaseHTTPRequestHandler]:
        server = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args: object) -> None:
                pass

            def _send(self, content_type: str, body: bytes) -> None:
                self.send_response(200)
                self.send_header("content-type", content_type)
                self.send_header("content-length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def _trickle(self, body: bytes) -> None:
                self.send_response(200)
                self.send_header("content-type", "application/json")
                self.send_header("content-length", str(len(body)))
                self.end_headers()
                t0 = time.monotonic()
                for i in range(len(body)):
                    if time.monotonic() - t0 > server.trickle_max_s:
                        return
                    try:
                        self.wfile.write(body[i : i + 1])
                        self.wfile.flush()
                    except OSError:
                        server.client_left_after_bytes.append(i)
                        return
                    time.sleep(server.byte_every_s)

            def do_GET(self) -> None:  # /v1/models
                body = json.dumps(MODELS).encode()
                self._trickle(body) if server.trickle_models else self._send("application/json", body)

            def do_POST(self) -> None:  # /v1/chat/completions
                self.rfile.read(int(self.headers.get("content-length") or 0))
                server.requests += 1
                if server.mode == "trickle":
                    self._trickle(json.dumps(COMPLETION).encode())
                elif server.mode in ODD_REPLIES:
                    self._send("application/json", json.dumps(ODD_REPLIES[server.mode]).encode())
                elif server.mode == "good":
                    self._send("application/json", json.dumps(COMPLETION).encode())
                else:
                    self._send(*BAD_REPLIES[server.mode])

        return Handler

    def close(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()


@pytest.fixture
def serve_double() -> Iterator:
    servers: list[MisbehavingServerForTests] = []

    def start(mode: str, **kwargs: float) -> MisbehavingServerForTests:
        servers.append(MisbehavingServerForTests(mode, **kwargs))
        return servers[-1]

    yield start
    for s in servers:
        s.close()


@pytest.fixture(scope="module")
def video():
    from grounding_agent.media.video import open_video

    return open_video(CLIP)


def _one_line(exc: BaseException) -> str:
    text = str(exc)
    assert "\n" not in text and text, text
    return text


# --- the grounder -------------------------------------------------------------------------------------------


@pytest.mark.parametrize("mode", sorted(BAD_REPLIES))
def test_grounder_turns_a_bad_200_reply_into_one_server_error(serve_double, video, mode) -> None:
    server = serve_double(mode)
    grounder = VLLMGrounder(server.url, "m", max_frames=2, max_retries=0, timeout_s=10)
    with pytest.raises(ServerError) as sync:
        grounder.ground(video, "person opens the door")
    assert "not an OpenAI chat completion" in _one_line(sync.value) and server.url in str(sync.value)
    with pytest.raises(ServerError) as many:
        grounder.ground_many([(video, "person opens the door")])
    assert "not an OpenAI chat completion" in _one_line(many.value)


def test_grounder_reads_a_good_reply_from_the_double(serve_double, video) -> None:
    """The double is a faithful server when it behaves: the grounder parses what it sent."""
    server = serve_double("good")
    grounding = VLLMGrounder(server.url, max_frames=2, max_retries=0, timeout_s=10).ground(video, "q")
    assert grounding.raw_text == [ANSWER] and not grounding.failures and server.requests == 1


@pytest.mark.parametrize("mode", sorted(ODD_REPLIES))
def test_odd_field_types_are_an_unreadable_or_plain_answer_not_a_crash(serve_double, video, mode) -> None:
    server = serve_double(mode)
    grounding = VLLMGrounder(server.url, "m", max_frames=2, max_retries=0, timeout_s=10).ground(video, "q")
    for m in grounding.moments:
        assert 0.0 <= m.start_s <= m.end_s <= video.duration_s and 0.0 <= m.score <= 1.0
    if mode == "content-number":
        assert grounding.failures and grounding.raw_text == [
            ""
        ]  # recorded as unreadable, whole-video fallback
    else:
        assert grounding.raw_text == [ANSWER] and not grounding.failures


def test_trickled_reply_is_cut_off_at_the_total_deadline(serve_double, video) -> None:
    # A good reply of ~250 bytes at one byte per 0.25 s would take a minute; each read is fast.
    server = serve_double("trickle")
    grounder = VLLMGrounder(server.url, "m", max_frames=2, max_retries=0, timeout_s=1.5)
    with pytest.raises(ServerError, match=r"did not answer within 1.5 s \(--timeout is the total time"):
        grounder.ground(video, "person opens the door")
    deadline = time.monotonic() + 10
    while not server.client_left_after_bytes and time.monotonic() < deadline:
        time.sleep(0.1)  # the server notices the closed connection at its next byte
    assert (
        server.client_left_after_bytes
        and server.client_left_after_bytes[0] < len(json.dumps(COMPLETION)) // 2
    )


def test_trickled_model_list_is_cut_off_too(serve_double) -> None:
    server = serve_double("good", trickle_models=True)
    with pytest.raises(ServerError, match="did not answer within 1 s"):
        VLLMGrounder(server.url, None, max_retries=0, timeout_s=1)  # asks the server for its model names


@pytest.mark.parametrize("timeout", [0, -1, float("nan"), float("inf"), "2"])
def test_bad_timeout_is_a_config_error_before_any_request(serve_double, timeout) -> None:
    server = serve_double("good")
    with pytest.raises(ConfigError, match="timeout_s"):
        VLLMGrounder(server.url, "m", timeout_s=timeout)
    assert server.requests == 0


# --- the CLI: ground, plan --planner llm, --verify, eval run ----------------------------------------------


@pytest.mark.parametrize("mode", ["html", "truncated-json", "foo", "choices-null", "message-null"])
def test_ground_cli_bad_reply_is_one_line_exit_2(serve_double, capsys, empty_cwd, mode) -> None:
    server = serve_double(mode)
    rc, out, err = run_cli(capsys, "ground", CLIP, "person opens the door", "--server", server.url,
                           "--model", "m", "--max-frames", "2", "--no-agent")  # fmt: skip
    assert_one_line_error(rc, err, "not an OpenAI chat completion", server.url)
    assert out == "" and list(empty_cwd.iterdir()) == []


def test_ground_cli_trickle_is_one_line_exit_2(serve_double, capsys) -> None:
    server = serve_double("trickle")
    rc, _, err = run_cli(capsys, "ground", CLIP, "person opens the door", "--server", server.url,
                         "--model", "m", "--max-frames", "2", "--no-agent", "--timeout", "1")  # fmt: skip
    assert_one_line_error(rc, err, "did not answer within 1 s")


@pytest.mark.slow
@pytest.mark.parametrize("mode", ["html", "truncated-json", "foo", "choices-null", "message-null"])
def test_llm_planner_bad_reply_is_one_line_exit_2(serve_double, capsys, empty_cwd, mode) -> None:
    server = serve_double(mode)
    rc, out, err = run_cli(capsys, "plan", "the man opens the door, then sits down", "--planner", "llm",
                           "--server", server.url, "--model", "m", "--json")  # fmt: skip
    assert_one_line_error(rc, err, "planner LLM", "not an OpenAI chat completion")
    assert out == "" and list(empty_cwd.iterdir()) == []


@pytest.mark.slow
def test_llm_planner_trickle_is_cut_off(serve_double, capsys) -> None:
    server = serve_double("trickle")
    rc, _, err = run_cli(capsys, "plan", "the man opens the door, then sits down", "--planner", "llm",
                         "--server", server.url, "--model", "m", "--timeout", "1")  # fmt: skip
    assert_one_line_error(rc, err, "planner LLM did not answer within 1 s")


@pytest.mark.slow
@pytest.mark.parametrize("mode", ["html", "choices-null", "message-null", "trickle"])
def test_verifier_bad_reply_is_one_line_exit_2(serve_double, capsys, mode) -> None:
    server = serve_double(mode)
    rc, _, err = run_cli(capsys, "ground", CLIP, "person opens the door", "--backend", "uniform", "--agent",
                         "--verify", "--server", server.url, "--planner-model", "m", "--timeout", "1")  # fmt: skip
    expected = "did not answer within 1 s" if mode == "trickle" else "not an OpenAI chat completion"
    assert_one_line_error(rc, err, "verifier LLM", expected)


@pytest.mark.slow
def test_eval_run_records_bad_replies_and_carries_on(serve_double, capsys, tmp_path, shared_data) -> None:
    server = serve_double("html")
    videos = tmp_path / "videos"
    videos.mkdir()
    (videos / "Y1HGC.mp4").symlink_to(CLIP)
    out = tmp_path / "run"
    rc, _, err = run_cli(
        capsys, "eval", "run", "--dataset", "charades-sta", "--gt", shared_data / "charades_sta" / "charades_sta_test.txt",
        "--backend", "vllm", "--server", server.url, "--model", "m", "--max-frames", "2", "--timeout", "10",
        "--videos", videos, "--vids", "Y1HGC", "--out", out, "--no-progress",
    )  # fmt: skip
    rows = [json.loads(line) for line in (out / "predictions.jsonl").read_text().splitlines()]
    assert len(rows) == 2 and server.requests >= 2, (
        err
    )  # both queries of the clip were asked: no stop at the first
    for row in rows:
        assert "not an OpenAI chat completion" in json.dumps(row), row
    assert "Traceback" not in err


@pytest.mark.parametrize("mode", ["html", "choices-null", "message-null", "trickle"])
def test_moment_descriptions_through_the_grounder_are_typed_too(serve_double, mode) -> None:
    """Other callers of the served model (descriptions in chat/UI) get the same deadline and reply checks."""
    from grounding_agent.conversation.describe import DescribeRequest, describer_for
    from grounding_agent.media.decode import sample_frames

    server = serve_double(mode)
    grounder = VLLMGrounder(server.url, "m", max_retries=0, timeout_s=1)
    frames = sample_frames(CLIP, fps=0.5, max_frames=2)
    with pytest.raises(ServerError) as info:
        describer_for(grounder).describe(frames, DescribeRequest("what happens?", 30.0, (1.0, 2.0)), [])
    expected = "did not answer within 1 s" if mode == "trickle" else "not an OpenAI chat completion"
    assert expected in _one_line(info.value)
