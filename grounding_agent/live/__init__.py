"""Live streams: watch a stream as it plays, with standing queries, online highlights and clip-it.

    from grounding_agent.live import Watcher, WatchOptions
    Watcher("udp://127.0.0.1:5000", WatchOptions(alerts=("when she says 'discount code'",)), out="w").run()

Modules, bottom up: `events` (`LiveEvent`, the one event type), `source` (any FFmpeg-readable live URL,
file being written or pipe, opened with PyAV: timeouts, reconnects with backoff, a monotonic stream time
across timestamp resets; `playlist`: an HLS playlist that loops, ended or stopped growing), `ring` (the
segmented ring recording on disk and frame-exact cuts from it), `alerts` (standing queries: speech
through VAD + Whisper, on-screen text through OCR, visual queries through a grounder on a call budget),
`online` (online highlights with a bounded look-ahead), `sinks`
(JSON lines, webhooks with a bounded queue), `watcher` (the loop, degradation under lag), `recall` (what
was said / shown so far), `registry` (watches by id, for the HTTP API's `/v1/streams`).

May import: the core modules (types, errors, defaults, io), `utils`, `media`, `highlights` and `edit`;
never `agent`, `grounders`, `conversation`, `cli`, `http` or `ui` (a grounder comes in as an argument).
"""

from grounding_agent.live.events import LiveEvent
from grounding_agent.live.recall import Recall
from grounding_agent.live.watcher import Watcher, WatchOptions, WatchReport

__all__ = ["LiveEvent", "Recall", "WatchOptions", "WatchReport", "Watcher"]
