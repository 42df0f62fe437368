"""Reconnects, asserted one outcome per set-up, on real publishers on 127.0.0.1: ffmpeg serving MPEG-TS over
TCP (`?listen=1`: killing it drops the connection, restarting it on the same port lets the watch back in), a
TCP publisher paused with SIGSTOP (the socket stays open: a stall), and a live HLS playlist whose HTTP server
stops and starts again. Speech through the real Whisper base, on-screen text through RapidOCR. And capture
devices as far as this machine has them: FFmpeg's virtual lavfi device through `lavfi:GRAPH` (no camera here;
PyAV's FFmpeg has no v4l2 input device, so `v4l2:/dev/video0` is refused in one line)."""

from __future__ import annotations

import json
import os
import re
import signal
import socket
import threading
import time

import av
import pytest

from grounding_agent.conversation.session import Session
from grounding_agent.live import LiveEvent, Watcher, WatchOptions
from grounding_agent.live.recall import Recall
from grounding_agent.live.sinks import CallbackSink
from grounding_agent.live.source import LiveSource
from tests.livegen import LiveHls, free_port, make_stream, publish_tcp, serve_folder, wait_listening
from tests.test_hostile_options import assert_one_line_error, run_cli

SPEECH = "when someone says 'discount code'"
LATER = "when she says 'favourite colour'"
NEVER = "when she says 'free shipping'"
SLIDE = "the slide titled Quarterly Results"
LAST_SLIDE = "the slide titled Thank You"
RECONNECT_TOPICS = ("connected", "dropped", "retry", "lost", "timestamps")
OUTAGE_S = 3.0  # the HLS server is down this long: fewer than FFmpeg's 3 live-edge segments are missed
KILL_AT_S = 13.0  # no phrase or slide change near it: the first publisher's end cuts nothing in two


@pytest.fixture(scope="module")
def stream(tmp_path_factory):
    return make_stream(tmp_path_factory.mktemp("live-reconnect") / "live.ts")


@pytest.fixture(scope="module")
def whisper(whisper_base):
    from grounding_agent.media.asr import load_whisper

    return load_whisper(whisper_base, compute_type="int8")


def _alerts(events: list[LiveEvent], query: str) -> list[LiveEvent]:
    return [e for e in events if e.kind == "alert" and e.query == query]


def _topics(events: list[LiveEvent]) -> list[str]:
    return [e.channel for e in events if e.kind == "status" and e.channel in RECONNECT_TOPICS]


def _waits(texts: list[str]) -> list[float]:
    return [float(re.search(r"next in ([0-9.]+) s", t).group(1)) for t in texts]


def _wait_for(predicate, timeout_s: float) -> None:
    deadline = time.monotonic() + timeout_s
    while not predicate():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.05)


@pytest.mark.slow
def test_tcp_publisher_killed_and_restarted_reconnects_once(stream, whisper, tmp_path):
    """The publisher ends the connection at 13 s and is restarted (from 13 s of the source) after the watch
    said it dropped: connected -> dropped (reconnecting) -> retries with growing waits -> connected again;
    one drop; each alert before and after the restart exactly once, at its place in a stream time that went
    on (the restarted publisher's timestamps start again near 0); chat answers from what was kept."""
    port = free_port(socket.SOCK_STREAM)
    options = WatchOptions(alerts=(SPEECH, LATER, NEVER, SLIDE, LAST_SLIDE), timeout_s=1.5, reconnects=8,
                           backoff_s=0.2, highlights=False, duration_s=stream.duration_s - 0.5)  # fmt: skip
    events: list[LiveEvent] = []
    watcher = Watcher(f"tcp://127.0.0.1:{port}", options, tmp_path / "w", sinks=[CallbackSink(events.append)],
                      whisper=whisper)  # fmt: skip
    first = publish_tcp(stream.path, port, duration_s=KILL_AT_S)
    second = None
    try:
        wait_listening(port)
        result: dict = {}
        thread = threading.Thread(target=lambda: result.update(report=watcher.run()))
        thread.start()
        first.wait(timeout=60)
        _wait_for(lambda: "dropped" in _topics(events), timeout_s=30)
        # Chat over the stream while it is down: answered in stream time from the recording so far.
        _wait_for(lambda: any("discount" in w.text.lower() for w in list(watcher.speech.words)), 10)
        said = next(p for p in stream.phrases if "discount" in p.text)
        answer = Session.live(watcher).ask("when did she mention the discount code?")
        assert len(answer.moments) == 1 and abs(answer.moments[0].start_s - said.start_s) < 1.0, answer.text
        assert Session.live(watcher).ask("when did she mention free shipping?").absent == "said"
        time.sleep(1.0)  # a pause with the port closed: the watch retries, refused, with backoff
        second = publish_tcp(stream.path, port, start_s=KILL_AT_S)
        thread.join(timeout=90)
        assert not thread.is_alive()
    finally:
        for publisher in (first, second):
            if publisher is not None and publisher.poll() is None:
                publisher.kill()
                publisher.wait()
    report = result["report"]

    topics = _topics(events)
    retries = topics.count("retry")
    assert topics == ["connected", "dropped"] + ["retry"] * retries + ["connected"], topics
    assert retries >= 2 and report.drops == 1 and report.connects == 2 and report.timestamp_resets == 0
    status = {e.channel: e.text for e in events if e.kind == "status"}
    assert "reconnecting" in status["dropped"] and status["connected"].endswith(" again")
    waits = _waits([e.text for e in events if e.kind == "status" and e.channel == "retry"])
    assert waits == sorted(waits) and waits[-1] > waits[0], waits  # exponential backoff, said each time

    for query, spoken_or_shown_s, tolerance_s in (
        (SPEECH, next(p.start_s for p in stream.phrases if "discount" in p.text) + 0.33, 0.8),
        (SLIDE, 8.0, 1.0 / options.fps + 0.1),
        (LATER, next(p.start_s for p in stream.phrases if "colour" in p.text), 1.5),
        (LAST_SLIDE, 16.0, 1.0 / options.fps + 0.15),
    ):
        hits = _alerts(events, query)
        assert len(hits) == 1, (query, [e.to_dict() for e in events if e.kind != "status"])
        assert abs(hits[0].start_s - spoken_or_shown_s) <= tolerance_s, (query, hits[0].start_s)
    assert not _alerts(events, NEVER)
    assert [e.seq for e in events] == list(range(1, len(events) + 1))
    # Stream time went on across the restart: the ring recording's segments follow each other.
    segments = list(watcher.ring.segments)
    spans = [(round(g.start_s, 2), round(g.end_s, 2)) for g in segments]
    assert all(b.start_s >= a.end_s - 0.2 for a, b in zip(segments, segments[1:], strict=False)), spans
    assert stream.duration_s - 1.5 <= report.stream_s <= stream.duration_s
    recall = Recall(watcher)
    assert (
        abs(recall.when_said("when did he say 'good morning'?")[0].start_s - stream.phrases[0].start_s) < 1.0
    )
    assert "let's go" in recall.just_happened(10.0).lower().replace("let us", "let's")


def test_a_stalled_tcp_publisher_ends_the_watch_with_one_line(capsys, stream, tmp_path):
    """The publisher is paused (SIGSTOP: the connection stays open, no data): with --reconnects 0 the watch
    ends within --timeout (+ slack) with one `lost` line naming the timeout, exit status 0 (docs/live.md)."""
    port = free_port(socket.SOCK_STREAM)
    publisher = publish_tcp(stream.path, port)
    stopped: list[float] = []

    def pause() -> None:
        os.kill(publisher.pid, signal.SIGSTOP)
        stopped.append(time.time())

    timer = threading.Timer(3.0, pause)
    try:
        wait_listening(port)
        timer.start()
        rc, out, err = run_cli(capsys, "watch", f"tcp://127.0.0.1:{port}", "--out", tmp_path / "w",
                               "--timeout", "1.5", "--reconnects", "0", "--no-highlights")  # fmt: skip
    finally:
        timer.cancel()
        publisher.kill()  # a stopped process is killed too
        publisher.wait()
    lines = [json.loads(line) for line in out.strip().splitlines()]
    lost = [e for e in lines if e["kind"] == "status" and e["channel"] == "lost"]
    assert rc == 0 and not err.strip(), err
    assert len(lost) == 1 and "no data for 1.5 s" in lost[0]["text"] and "--reconnects" in lost[0]["text"]
    assert 1.5 - 0.5 <= lost[0]["wall_s"] - stopped[0] <= 1.5 + 1.0, lost[0]["wall_s"] - stopped[0]
    ended = lines[-1]
    assert ended["channel"] == "ended" and ended["text"] == lost[0]["text"]
    assert ended["data"]["drops"] == 1 and ended["data"]["connects"] == 1
    assert 2.0 <= ended["data"]["stream_s"] <= 4.0  # what arrived before the pause


@pytest.mark.slow
def test_hls_server_stops_and_restarts_reconnects_without_repeating(stream, tmp_path):
    """A live playlist published in real time; its publisher pauses 1.5 s (within --timeout beyond the
    target duration: no drop), later its HTTP server stops for 3 s and starts again on the same port: one
    drop, retries with backoff said, connected again, and the segments FFmpeg plays again after the
    reconnect are skipped: every picture once (back within FFmpeg's 3 live segments, none is lost), stream
    time monotonic, ended by #EXT-X-ENDLIST."""
    folder = tmp_path / "served"
    hls = LiveHls(stream.path, folder, pause_after=3, pause_s=1.5)
    server, port = serve_folder(folder)
    said: list[tuple[str, str]] = []
    source = LiveSource(f"http://127.0.0.1:{port}/live.m3u8", timeout_s=3.0, reconnects=8, backoff_s=0.2,
                        backoff_max_s=1.0, on_status=lambda topic, text: said.append((topic, text)))  # fmt: skip
    servers = [server]

    def outage() -> None:
        _wait_for(lambda: hls.resumed_at is not None, timeout_s=30)
        time.sleep(3.0)
        servers[0].shutdown()
        servers[0].server_close()  # connections refused from now on
        time.sleep(OUTAGE_S)
        servers.append(serve_folder(folder, port)[0])

    hls.start()
    threading.Thread(target=outage, daemon=True).start()
    pictures: list[tuple[int, float]] = []
    try:
        for packet, t_s in source.packets():
            if packet.stream.type == "video":
                pictures.append((packet.pts, t_s))
    finally:
        hls.join(timeout_s=30)
        for s in servers[-1:]:
            s.shutdown()
    topics = [topic for topic, _ in said]
    retries = topics.count("retry")
    assert topics == ["connected", "dropped"] + ["retry"] * retries + ["connected"], said
    assert retries >= 1 and source.drops == 1 and source.connects == 2 and source.resets == 0
    waits = _waits([text for topic, text in said if topic == "retry"])
    assert waits == sorted(waits), waits
    pts = [p for p, _ in pictures]
    assert len(pts) == len(set(pts)) == stream.duration_s * 25  # every picture once: none lost, none twice
    times = [t for _, t in pictures]
    assert times == sorted(times) and times[-1] == pytest.approx(stream.duration_s - 0.04, abs=0.05)
    assert source.end_note == "the playlist ended (#EXT-X-ENDLIST)" and not source.lost


@pytest.mark.slow
def test_a_lavfi_device_is_watched_through_the_device_syntax(capsys, stream, tmp_path):
    """`lavfi:GRAPH` opens FFmpeg's lavfi input device, the one capture device this machine has (virtual):
    a graph playing the test stream at real speed (`realtime`); the slide alert fires once at its time and
    the device's end ends the watch. `v4l2:/dev/video0` (a camera) is one line: this PyAV build has no v4l2
    input device (with one, there is no /dev/video0 here to open)."""
    options = WatchOptions(alerts=(SLIDE,), timeout_s=2.0, highlights=False)
    events: list[LiveEvent] = []
    graph = f"movie={stream.path},trim=duration=10,realtime"
    report = Watcher(f"lavfi:{graph}", options, tmp_path / "w", sinks=[CallbackSink(events.append)]).run()
    hits = _alerts(events, SLIDE)
    assert len(hits) == 1 and 8.0 - 0.1 <= hits[0].start_s <= 8.0 + 1.0 / options.fps + 0.1, hits
    assert report.ended == "source ended" and report.connects == 1 and report.drops == 0
    assert 9.5 <= report.stream_s <= 10.0 and report.wall_s >= 9.0  # at the device's pace, not faster
    rc, _, err = run_cli(capsys, "watch", "v4l2:/dev/video0", "--out", tmp_path / "cam", "--timeout", "1")
    if "v4l2" in av.formats_available:
        assert_one_line_error(rc, err, "cannot open as media")
    else:
        assert_one_line_error(rc, err, "has no v4l2 input device")
