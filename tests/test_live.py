"""`watch` on real streams published on 127.0.0.1 by ffmpeg (UDP MPEG-TS, HLS over a local HTTP server, a
growing file), with drawtext slides at known times and real RapidOCR; a UDP publisher restarted after a
pause (a drop) or queued behind a lagging watch (a timestamp reset), one outcome asserted per set-up.
Speech (real Whisper base), chat over a stream, TCP and HLS reconnects and stalls: test_live_reconnect.py."""

from __future__ import annotations

import threading
import time

import av
import numpy as np
import pytest

from grounding_agent.live import LiveEvent, Watcher, WatchOptions
from grounding_agent.live.sinks import CallbackSink
from tests.livegen import free_port, grow_file, make_hls, make_stream, publish_udp, serve_folder

SLIDE = "the slide titled Quarterly Results"
LAST_SLIDE = "the slide titled Thank You"
RECONNECT_TOPICS = ("connected", "dropped", "retry", "lost", "timestamps")
RESTART_AT_S = 13.0  # no slide change near it
PAUSE_S = 4.0  # between the UDP publisher's stop and restart: longer than the tests' --timeout 1.5 s


@pytest.fixture(scope="module")
def stream(tmp_path_factory):
    return make_stream(tmp_path_factory.mktemp("live") / "live.ts")


def _watch(source, options, out, **kw) -> tuple[list[LiveEvent], object, Watcher]:
    events: list[LiveEvent] = []
    watcher = Watcher(source, options, out, sinks=[CallbackSink(events.append)], **kw)
    return events, watcher.run(), watcher


def _alerts(events, query):
    return [e for e in events if e.kind == "alert" and e.query == query]


def _frames(path):
    with av.open(str(path)) as c:
        return [(float(f.time), f.to_ndarray(format="rgb24").astype(np.int16)) for f in c.decode(video=0)]


def _watch_in_thread(source, options, out, sink) -> tuple[threading.Thread, dict, Watcher]:
    result: dict = {}
    watcher = Watcher(source, options, out, sinks=[CallbackSink(sink)])
    thread = threading.Thread(target=lambda: result.update(report=watcher.run()))
    thread.start()
    return thread, result, watcher


def _topics(events) -> list[str]:
    return [e.channel for e in events if e.kind == "status" and e.channel in RECONNECT_TOPICS]


@pytest.mark.slow
def test_udp_restart_after_a_pause_longer_than_the_timeout_drops_and_reconnects(stream, tmp_path):
    """The UDP publisher stops at 13 s and starts again (from 13 s of the source) 4 s later, longer than
    --timeout, while the watch keeps up (no Whisper, 1 frame/s of OCR): no data for the timeout is a drop,
    the watch reconnects with backoff, stream time goes on; each slide alert once; the slide alert's clip is
    frame-exact. (A watch that lags instead: the next test.)"""
    port = free_port()
    options = WatchOptions(alerts=(SLIDE, LAST_SLIDE), fps=1.0, timeout_s=1.5, reconnects=8, backoff_s=0.2,
                           clip=True, pre_s=1.0, post_s=1.0, highlights=False,
                           duration_s=stream.duration_s - 0.5)  # fmt: skip
    events: list[LiveEvent] = []
    thread, result, _ = _watch_in_thread(f"udp://127.0.0.1:{port}", options, tmp_path / "w", events.append)
    time.sleep(0.5)
    publish_udp(stream.path, port, duration_s=RESTART_AT_S).wait(timeout=60)
    time.sleep(PAUSE_S)
    publish_udp(stream.path, port, start_s=RESTART_AT_S).wait(timeout=60)
    thread.join(timeout=60)
    assert not thread.is_alive()
    report = result["report"]

    topics = _topics(events)
    retries = topics.count("retry")
    assert topics == ["connected", "dropped"] + ["retry"] * retries + ["connected"], topics
    assert report.drops == 1 and report.connects == 2 and report.timestamp_resets == 0
    assert report.lag_max_s < PAUSE_S  # the set-up's premise: the watch kept up
    slide, last = _alerts(events, SLIDE), _alerts(events, LAST_SLIDE)
    assert len(slide) == 1 and slide[0].channel == "ocr", [e.to_dict() for e in events]
    assert 8.0 - 0.1 <= slide[0].start_s <= 8.0 + 1.0 / options.fps + 0.1  # within one sampling interval
    # After the restart, in stream time that went on (the source's own timestamps started again near 0);
    # UDP sent before the watch listened again is lost, so up to a second earlier than in the file.
    assert len(last) == 1 and 16.0 - 1.5 <= last[0].start_s <= 16.0 + 1.0 / options.fps + 0.15, last
    assert [e.seq for e in events] == list(range(1, len(events) + 1))  # numbered once each, in order

    clip = next(e for e in events if e.kind == "clip" and e.data["alert_seq"] == slide[0].seq)
    mp4 = clip.data["files"][0]
    assert any(f.endswith(".otio") for f in clip.data["files"]) and any(
        f.endswith(".edl") for f in clip.data["files"]
    )
    frames = _frames(mp4)
    assert abs(len(frames) - (options.pre_s + options.post_s) * 25) <= 1
    source = _frames(stream.path)
    want = slide[0].start_s - options.pre_s
    j = int(np.argmin([abs(t - source[0][0] - want) for t, _ in source]))
    errors = [np.abs(frames[0][1] - source[k][1]).mean() for k in range(j - 2, j + 3)]
    assert int(np.argmin(errors)) in (1, 2, 3) and min(errors) < 2.0  # the same frame, +-1


@pytest.mark.slow
def test_udp_restart_queued_behind_a_lagging_watch_re_anchors(stream, tmp_path):
    """A watch held back (its sink blocks on the first event until both publishers are done) finds the
    restarted publisher's packets queued in FFmpeg's UDP buffer right behind the first's: no pause to time
    out on, so no drop, but timestamps that jump back, re-anchored once; stream time monotonic, each slide
    alert once, at its place."""
    port = free_port()
    options = WatchOptions(alerts=(SLIDE, LAST_SLIDE), fps=1.0, timeout_s=1.5, reconnects=0, max_lag_s=600.0,
                           highlights=False, duration_s=stream.duration_s - 0.5)  # fmt: skip
    events: list[LiveEvent] = []
    release = threading.Event()

    def slow_sink(event: LiveEvent) -> None:  # a watch far behind the stream: nothing is read meanwhile
        events.append(event)
        if event.seq == 1:
            release.wait(timeout=120)

    thread, result, _ = _watch_in_thread(f"udp://127.0.0.1:{port}", options, tmp_path / "w", slow_sink)
    try:
        time.sleep(0.5)
        publish_udp(stream.path, port, duration_s=RESTART_AT_S).wait(timeout=60)
        time.sleep(PAUSE_S)
        publish_udp(stream.path, port, start_s=RESTART_AT_S).wait(timeout=60)
    finally:
        release.set()
    thread.join(timeout=60)
    assert not thread.is_alive()
    report = result["report"]

    assert events[0].channel == "connected" and _topics(events) == ["connected", "timestamps"], _topics(
        events
    )
    assert report.drops == 0 and report.connects == 1 and report.timestamp_resets == 1
    slide, last = _alerts(events, SLIDE), _alerts(events, LAST_SLIDE)
    assert len(slide) == 1 and 8.0 - 0.1 <= slide[0].start_s <= 8.0 + 1.0 / options.fps + 0.1, slide
    assert len(last) == 1 and 16.0 - 0.1 <= last[0].start_s <= 16.0 + 1.0 / options.fps + 0.15, last
    reset = next(e for e in events if e.channel == "timestamps")
    assert RESTART_AT_S - 0.5 <= reset.start_s <= RESTART_AT_S + 0.5  # where the restart was queued
    assert stream.duration_s - 1.0 <= report.stream_s <= stream.duration_s


def test_hls_playlist_from_a_local_http_server(stream, tmp_path):
    playlist = make_hls(stream.path, tmp_path / "hls")
    server, port = serve_folder(playlist.parent)
    options = WatchOptions(alerts=(SLIDE,), timeout_s=3, fps=1.0, reconnects=0)
    try:
        events, report, _ = _watch(f"http://127.0.0.1:{port}/live.m3u8", options, tmp_path / "w")
    finally:
        server.shutdown()
    hit = _alerts(events, SLIDE)
    assert len(hit) == 1 and 7.9 <= hit[0].start_s <= 9.1
    assert report.stream_s > stream.duration_s - 0.5 and report.ended == "the playlist ended (#EXT-X-ENDLIST)"


@pytest.mark.slow
def test_growing_file_is_followed_until_it_stops_growing(stream, tmp_path):
    growing = tmp_path / "growing.ts"
    writer = grow_file(stream.path, growing, seconds=3.0)
    events, report, _ = _watch(
        str(growing),
        WatchOptions(alerts=(SLIDE,), timeout_s=1.5, fps=1.0, keep_s=6.0, segment_s=1.0),
        tmp_path / "w",
    )
    writer.join()
    assert report.stream_s > stream.duration_s - 0.5 and report.ended == "source ended"
    assert len(_alerts(events, SLIDE)) == 1
    ring = sorted((tmp_path / "w" / "ring").glob("seg-*.ts"))
    assert 6 <= len(ring) <= 9 and report.ring_segments_deleted > 0  # bounded by keep_s
