"""The HTTP API on 127.0.0.1: status codes, streaming, session expiry, bounded memory and concurrency,
and a real `grounding-agent api` (uvicorn) answering 50 concurrent /v1/ground requests."""

from __future__ import annotations

import asyncio
import json
import shutil
import subprocess
import sys
import threading
import time
import tracemalloc
from pathlib import Path

import httpx
import jsonschema
import pytest
from fastapi.testclient import TestClient

from grounding_agent import Session
from grounding_agent.grounders.baselines import UniformGrounder
from grounding_agent.grounders.serving import free_port
from grounding_agent.http import create_app

REPO = Path(__file__).resolve().parents[1]
PREDICTION_SCHEMA = json.loads((REPO / "schemas" / "prediction.schema.json").read_text())
ANSWER_SCHEMA = json.loads((REPO / "schemas" / "answer.schema.json").read_text())
CLIP = "timer1_charades_OHOFG.mp4"
CLI = Path(sys.executable).parent / "grounding-agent"


class ConcurrencyProbeGrounderForTests(UniformGrounder):
    """The uniform baseline, held until `gate` opens, recording how many calls ran at once."""

    def __init__(self):
        super().__init__()
        self.active = self.peak = self.calls = 0
        self.gate = threading.Event()
        self._lock = threading.Lock()

    def ground(self, *args, **kwargs):
        with self._lock:
            self.active += 1
            self.calls += 1
            self.peak = max(self.peak, self.active)
        try:
            assert self.gate.wait(timeout=30)
            return super().ground(*args, **kwargs)
        finally:
            with self._lock:
                self.active -= 1


@pytest.fixture()
def media(tmp_path, real_clips) -> Path:
    root = tmp_path / "media"
    (root / "sub").mkdir(parents=True)
    shutil.copy(real_clips[CLIP], root / CLIP)
    (root / "sub" / "link.mp4").symlink_to(root / CLIP)  # a link that stays inside: allowed
    outside = tmp_path / "outside.mp4"
    shutil.copy(real_clips[CLIP], outside)
    (root / "escape.mp4").symlink_to(outside)  # a link out of the root: refused
    (root / "broken.mp4").write_text("not a video")
    return root


class FakeClockForTests:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def make_client(media: Path, grounder=None, **kwargs) -> TestClient:
    grounder = grounder or UniformGrounder()

    def factory(path: Path) -> Session:
        return Session(path, grounder, max_turns=5)

    app = create_app(factory, media_root=media, grounder_name=grounder.name, **kwargs)
    return TestClient(app, base_url="http://127.0.0.1")  # the Host header must be an allowed one


def test_health_and_docs(media) -> None:
    client = make_client(media)
    assert client.get("/v1/health").json() == {
        "status": "ok",
        "grounder": "uniform",
        "sessions": 0,
        "in_flight": 0,
    }
    assert client.get("/docs").status_code == 200
    paths = client.get("/openapi.json").json()["paths"]
    assert {"/v1/health", "/v1/ground", "/v1/sessions", "/v1/sessions/{sid}/messages"} <= set(paths)


def test_ground_returns_a_prediction(media) -> None:
    client = make_client(media)
    for video in (CLIP, "sub/link.mp4", f"sub/../{CLIP}"):
        r = client.post("/v1/ground", json={"video": video, "query": "the person opens the door", "top_k": 3})
        assert r.status_code == 200, r.text
        jsonschema.validate(r.json(), PREDICTION_SCHEMA)
        assert len(r.json()["pred_relevant_windows"]) == 3


@pytest.mark.parametrize(
    "video", ["../outside.mp4", "/etc/passwd", "escape.mp4", "sub/../../outside.mp4", "C:/x.mp4"]
)
def test_paths_outside_the_media_root_are_403(media, video) -> None:
    client = make_client(media)
    for path, body in (("/v1/ground", {"video": video, "query": "q"}), ("/v1/sessions", {"video": video})):
        r = client.post(path, json=body)
        assert r.status_code == 403, (video, r.text)
        assert str(media.parent) not in r.json()["detail"]  # the server's folders are not disclosed


def test_unknown_video_and_session_are_404(media) -> None:
    client = make_client(media)
    assert client.post("/v1/ground", json={"video": "nope.mp4", "query": "q"}).status_code == 404
    assert client.post("/v1/sessions/nope/messages", json={"message": "hi"}).status_code == 404
    assert client.get("/v1/sessions/nope").status_code == 404
    assert client.delete("/v1/sessions/nope").status_code == 404


@pytest.mark.parametrize(
    "body",
    [{"video": CLIP}, {"video": CLIP, "query": ""}, {"video": CLIP, "query": "q", "top_k": 0},
     {"video": CLIP, "query": "q", "top_k": "three"}, {"video": CLIP, "query": "q", "extra": 1}, [1, 2]],
)  # fmt: skip
def test_malformed_bodies_are_422(media, body) -> None:
    assert make_client(media).post("/v1/ground", json=body).status_code == 422


def test_not_json_and_unreadable_video_are_422(media) -> None:
    client = make_client(media)
    r = client.post("/v1/ground", content=b"{not json", headers={"content-type": "application/json"})
    assert r.status_code == 422
    assert client.post("/v1/sessions", json={"video": "broken.mp4"}).status_code == 422
    sid = client.post("/v1/sessions", json={"video": CLIP}).json()["id"]
    assert client.post(f"/v1/sessions/{sid}/messages", json={"message": ""}).status_code == 422
    assert client.post(f"/v1/sessions/{sid}/messages", json={"text": "hi"}).status_code == 422


def test_a_session_follows_up_and_can_be_deleted(media) -> None:
    client = make_client(media)
    r = client.post("/v1/sessions", json={"video": CLIP})
    assert r.status_code == 201 and r.json()["duration_s"] > 30
    sid = r.json()["id"]
    first = client.post(
        f"/v1/sessions/{sid}/messages", json={"message": "when does the person open the door?"}
    ).json()
    second = client.post(f"/v1/sessions/{sid}/messages", json={"message": "what happens after that?"}).json()
    for answer in (first, second):
        jsonschema.validate(answer, ANSWER_SCHEMA)
    assert second["moments"][0]["start_s"] >= first["moments"][0]["end_s"]
    assert [t["message"] for t in client.get(f"/v1/sessions/{sid}").json()["turns"]] == [
        "when does the person open the door?", "what happens after that?"]  # fmt: skip
    assert client.delete(f"/v1/sessions/{sid}").status_code == 204
    assert client.post(f"/v1/sessions/{sid}/messages", json={"message": "hi"}).status_code == 404


def sse_events(text: str) -> list[tuple[str, dict]]:
    events = []
    for block in text.strip().split("\n\n"):
        fields = dict(line.split(": ", 1) for line in block.splitlines())
        events.append((fields["event"], json.loads(fields["data"])))
    return events


def test_messages_stream_as_server_sent_events(media) -> None:
    client = make_client(media)
    sid = client.post("/v1/sessions", json={"video": CLIP}).json()["id"]
    with client.stream("POST", f"/v1/sessions/{sid}/messages",
                       json={"message": "the person opens the door", "stream": True}) as r:  # fmt: skip
        assert r.status_code == 200 and r.headers["content-type"].startswith("text/event-stream")
        events = sse_events(r.read().decode())
    assert [kind for kind, _ in events] == ["plan", "step", "moments", "text", "answer", "done"]
    answer = events[-2][1]
    jsonschema.validate(answer, ANSWER_SCHEMA)
    assert events[2][1] == answer["moments"] and events[3][1]["text"] == answer["text"]
    with client.stream(
        "POST", f"/v1/sessions/{sid}/messages", json={"message": "after that?", "stream": True}
    ) as r:
        kinds = [kind for kind, _ in sse_events(r.read().decode())]
    assert kinds[0] == "reference" and kinds[-2:] == ["answer", "done"]


def test_sessions_expire_after_ttl_and_by_lru(media) -> None:
    clock = FakeClockForTests()
    client = make_client(media, ttl_s=60.0, max_sessions=2, clock=clock)
    a = client.post("/v1/sessions", json={"video": CLIP}).json()["id"]
    clock.now = 50.0
    assert client.get(f"/v1/sessions/{a}").status_code == 200  # use refreshes it
    clock.now = 100.0
    assert client.get(f"/v1/sessions/{a}").status_code == 200
    clock.now = 161.0
    assert client.get(f"/v1/sessions/{a}").status_code == 404  # idle > 60 s
    ids = [client.post("/v1/sessions", json={"video": CLIP}).json()["id"] for _ in range(3)]
    assert [client.get(f"/v1/sessions/{i}").status_code for i in ids] == [404, 200, 200]
    assert client.get("/v1/health").json()["sessions"] == 2


def test_a_session_survives_20_turns_with_bounded_memory(media) -> None:
    client = make_client(media)
    sid = client.post("/v1/sessions", json={"video": CLIP}).json()["id"]
    messages = [
        "when does the person open the door?",
        "what happens after that?",
        "right before that?",
        "again?",
    ]
    tracemalloc.start()
    try:
        sizes = []
        for i in range(20):
            r = client.post(f"/v1/sessions/{sid}/messages", json={"message": messages[i % 4]})
            assert r.status_code == 200 and r.json()["text"]
            sizes.append(tracemalloc.get_traced_memory()[0])
    finally:
        tracemalloc.stop()
    turns = client.get(f"/v1/sessions/{sid}").json()["turns"]
    assert len(turns) == 5 and turns[-1]["turn"] == 20  # older turns dropped
    assert sizes[-1] - sizes[9] < 256 * 1024  # turns 11-20 keep no growing state


def test_concurrency_is_bounded_and_excess_waiters_get_503(media) -> None:
    probe = ConcurrencyProbeGrounderForTests()
    app = create_app(lambda p: Session(p, probe), media_root=media, max_concurrency=3, max_pending=40)

    async def burst(n: int) -> list[int]:
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://127.0.0.1") as client:
            body = {"video": CLIP, "query": "the person opens the door"}
            tasks = [asyncio.create_task(client.post("/v1/ground", json=body)) for _ in range(n)]
            for _ in range(300):  # every request is in: 40 waiting or running, 10 refused
                await asyncio.sleep(0.05)
                in_flight = (await client.get("/v1/health")).json()["in_flight"]
                if in_flight == 40 and sum(t.done() for t in tasks) == 10 and probe.active == 3:
                    break
            probe.gate.set()
            responses = await asyncio.gather(*tasks)
        return [r.status_code for r in responses]

    codes = asyncio.run(burst(50))
    assert codes.count(200) == 40 and codes.count(503) == 10
    assert probe.peak == 3 and probe.calls == 40


@pytest.mark.slow
def test_real_uvicorn_answers_50_concurrent_ground_requests(media) -> None:
    port = free_port()
    cmd = [
        str(CLI),
        "api",
        "--media-root",
        str(media),
        "--backend",
        "uniform",
        "--port",
        str(port),
        "--max-concurrency",
        "4",
    ]
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 60
        while True:
            try:
                if httpx.get(f"{base}/v1/health", timeout=1).status_code == 200:
                    break
            except httpx.TransportError:
                pass
            assert proc.poll() is None, proc.stderr.read()
            assert time.monotonic() < deadline, "the API did not come up in 60 s"
            time.sleep(0.2)

        async def burst() -> list[httpx.Response]:
            async with httpx.AsyncClient(base_url=base, timeout=60) as client:
                body = {"video": CLIP, "query": "the person opens the door", "top_k": 2}
                return await asyncio.gather(*(client.post("/v1/ground", json=body) for _ in range(50)))

        responses = asyncio.run(burst())
        assert [r.status_code for r in responses] == [200] * 50
        for r in responses:
            jsonschema.validate(r.json(), PREDICTION_SCHEMA)
            assert len(r.json()["pred_relevant_windows"]) == 2
        assert httpx.post(f"{base}/v1/ground", json={"video": "../x.mp4", "query": "q"}).status_code == 403
    finally:
        proc.terminate()
        proc.wait(timeout=30)


def test_responses_are_strict_json_even_with_a_nan_inside() -> None:
    """A NaN deep in an answer (a saliency score, an explanation's number) is null, not a failed request."""
    from grounding_agent.http.state import StrictJSONResponse

    body = StrictJSONResponse({"moments": [{"score": 0.5, "explanation": {"p_yes": float("nan")}}]}).body
    assert json.loads(body, parse_constant=lambda word: pytest.fail(f"non-standard {word}")) == {
        "moments": [{"score": 0.5, "explanation": {"p_yes": None}}]
    }


class SlowTurnSessionForTests:
    """A session double whose turn emits its plan and step, then takes 0.5 s more before it answers."""

    def __init__(self, path: Path):
        self.video = type("V", (), {"duration_s": 30.0})()

    def ask(self, message: str, *, on_event=None):
        on_event("plan", {"query": message, "steps": [{"id": "s1", "text": message}]})
        on_event(
            "step", {"id": "s1", "text": message, "window_s": [0.0, 30.0], "candidates": [[1.0, 2.0, 0.5]]}
        )
        time.sleep(0.5)
        on_event("moments", [{"start_s": 1.0, "end_s": 2.0, "score": 0.5}])
        on_event("text", {"text": "at 1 s", "text_source": "test"})
        return type("A", (), {"to_dict": lambda self: {"text": "at 1 s"}})()


def test_streamed_steps_reach_the_client_as_they_happen(media) -> None:
    """Over a real socket: the step event arrives well before the answer, not with it at the end."""
    import uvicorn

    port = free_port()
    app = create_app(SlowTurnSessionForTests, media_root=media)
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    try:
        base = f"http://127.0.0.1:{port}"
        for _ in range(200):
            if server.started:
                break
            time.sleep(0.05)
        sid = httpx.post(f"{base}/v1/sessions", json={"video": CLIP}).json()["id"]
        arrived = {}
        body = {"message": "the person opens the door", "stream": True}
        with httpx.stream("POST", f"{base}/v1/sessions/{sid}/messages", json=body, timeout=30) as r:
            for line in r.iter_lines():
                if line.startswith("event: "):
                    arrived[line.removeprefix("event: ")] = time.perf_counter()
    finally:
        server.should_exit = True
        thread.join(timeout=10)
    assert list(arrived) == ["plan", "step", "moments", "text", "answer", "done"]
    assert arrived["answer"] - arrived["step"] > 0.4
