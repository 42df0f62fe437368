"""Hostile requests to the HTTP API: bounded bodies (413 from Content-Length and while a chunked body
streams), 422s that never echo the input, 200,000 keys answered at once, lone surrogates, NaN / Infinity /
huge numbers, names the OS refuses, FIFOs, foreign Host headers, media-relative details, and session
expiry counted from the end of the turn. Each case checks the status, a short reply, and that no file in
the media root changed."""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import socket
import threading
import time
from dataclasses import replace
from pathlib import Path

import httpx
import pytest
from fastapi.testclient import TestClient

from grounding_agent import Session
from grounding_agent.defaults import HTTP_SERVICE
from grounding_agent.grounders.baselines import UniformGrounder
from grounding_agent.grounders.serving import free_port
from grounding_agent.http import create_app

CLIP = "timer1_charades_OHOFG.mp4"
SHORT = 600  # bytes: every refusal is one short line


@pytest.fixture()
def media(tmp_path, real_clips) -> Path:
    root = tmp_path / "media"
    root.mkdir()
    shutil.copy(real_clips[CLIP], root / CLIP)
    (root / "broken.mp4").write_text("not a video")
    os.mkfifo(root / "pipe.mp4")  # opening it would block until a writer comes: never
    return root


def snapshot(root: Path) -> dict[str, str]:
    """Every regular file under `root` -> its sha256 (FIFOs are not opened)."""
    return {
        str(p.relative_to(root)): hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted(root.rglob("*"))
        if p.is_file()
    }


def factory(path: Path) -> Session:
    return Session(path, UniformGrounder(), max_turns=5)


def client_for(media: Path, **kwargs) -> TestClient:
    return TestClient(create_app(factory, media_root=media, **kwargs), base_url="http://127.0.0.1")


def assert_short_refusal(r: httpx.Response, status: int, *, absent: str = "") -> str:
    assert r.status_code == status, r.text[:300]
    assert len(r.content) < SHORT, len(r.content)
    detail = r.json()["detail"]
    assert isinstance(detail, str) and "\n" not in detail and detail
    if absent:
        assert absent not in r.text
    return detail


def post_raw(client: TestClient, path: str, text: str) -> httpx.Response:
    return client.post(path, content=text.encode("utf-8", "surrogatepass"),
                       headers={"content-type": "application/json"})  # fmt: skip


class Served:
    """The app on a real uvicorn on 127.0.0.1, in a thread."""

    def __init__(self, app) -> None:
        import uvicorn

        self.port = free_port()
        self.base = f"http://127.0.0.1:{self.port}"
        self.server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=self.port, log_level="error"))
        self.thread = threading.Thread(target=self.server.run, daemon=True)

    def __enter__(self) -> Served:
        self.thread.start()
        deadline = time.monotonic() + 20
        while not self.server.started:
            assert time.monotonic() < deadline, "uvicorn did not start"
            time.sleep(0.05)
        return self

    def __exit__(self, *exc) -> None:
        self.server.should_exit = True
        self.thread.join(timeout=10)


# --- bodies -------------------------------------------------------------------------------------------


def test_a_body_over_the_limit_is_413_from_its_content_length(media) -> None:
    before = snapshot(media)
    body = json.dumps({"video": CLIP, "query": "x" * (2 * HTTP_SERVICE.max_body_bytes)})
    detail = assert_short_refusal(post_raw(client_for(media), "/v1/ground", body), 413, absent="xxxx")
    assert f"{HTTP_SERVICE.max_body_bytes:,}" in detail
    assert snapshot(media) == before


def test_a_declared_200_mb_body_is_refused_before_it_is_sent(media) -> None:
    """Over a socket: only the headers and 10 bytes go out; the 413 comes back at once."""
    with (
        Served(create_app(factory, media_root=media)) as served,
        socket.create_connection(("127.0.0.1", served.port), timeout=10) as sock,
    ):
        sock.sendall(b"POST /v1/ground HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n"
                     b"Content-Length: 200000000\r\n\r\n{\"video\": ")  # fmt: skip
        reply = sock.recv(4096).decode()
    assert reply.startswith("HTTP/1.1 413") and len(reply) < SHORT


def test_a_chunked_body_is_counted_while_it_streams(media) -> None:
    """No Content-Length: the limit is checked on the bytes as they arrive; a small chunked body passes."""
    limits = replace(HTTP_SERVICE, max_body_bytes=20_000)
    before = snapshot(media)

    def chunks(total: int):
        yield b'{"video": "' + CLIP.encode() + b'", "query": "'
        for _ in range(total // 1000):
            yield b"x" * 1000
        yield b'"}'

    json_type = {"content-type": "application/json"}
    with Served(create_app(factory, media_root=media, limits=limits)) as served:
        url = f"{served.base}/v1/ground"
        big = httpx.post(url, content=chunks(60_000), headers=json_type, timeout=20)
        assert "content-length" not in big.request.headers
        assert_short_refusal(big, 413, absent="xxxx")
        within = httpx.post(url, content=chunks(3000), headers=json_type, timeout=20)
        assert "query" in assert_short_refusal(within, 422, absent="xxxx")  # over max_query_chars
        small = (b'{"video": "%s", "query": "the person opens the door"}' % CLIP.encode() for _ in range(1))
        assert httpx.post(url, content=small, headers=json_type, timeout=20).status_code == 200
        assert httpx.get(f"{served.base}/v1/health").status_code == 200
    assert snapshot(media) == before


@pytest.mark.parametrize("field", ["query", "top_k", "unknown_key", "video"])
def test_a_422_never_echoes_a_100_kb_field(media, field) -> None:
    client = client_for(media, limits=replace(HTTP_SERVICE, max_body_bytes=1 << 20))
    big = "q" * 100_000
    body = {"video": CLIP, "query": "the door", field: big}
    if field == "unknown_key":
        body = {"video": CLIP, "query": "the door", big: 1}
    assert_short_refusal(client.post("/v1/ground", json=body), 422, absent="qqqq")


def test_200k_unknown_keys_are_refused_at_once_and_health_still_answers(media) -> None:
    body = json.dumps({f"k{i}": i for i in range(200_000)})
    with Served(create_app(factory, media_root=media)) as served:
        health: list[float] = []

        def poll() -> None:
            for _ in range(10):
                start = time.perf_counter()
                assert httpx.get(f"{served.base}/v1/health", timeout=5).status_code == 200
                health.append(time.perf_counter() - start)

        poller = threading.Thread(target=poll)
        start = time.perf_counter()
        poller.start()
        replies = [httpx.post(f"{served.base}/v1/ground", content=body, headers={"content-type": "application/json"})
                   for _ in range(3)]  # fmt: skip
        took = time.perf_counter() - start
        poller.join(timeout=20)
    for r in replies:
        assert_short_refusal(r, 413, absent="k19999")
    assert took < 3.0, took
    assert len(health) == 10 and max(health) < 1.0, health


def test_many_keys_within_the_body_limit_are_refused_before_validation(media) -> None:
    """Under a raised body limit, the key count refuses them: quickly, before pydantic lists 60,000 errors."""
    body = json.dumps({"video": CLIP, "query": "q", **{f"k{i}": i for i in range(60_000)}})
    client = client_for(media, limits=replace(HTTP_SERVICE, max_body_bytes=2 << 20))
    start = time.perf_counter()
    detail = assert_short_refusal(post_raw(client, "/v1/ground", body), 422, absent="k5999")
    assert time.perf_counter() - start < 1.0
    assert "60,002 keys" in detail and f"most is {HTTP_SERVICE.max_json_keys}" in detail
    few = {"video": CLIP, "query": "q", **{f"k{i}": i for i in range(5)}}  # under the key count: pydantic
    assert "Extra inputs" in assert_short_refusal(client.post("/v1/ground", json=few), 422)


# --- values that became 500s ---------------------------------------------------------------------------


GROUND = '{"video": "' + CLIP + '", "query": "q"'  # a /v1/ground body, open for one more field


@pytest.mark.parametrize(
    "path,text",
    [
        ("/v1/ground", '{"video": "' + CLIP + '", "query": "\\ud800"}'),
        ("/v1/ground", '{"video": "\\udfff.mp4", "query": "q"}'),
        ("/v1/ground", GROUND + ', "\\ud800": 1}'),
        ("/v1/sessions", '{"video": "a\\ud800b"}'),
        ("/v1/ground", GROUND + ', "top_k": NaN}'),
        ("/v1/ground", GROUND + ', "top_k": Infinity}'),
        ("/v1/ground", GROUND + ', "top_k": -Infinity}'),
        ("/v1/ground", GROUND + ', "top_k": 1e999}'),
        ("/v1/ground", GROUND + ', "top_k": ' + "9" * 400 + "}"),
        ("/v1/ground", GROUND + ', "top_k": ' + "9" * 5000 + "}"),
        ("/v1/ground", GROUND + ', "top_k": 1000000000}'),
        ("/v1/ground", GROUND + ', "top_k": 2.5}'),
        ("/v1/ground", "[" * 50_000 + "]" * 50_000),
        ("/v1/ground", GROUND),
    ],
)
def test_hostile_values_are_422_not_500(media, path, text) -> None:
    before = snapshot(media)
    client = client_for(media, limits=replace(HTTP_SERVICE, max_body_bytes=1 << 20))
    assert_short_refusal(post_raw(client, path, text), 422, absent="9999999999")
    assert snapshot(media) == before


@pytest.mark.parametrize("text", ['{"message": "\\ud800"}', '{"message": "hi", "stream": NaN}',
                                  '{"message": "%s"}' % ("m" * 5000)])  # fmt: skip
def test_hostile_messages_are_422(media, text) -> None:
    client = client_for(media)
    sid = client.post("/v1/sessions", json={"video": CLIP}).json()["id"]
    assert_short_refusal(post_raw(client, f"/v1/sessions/{sid}/messages", text), 422, absent="mmmm")
    assert client.post(f"/v1/sessions/{sid}/messages", json={"message": "the door"}).status_code == 200


# --- paths ---------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "video,status",
    [("a" * 300 + ".mp4", 422), ("sub/" + "b" * 300 + "/x.mp4", 404), ("c/" * 600 + "x.mp4", 422),
     ("pipe.mp4", 422), ("broken.mp4", 422), (".", 422), ("missing.mp4", 404)],
)  # fmt: skip
def test_paths_are_refused_in_one_short_line_naming_no_server_folder(media, video, status) -> None:
    before = snapshot(media)
    client = client_for(media)
    for path, body in (("/v1/ground", {"video": video, "query": "q"}), ("/v1/sessions", {"video": video})):
        result: list[httpx.Response] = []

        def send(path: str = path, body: dict = body, result: list = result) -> None:
            result.append(client.post(path, json=body))

        worker = threading.Thread(target=send, daemon=True)
        worker.start()
        worker.join(timeout=30)  # a FIFO that were opened would block here
        assert result, f"{path} {video[:20]} hung"
        detail = assert_short_refusal(result[0], status, absent=str(media))
        assert str(media.parent) not in detail
        assert video[:60] in detail or "characters; the most is" in detail  # named, but never whole
    assert snapshot(media) == before


def test_an_unreadable_video_is_named_relative_to_the_media_root(media) -> None:
    client = client_for(media)
    detail = assert_short_refusal(client.post("/v1/sessions", json={"video": "broken.mp4"}), 422)
    assert "broken.mp4" in detail and str(media) not in detail and not detail.startswith("/")


def test_a_long_session_id_is_not_echoed(media) -> None:
    assert_short_refusal(client_for(media).get("/v1/sessions/" + "s" * 3000), 404, absent="s" * 100)


# --- Host header ---------------------------------------------------------------------------------------


@pytest.mark.parametrize("host", ["evil.example", "evil.example:8080", "127.0.0.1.evil.example", ""])
def test_a_foreign_host_is_400(media, host) -> None:
    r = client_for(media).get("/v1/health", headers={"host": host})
    assert r.status_code == 400 and len(r.content) < SHORT


def test_allowed_hosts_pass_and_the_cli_adds_to_them(media) -> None:
    from grounding_agent.cli import build_parser
    from grounding_agent.cli.api import allowed_hosts, make_app

    client = client_for(media)
    for host in ("127.0.0.1", "127.0.0.1:8080", "localhost", "localhost:80"):
        assert client.get("/v1/health", headers={"host": host}).status_code == 200
    assert allowed_hosts("0.0.0.0", ["box.lan"]) == ["localhost", "127.0.0.1", "box.lan"]
    assert allowed_hosts("10.0.0.5", []) == ["10.0.0.5", "localhost", "127.0.0.1"]
    args = build_parser("api").parse_args(["api", "--media-root", str(media), "--backend", "uniform",
                                      "--allowed-host", "box.lan", "--max-body-bytes", "1000"])  # fmt: skip
    cli_client = TestClient(make_app(args), base_url="http://box.lan")
    assert cli_client.get("/v1/health").status_code == 200
    assert cli_client.get("/v1/health", headers={"host": "evil.example"}).status_code == 400
    assert_short_refusal(cli_client.post("/v1/ground", json={"video": CLIP, "query": "q" * 2000}), 413)


# --- session expiry ------------------------------------------------------------------------------------


class Clock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def slow_turn_factory(clock: Clock, turn_s: float):
    """Sessions whose every turn takes `turn_s` seconds of the fake clock."""

    def make(path: Path) -> Session:
        session = factory(path)
        ask = session.ask

        def slow_ask(message, **kwargs):
            clock.now += turn_s
            return ask(message, **kwargs)

        session.ask = slow_ask
        return session

    return make


@pytest.mark.parametrize("stream", [False, True])
def test_a_session_expires_counted_from_the_end_of_its_last_turn(media, stream) -> None:
    clock = Clock()
    app = create_app(slow_turn_factory(clock, 100.0), media_root=media, ttl_s=60.0, clock=clock)
    client = TestClient(app, base_url="http://127.0.0.1")
    sid = client.post("/v1/sessions", json={"video": CLIP}).json()["id"]
    r = client.post(f"/v1/sessions/{sid}/messages", json={"message": "the door", "stream": stream})
    assert r.status_code == 200 and clock.now == 100.0  # the turn took longer than the TTL
    clock.now = 159.0  # 59 s after the end of the turn (159 s after its start)
    assert client.get(f"/v1/sessions/{sid}").status_code == 200
    clock.now = 159.0 + 61.0  # idle 61 s since the look-up
    assert client.get(f"/v1/sessions/{sid}").status_code == 404


def test_a_session_deleted_during_its_turn_stays_deleted(media) -> None:
    clock = Clock()
    holder: dict = {}

    def make(path: Path) -> Session:
        session = factory(path)
        ask = session.ask

        def deleting_ask(message, **kwargs):
            holder["client"].delete(f"/v1/sessions/{holder['sid']}")
            return ask(message, **kwargs)

        session.ask = deleting_ask
        return session

    client = TestClient(create_app(make, media_root=media, clock=clock), base_url="http://127.0.0.1")
    holder.update(client=client, sid=client.post("/v1/sessions", json={"video": CLIP}).json()["id"])
    assert client.post(f"/v1/sessions/{holder['sid']}/messages", json={"message": "door"}).status_code == 200
    assert client.get(f"/v1/sessions/{holder['sid']}").status_code == 404
