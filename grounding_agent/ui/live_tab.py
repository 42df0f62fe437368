"""The web UI's "live" tab: watch a stream URL with standing alerts (`live.registry.StreamRegistry`), see
its alerts and highlights as chips as they come, and play what was recorded so far (the ring recording
joined into one mp4): clicking a chip seeks that player to the event. `ui.app` adds the tab with `build`;
`LiveTab` is the handlers' work (tested without a browser).

Only stream URLs are watched (never a file on this machine); speech alerts need a Whisper model
(`build(..., whisper=model)`), other alerts do not.
"""

from __future__ import annotations

import html
from pathlib import Path
from typing import Any

from grounding_agent.errors import ConfigError, GroundingAgentError
from grounding_agent.live.events import LiveEvent

PLAYER_ID = "live-player"
POLL_S = 1.0
SHOWN_EVENTS = 50  # chips shown, newest last
CHIPS_JS = """
element.addEventListener('click', (event) => {
  const chip = event.target.closest('[data-start]');
  const video = document.querySelector('#PLAYER video');
  if (!chip || !video) return;
  video.currentTime = parseFloat(chip.dataset.start);
});
""".replace("PLAYER", PLAYER_ID)


class LiveTab:
    """Start / refresh / record / stop one watch at a time per browser tab (its id lives in a gr.State)."""

    def __init__(self, output_root: str | Path, *, whisper: Any = None):
        self.folder = Path(output_root) / "live"
        self.whisper = whisper
        self._streams: Any = None

    @property
    def streams(self) -> Any:
        if self._streams is None:  # made on first use: the UI writes nothing until a watch starts
            from grounding_agent.live.registry import StreamRegistry

            self._streams = StreamRegistry(self.folder, whisper=self.whisper)
        return self._streams

    def start(self, source: str, alerts: str, sid: str | None = None) -> tuple[str, str]:
        """(the new watch's id, a status line); alerts one a line. A watch this tab had is stopped."""
        if not (source or "").strip():
            raise ConfigError("give a stream URL (udp://, srt://, rtmp://, rtsp://, http://.../live.m3u8)")
        if sid:
            self.stop(sid)
        queries = [line.strip() for line in (alerts or "").splitlines() if line.strip()]
        new = self.streams.start(source.strip(), queries)
        return new, f"watching {source.strip()[:80]} ({len(queries)} alert(s))"

    def refresh(self, sid: str | None, offset_s: float = 0.0) -> tuple[str, str]:
        """(the chips of its alerts and highlights, seeking to stream time - `offset_s`; a status line)."""
        if not sid:
            return chips([], offset_s), "no watch running"
        events, done = self.streams.events_since(sid, 0)
        about = self.streams.describe(sid)
        state = "ended" if done else "running"
        status = f"{state}: {about['events']} event(s), {about['alerts']} alert(s)"
        if about["error"]:
            status += f"; {about['error']}"
        return chips(events, offset_s), status

    def recording(self, sid: str | None) -> tuple[str, float]:
        """(an mp4 of what is recorded so far, the stream time its 0 s shows)."""
        if not sid:
            raise ConfigError("start a watch first")
        watcher = self.streams.watcher(sid)
        if watcher.ring is None:
            raise ConfigError("the watch has not connected yet; try again in a moment")
        path, start_s = watcher.ring.snapshot(self.folder / sid / "recording.mp4")
        return str(path), start_s

    def stop(self, sid: str | None) -> str:
        if not sid:
            return "no watch running"
        about = self.streams.stop(sid)
        return f"stopped: {about['events']} event(s), {about['alerts']} alert(s)"


def chips(events: list[LiveEvent], offset_s: float = 0.0) -> str:
    """One chip per alert / highlight (data-start: its time in the recording, stream time - `offset_s`)."""
    shown = [e for e in events if e.kind in ("alert", "highlight")][-SHOWN_EVENTS:]
    if not shown:
        return "<p>no event yet</p>"
    return (
        '<div class="chips">'
        + "".join(
            f'<button class="chip" data-start="{max(0.0, e.start_s - offset_s):.3f}" '
            f'title="{html.escape(e.query or e.channel)}">{html.escape(e.kind)} {e.start_s:.1f} s: '
            f"{html.escape((e.text or e.query)[:60])}</button>"
            for e in shown
        )
        + "</div>"
    )


def build(gr: Any, tab: LiveTab, chips_css: str) -> None:
    """The tab's controls and handlers, inside the caller's Blocks."""

    def guarded(fn, *args):
        try:
            return fn(*args)
        except GroundingAgentError as exc:  # a bad URL / alert, nothing recorded yet: a one-line toast
            raise gr.Error(str(exc).splitlines()[0]) from None

    def start(source, alerts, sid):
        new, status = guarded(tab.start, source, alerts, sid)
        return new, status, 0.0

    def record(sid):
        path, start_s = guarded(tab.recording, sid)
        return (path, start_s, *tab.refresh(sid, start_s))

    with gr.Tab("live"):
        source = gr.Textbox(label="stream URL", placeholder="udp://127.0.0.1:5000", elem_id="live-source")
        alerts = gr.Textbox(label="alerts (one a line)", lines=3, elem_id="live-alerts",
                            placeholder="when someone says 'discount code'\nthe slide titled Results")  # fmt: skip
        with gr.Row():
            start_btn = gr.Button("watch", variant="primary", elem_id="live-start")
            record_btn = gr.Button("show the recording", elem_id="live-record")
            stop_btn = gr.Button("stop", elem_id="live-stop")
        status = gr.Markdown(elem_id="live-status")
        player = gr.Video(label="recording so far", elem_id=PLAYER_ID, interactive=False, height=280)
        events = gr.HTML(chips([]), js_on_load=CHIPS_JS, css_template=chips_css, elem_id="live-chips")
        sid, offset = gr.State(None), gr.State(0.0)
        timer = gr.Timer(POLL_S)
    start_btn.click(start, [source, alerts, sid], [sid, status, offset], api_name="live_start")
    record_btn.click(record, [sid], [player, offset, events, status], api_name="live_recording")
    stop_btn.click(lambda s: guarded(tab.stop, s), [sid], [status], api_name="live_stop")
    timer.tick(lambda s, o: guarded(tab.refresh, s, o), [sid, offset], [events, status], api_name=False)
