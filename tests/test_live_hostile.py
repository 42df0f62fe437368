"""`watch` on bad input (one `error:` line, exit 2, no hang beyond --timeout, nothing written outside --out),
and the live parts that need no stream: monotonic stream time, the ring's bound, online highlights'
look-ahead, the webhook's bounded queue."""

from __future__ import annotations

import json
import socket
import threading
import time

import numpy as np
import pytest

from grounding_agent.errors import ConfigError
from grounding_agent.live.alerts import read_alert
from grounding_agent.live.events import LiveEvent
from grounding_agent.live.online import OnlineHighlights
from grounding_agent.live.ring import RingRecorder
from grounding_agent.live.sinks import WebhookSink
from grounding_agent.live.source import JUMP_AHEAD_S, LiveSource
from tests.livegen import free_port, make_hls, make_stream, serve_folder
from tests.test_hostile_options import assert_one_line_error, run_cli
from tests.test_hostile_options import empty_cwd as empty_cwd  # noqa: F401 (a fixture)
from tests.videogen import make_audio_only


@pytest.fixture(scope="module")
def stream(tmp_path_factory):
    return make_stream(tmp_path_factory.mktemp("live-hostile") / "live.ts")


def _timed(capsys, *argv):
    start = time.monotonic()
    rc, out, err = run_cli(capsys, "watch", *argv)
    return rc, out, err, time.monotonic() - start


def test_unreachable_and_silent_urls_fail_within_the_timeout(capsys, empty_cwd):
    rc, _, err, took = _timed(
        capsys, f"http://127.0.0.1:{free_port(socket.SOCK_STREAM)}/x.m3u8", "--out", "w", "--timeout", "2"
    )
    assert_one_line_error(rc, err, "cannot open as media")
    rc, _, err, took = _timed(capsys, f"udp://127.0.0.1:{free_port()}", "--out", "w", "--timeout", "1.5")
    assert_one_line_error(rc, err, "no data within 1.5 s")
    assert took < 1.5 + 3.0
    assert sorted(p.name for p in empty_cwd.iterdir()) == ["w"]  # nothing beside --out


def test_non_media_url_no_video_and_bad_alerts_are_one_line(capsys, tmp_path, empty_cwd):
    (tmp_path / "page.html").write_text("<html><body>" + "not a stream " * 200 + "</body></html>")
    server, port = serve_folder(tmp_path)
    try:
        rc, _, err, _ = _timed(capsys, f"http://127.0.0.1:{port}/page.html", "--out", "w", "--timeout", "2")
    finally:
        server.shutdown()
    assert_one_line_error(rc, err, "cannot open as media")
    audio = make_audio_only(tmp_path / "a.m4a", duration_s=2.0)
    rc, _, err, _ = _timed(capsys, str(audio), "--out", "w", "--timeout", "1")
    assert_one_line_error(rc, err, "no video stream")
    rc, _, err, _ = _timed(capsys, str(audio), "--out", "w", "--alert", "?!?")
    assert_one_line_error(rc, err, "reads as nothing")
    rc, _, err, _ = _timed(capsys, str(audio), "--out", "w", "--alert", "when she says 'hello'")
    assert_one_line_error(rc, err, "--asr-model")
    rc, _, err, _ = _timed(capsys, str(audio), "--out", "w", "--alert", "a dog runs")
    assert_one_line_error(rc, err, "--grounder")
    rc, _, err, _ = _timed(capsys, str(audio), "--out", str(audio))
    assert_one_line_error(rc, err, "not a folder")
    rc, _, err, _ = _timed(capsys, str(audio), "--out", str(tmp_path))
    assert_one_line_error(rc, err, "holds the source")


def test_a_looping_or_stalled_playlist_is_one_line(capsys, stream, tmp_path, empty_cwd):
    """A master playlist naming itself is refused before anything plays; a live playlist that stops growing
    ends the watch (no replay of its segments) with a one-line reason, within the timeout."""
    folder = tmp_path / "hls"
    playlist = make_hls(stream.path, folder)
    (folder / "stuck.m3u8").write_text(playlist.read_text().replace("#EXT-X-ENDLIST", ""))
    (folder / "loop.m3u8").write_text("#EXTM3U\n#EXT-X-STREAM-INF:BANDWIDTH=100000\nloop.m3u8\n")
    server, port = serve_folder(folder)
    try:
        rc, _, err, _ = _timed(capsys, f"http://127.0.0.1:{port}/loop.m3u8", "--out", "w", "--timeout", "2")
        assert_one_line_error(rc, err, "playlist loop")
        rc, out, err, took = _timed(capsys, f"http://127.0.0.1:{port}/stuck.m3u8", "--out", "w", "--timeout", "2",
                                    "--no-highlights")  # fmt: skip
    finally:
        server.shutdown()
    ended = json.loads(out.strip().splitlines()[-1])
    assert rc == 0 and "stopped growing" in ended["text"] and not err.strip(), (out, err)
    assert ended["data"]["stream_s"] < 6.5 and ended["data"]["connects"] == 1  # the live edge, once
    assert took < 2 * 2 + 6.0


@pytest.mark.slow
def test_a_hanging_webhook_never_blocks_the_watch(capsys, stream, tmp_path):
    """A webhook that accepts and never answers: the watch ends on time and says what was not delivered."""
    hang = socket.socket()
    hang.bind(("127.0.0.1", 0))
    hang.listen(64)
    url = f"http://127.0.0.1:{hang.getsockname()[1]}/hook"
    try:
        rc, out, err, took = _timed(capsys, str(stream.path), "--out", str(tmp_path / "w"), "--timeout", "0.3",
                                    "--webhook", url, "--no-highlights")  # fmt: skip
    finally:
        hang.close()
    assert rc == 0, err
    last = json.loads(out.strip().splitlines()[-1])
    assert last["channel"] == "ended" and last["data"]["webhook"]["sent"] == 0
    webhook = [json.loads(line) for line in out.splitlines() if '"webhook"' in line and '"status"' in line]
    assert webhook and webhook[0]["data"]["dropped"] == 0  # the queue held every event: none dropped
    assert took < 30
    report = json.loads((tmp_path / "w" / "report.json").read_text())
    assert report["webhook"]["failed"] + report["webhook"]["pending"] >= 1


def test_webhook_overflow_is_counted_not_silent():
    hang = socket.socket()
    hang.bind(("127.0.0.1", 0))
    hang.listen(8)
    sink = WebhookSink(f"http://127.0.0.1:{hang.getsockname()[1]}/", max_queue=2, retries=1, timeout_s=0.5)
    try:
        for k in range(10):
            sink.send(LiveEvent("status", k + 1, 0.0, 0.0, "test"))
        sink.close(wait_s=0.1)
    finally:
        hang.close()
    s = sink.stats
    assert s.dropped >= 7 and s.dropped + s.sent + s.failed + s.pending + 1 >= 10  # one may be in flight


def test_stream_time_is_monotonic_across_resets_and_wraps(stream):
    source = LiveSource(str(stream.path))
    raw = (100.0, 100.04, 100.08, 0.0, 0.04, 8.04, 95443.7, 95443.74, 1.0)
    times = [source._stream_time(t) for t in raw]
    assert times == sorted(times) and times[0] == 0.0 and source.resets == 3  # back, far ahead, back (wrap)
    assert times[5] - times[4] == pytest.approx(8.0)  # lost data stays a gap in stream time
    assert all(b - a <= JUMP_AHEAD_S for a, b in zip(times, times[1:]))


def test_ring_recording_is_bounded_by_keep_s(stream, tmp_path):
    source = LiveSource(str(stream.path), timeout_s=0.2)
    ring = RingRecorder(tmp_path / "ring", keep_s=5.0, segment_s=1.0)
    for packet, t in source.packets():
        ring.add(packet, t)
    ring.close()
    span = ring.segments[-1].end_s - ring.segments[0].start_s
    assert span <= 5.0 + 2.0 and ring.deleted >= 15
    assert len(list((tmp_path / "ring").glob("seg-*.ts"))) == len(ring.segments)
    with pytest.raises(Exception, match="not in the ring"):
        ring.cut(1.0, 3.0, tmp_path / "old.mp4")
    assert not (tmp_path / "old.mp4").exists()


def test_online_highlights_find_a_burst_within_the_declared_delay():
    online = OnlineHighlights(delay_s=3.0, z=2.0)
    rng = np.random.default_rng(0)
    found, known_at = [], {}
    for k in range(600):  # 60 s at 10 samples a second: quiet noise, a loud burst at 40-41 s
        t = k / 10
        level = 0.5 if 40.0 <= t < 41.0 else 0.01
        online.add_audio((rng.standard_normal(1600) * level).astype(np.float32), t)
        online.add_frame(np.full((18, 32, 3), 128 if t < 40 else 30, np.uint8), t)
        for hit in online.poll(t + 0.1):
            found.append(hit)
            known_at[hit.start_s] = t + 0.1
    assert [h.start_s for h in found] == [40.0]
    assert known_at[40.0] - found[0].end_s <= 3.0 + 0.5 + 0.1  # look-ahead + settle, never more
    assert len(online._bins) <= 2 and online.top_k_s()[0][0] == 40.0  # constant memory


def test_online_speech_arousal_scores_an_excited_second_without_look_ahead():
    """A voiced signal (a 120 Hz harmonic voice with a little jitter) at one level, then one second raised in
    pitch, pitch range and level: that bin's arousal stands out, silence has none, nothing waits for later."""
    online = OnlineHighlights(delay_s=0.0, z=99.0)  # no highlight events: read the arousal signal itself
    rng = np.random.default_rng(1)
    arousal = {}
    for sec in range(40):
        t = np.arange(16000) / 16000
        if sec % 10 == 9:
            voice = np.zeros_like(t)  # silence
        else:
            excited = sec == 30
            f0 = (220 if excited else 120) * (1 + (0.15 if excited else 0.01) * np.sin(2 * np.pi * 3 * t))
            phase = 2 * np.pi * np.cumsum(f0) / 16000
            level = 0.5 if excited else 0.1
            voice = level * sum(np.sin(h * phase) / h for h in (1, 2, 3)) + 0.002 * rng.standard_normal(16000)
        online.add_audio(voice.astype(np.float32), float(sec))
        online.add_frame(np.full((18, 32, 3), 128, np.uint8), float(sec))
        online.poll(sec + 1.0 + 0.5)
        arousal[sec] = online._window[-1][2].get("arousal")  # the bin just scored: nothing after it waited
    assert arousal[9] is None and arousal[19] is None  # silence: no arousal signal
    assert arousal[30] > 3.0 and arousal[30] == max(v for v in arousal.values() if v is not None)


def test_alerts_are_read_by_channel():
    assert read_alert("when someone says 'discount code'").channel == "speech"
    assert read_alert("the slide titled Results").target == "Results"
    assert read_alert("a dog runs").channel == "visual"
    with pytest.raises(ConfigError, match="reads as nothing"):
        read_alert("  ...  ")


def test_watcher_stop_from_another_thread(stream, tmp_path):
    from grounding_agent.live import Watcher, WatchOptions

    watcher = Watcher(str(stream.path), WatchOptions(speed=1.0, highlights=False), tmp_path / "w")
    threading.Timer(1.0, watcher.stop).start()
    report = watcher.run()
    assert report.ended == "stopped" and report.stream_s < 4.0


def test_http_streams_start_list_read_events_and_stop(stream, tmp_path):
    """`grounding-agent api --streams DIR` serves /v1/streams (off without it) over a stream served by a
    local HTTP server: start, list, server-sent events, stop; the recording goes under DIR."""
    from fastapi.testclient import TestClient

    from grounding_agent.cli import build_parser
    from grounding_agent.cli.api import make_app

    def api(*extra: str) -> TestClient:
        argv = ["api", "--media-root", str(tmp_path), "--backend", "uniform", "--allowed-host", "testserver"]
        return TestClient(make_app(build_parser("api").parse_args([*argv, *extra])))

    assert api().get("/v1/streams").status_code == 404  # off unless asked for
    client = api("--streams", str(tmp_path / "streams"))
    assert client.post("/v1/streams", json={"source": str(stream.path)}).status_code == 422  # no local files
    assert client.post("/v1/streams", json={"source": "udp://x", "alerts": ["?!"]}).status_code == 422
    server, port = serve_folder(stream.path.parent)
    try:
        body = {
            "source": f"http://127.0.0.1:{port}/{stream.path.name}",
            "alerts": ["the slide titled Thank You"],
        }
        started = client.post("/v1/streams", json=body)
        assert started.status_code == 201, started.text
        sid = started.json()["id"]
        assert [s["id"] for s in client.get("/v1/streams").json()] == [sid]
        with client.stream("GET", f"/v1/streams/{sid}/events") as reply:
            kinds = [line.split(": ", 1)[1] for line in reply.iter_lines() if line.startswith("event: ")]
        assert kinds[0] == "status" and "alert" in kinds and kinds[-1] == "done"
        stopped = client.delete(f"/v1/streams/{sid}").json()
        assert stopped["running"] is False and stopped["alerts"] == 1
        assert list((tmp_path / "streams" / sid / "ring").glob("seg-*.ts"))
        assert client.get("/v1/streams/nope/events").status_code == 404
    finally:
        server.shutdown()
