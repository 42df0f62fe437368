"""The grounder's OpenAI API client (`grounders.openai_http`): what it retries, what it reads, what it says.

Against `ScriptedServerForTests`, an HTTP server on 127.0.0.1 that answers requests with the replies it
was given, in order, and records each request.
"""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from grounding_agent.errors import ServerError
from grounding_agent.grounders.openai_http import Completion, read_completion
from grounding_agent.grounders.vllm import VLLMGrounder

COMPLETION = {
    "id": "c", "object": "chat.completion", "created": 0, "model": "m",
    "choices": [{"index": 0, "message": {"role": "assistant", "content": "1.00 - 2.00 seconds"},
                 "logprobs": {"content": [{"token": "1", "logprob": -0.1}, {"token": ".", "logprob": -0.3}]},
                 "finish_reason": "stop"}],
    "usage": {"prompt_tokens": 10, "completion_tokens": 2, "total_tokens": 12},
}  # fmt: skip
MODELS = {"object": "list", "data": [{"id": "m", "object": "model"}]}


class ScriptedServerForTests:
    """GET /v1/models answers `models`; each POST takes the next (status, headers, body) of `replies`."""

    def __init__(self, replies: list[tuple[int, dict[str, str], object]], models: object = MODELS):
        self.replies, self.posts, self.models = list(replies), [], models
        server = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args: object) -> None:
                pass

            def _send(self, status: int, headers: dict[str, str], body: object) -> None:
                data = body if isinstance(body, bytes) else json.dumps(body).encode()
                self.send_response(status)
                for name, value in {"content-type": "application/json", **headers}.items():
                    self.send_header(name, value)
                self.send_header("content-length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def do_GET(self) -> None:
                self._send(200, {}, server.models)

            def do_POST(self) -> None:
                body = json.loads(self.rfile.read(int(self.headers.get("content-length") or 0)))
                server.posts.append((time.monotonic(), self.headers.get("authorization"), body))
                self._send(*server.replies.pop(0))

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.httpd.daemon_threads = True
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}/v1"
        threading.Thread(target=self.httpd.serve_forever, daemon=True).start()


@pytest.fixture
def scripted() -> Iterator:
    servers: list[ScriptedServerForTests] = []

    def start(
        *replies: tuple[int, dict[str, str], object], models: object = MODELS
    ) -> ScriptedServerForTests:
        servers.append(ScriptedServerForTests(list(replies), models))
        return servers[-1]

    yield start
    for s in servers:
        s.httpd.shutdown()
        s.httpd.server_close()


def _ask(server: ScriptedServerForTests, **kwargs) -> Completion:
    grounder = VLLMGrounder(server.url, "m", timeout_s=10, **kwargs)
    return grounder.chat_completion(model="m", messages=[{"role": "user", "content": "hi"}], max_tokens=4)


def test_a_busy_server_is_asked_again_after_its_retry_after(scripted) -> None:
    server = scripted(
        (503, {"retry-after": "0.3"}, {"error": {"message": "busy"}}),
        (429, {"retry-after-ms": "200"}, {"error": {"message": "slow down"}}),
        (200, {}, COMPLETION),
    )
    reply = _ask(server, max_retries=2, api_key="secret")
    assert [c.text for c in reply.choices] == ["1.00 - 2.00 seconds"] and len(server.posts) == 3
    (t0, auth, body), (t1, _, _), (t2, _, _) = server.posts
    assert t1 - t0 >= 0.3 and t2 - t1 >= 0.2  # the server's Retry-After, not the client's own backoff
    assert auth == "Bearer secret" and body["max_tokens"] == 4


def test_retries_stop_at_max_retries_and_the_error_is_the_servers_message(scripted) -> None:
    server = scripted(
        *[(500, {"retry-after": "0"}, {"object": "error", "message": "engine died\nstack"})] * 3
    )
    with pytest.raises(ServerError, match=r"answered HTTP 500: engine died$") as info:
        _ask(server, max_retries=1)
    assert len(server.posts) == 2 and info.value.status_code == 500


@pytest.mark.parametrize(
    "status, headers",
    [(400, {}), (404, {}), (500, {"x-should-retry": "false"}), (503, {"retry-after": "3600"})],
    ids=["bad-request", "no-such-model", "server-says-no-retry", "retry-after-too-long"],
)
def test_what_another_attempt_cannot_fix_is_reported_at_once(scripted, status, headers) -> None:
    server = scripted(
        (status, headers, {"error": {"message": "The model `x` does not exist."}}), (200, {}, COMPLETION)
    )
    with pytest.raises(ServerError, match=rf"HTTP {status}: The model `x` does not exist\.") as info:
        _ask(server, max_retries=2)
    assert len(server.posts) == 1 and info.value.status_code == status


def test_an_error_status_without_json_keeps_its_text(scripted) -> None:
    server = scripted((502, {"content-type": "text/html"}, b"<h1>Bad Gateway</h1>"))
    with pytest.raises(ServerError, match=r"HTTP 502: <h1>Bad Gateway</h1>"):
        _ask(server, max_retries=0)


def test_the_server_saying_retry_is_obeyed_on_any_status(scripted) -> None:
    server = scripted(
        (400, {"x-should-retry": "true", "retry-after": "0"}, {"message": "try again"}), (200, {}, COMPLETION)
    )
    assert _ask(server, max_retries=1).choices[0].text == "1.00 - 2.00 seconds" and len(server.posts) == 2


@pytest.mark.parametrize(
    "models",
    [
        {"object": "list", "data": [{"object": "model"}]},
        {"data": [{"id": 7}]},
        {"data": {"id": "m"}},
        [],
        "ok",
    ],
    ids=["entry-without-id", "id-not-a-string", "data-not-a-list", "a-list", "a-string"],
)
def test_a_model_list_without_model_ids_is_a_server_error(scripted, models) -> None:
    server = scripted(models=models)
    with pytest.raises(ServerError, match=r"not an OpenAI model list \(no model ids\); check that --server"):
        VLLMGrounder(server.url, "m", timeout_s=10).served_models()


def test_a_server_serving_no_model_says_so(scripted) -> None:
    server = scripted(models={"object": "list", "data": []})
    assert VLLMGrounder(server.url, "m", timeout_s=10).model_cards() == []
    with pytest.raises(ServerError, match=r"serves no model$"):  # no model named: the first served one
        VLLMGrounder(server.url, timeout_s=10)


def test_a_completion_is_read_into_typed_fields() -> None:
    reply = read_completion(COMPLETION)
    (choice,) = reply.choices
    assert choice.logprobs == (-0.1, -0.3) and choice.confidence == pytest.approx(0.8187, abs=1e-4)
    assert reply.usage == {"prompt_tokens": 10, "completion_tokens": 2}
    sampled = read_completion({"choices": [{"message": {"content": "a"}}, {"message": {"content": None}}]})
    assert [(c.text, c.logprobs, c.confidence) for c in sampled.choices] == [
        ("a", None, 1.0),
        ("", None, 1.0),
    ]
    assert sampled.usage is None
    odd = read_completion({**COMPLETION, "usage": {"prompt_tokens": True, "completion_tokens": 2},
                           "choices": [{"message": {"content": "a"}, "logprobs": {"content": [{"logprob": "x"}]}}]})  # fmt: skip
    assert odd.usage is None and odd.choices[0].confidence == 0.0  # log-probs sent, none of them a number
