"""The UI's live tab (`ui.live_tab`): its handlers on a real HLS stream served by a local HTTP server (start,
chips as events come, the recording so far as one mp4 the chips seek into, stop), and the tab in the app."""

from __future__ import annotations

import os
import re
import time

import av
import pytest

from grounding_agent.errors import ConfigError
from tests.livegen import make_hls, make_stream, serve_folder

os.environ.setdefault("GRADIO_ANALYTICS_ENABLED", "False")
gr = pytest.importorskip("gradio")

from grounding_agent.ui import live_tab  # noqa: E402 (after the gradio skip)

SLIDE = "the slide titled Quarterly Results"


def test_live_tab_watches_a_stream_shows_chips_and_plays_the_recording(tmp_path):
    stream = make_stream(tmp_path / "live.ts")
    server, port = serve_folder(make_hls(stream.path, tmp_path / "hls").parent)
    tab = live_tab.LiveTab(tmp_path / "out")
    with pytest.raises(ConfigError):
        tab.start("  ", SLIDE)
    with pytest.raises(ConfigError, match="not a stream URL"):
        tab.start(str(stream.path), SLIDE)  # never a file on this machine
    assert tab.refresh(None) == ("<p>no event yet</p>", "no watch running")
    try:
        sid, status = tab.start(f"http://127.0.0.1:{port}/live.m3u8", f"{SLIDE}\n\n")
        assert "1 alert(s)" in status
        deadline = time.monotonic() + 60
        while "ended" not in (got := tab.refresh(sid))[1] and time.monotonic() < deadline:
            time.sleep(0.2)
    finally:
        server.shutdown()
    html, status = got
    assert status.startswith("ended") and "1 alert(s)" in status, status
    path, start_s = tab.recording(sid)
    with av.open(path) as c:
        duration_s = float(c.duration / av.time_base)
    assert abs(duration_s - stream.duration_s) < 1.0 and 0.0 <= start_s < 0.5
    html, _ = tab.refresh(sid, start_s)
    seek = [float(s) for s in re.findall(r'data-start="([0-9.]+)"[^>]*>alert', html)]
    assert len(seek) == 1 and abs(seek[0] + start_s - 8.0) <= 0.6, html  # the slide, in the recording
    assert "stopped" in tab.stop(sid)


def test_the_app_has_a_live_tab(tmp_path):
    from grounding_agent.ui import app as ui

    (tmp_path / "media").mkdir()
    demo = ui.build_app(ui.UIConfig(tmp_path / "media", tmp_path / "out"), lambda path: None)
    assert any(getattr(b, "elem_id", None) == live_tab.PLAYER_ID for b in demo.blocks.values())
    assert not (tmp_path / "out" / "live").exists()  # nothing written until a watch starts
