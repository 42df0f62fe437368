"""The web UI's "library" tab: search a video library (`grounding-agent ui --library DIR`); the hits show as
thumbnails captioned with their video and times, and picking one opens that video in the player, seeked to
the hit. `ui.app` adds the tab with `build`; `results` and `pick` are its handlers' work.

Only videos inside the media root can be opened (the UI serves nothing else): hits elsewhere are listed
in the notes, not shown.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

from grounding_agent.defaults import LIBRARY
from grounding_agent.edit.timeline import clock
from grounding_agent.errors import GroundingAgentError
from grounding_agent.types import Moment

THUMB_WIDTH = 320  # pixels: a gallery cell, not a frame to read text from
# Seek the player once the picked video's metadata is loaded (the element is replaced when it changes).
SEEK_JS = """(start) => {
  const seek = (tries) => {
    const video = document.querySelector('#player video');
    if (video && video.readyState >= 1) { video.currentTime = start; return; }
    if (tries > 0) setTimeout(() => seek(tries - 1), 200);
  };
  seek(25);
  return start;
}"""


def results(
    library: Any, media_root: Path, query: str, k: int = LIBRARY.search_k
) -> tuple[list, list[dict], str]:
    """(gallery items [(thumbnail, caption)], one row a shown hit {video, start_s, end_s, score}, notes)."""
    root = Path(media_root).resolve()
    items, rows, outside = [], [], 0
    for hit in library.search(query, k=k):
        path = Path(hit.path).resolve()
        if not path.is_relative_to(root):
            outside += 1
            continue
        relative = path.relative_to(root).as_posix()
        channels = ", ".join(dict.fromkeys(e.kind for e in hit.evidence))
        caption = f"{relative} {clock(hit.start_s)}–{clock(hit.end_s)} ({channels})"
        items.append((frame_at(path, (hit.start_s + hit.end_s) / 2), caption))
        rows.append({"video": relative, "start_s": hit.start_s, "end_s": hit.end_s, "score": hit.score})
    notes = f"{len(rows)} hit(s)" + (f"; {outside} outside the media root not shown" if outside else "")
    return items, rows, notes


def frame_at(path: Path, time_s: float) -> np.ndarray:
    """The RGB frame shown at `time_s`, scaled to `THUMB_WIDTH` wide (PyAV: seek to the keyframe before,
    decode forward)."""
    import av

    with av.open(str(path)) as container:
        stream = container.streams.video[0]
        container.seek(max(0, int(time_s / stream.time_base)), stream=stream, backward=True)
        chosen = None
        for frame in container.decode(stream):
            if chosen is not None and frame.time is not None and frame.time > time_s:
                break
            chosen = frame
        if chosen is None:
            return np.zeros((THUMB_WIDTH * 9 // 16, THUMB_WIDTH, 3), dtype=np.uint8)
        height = max(2, round(chosen.height * THUMB_WIDTH / chosen.width / 2) * 2)
        return chosen.to_ndarray(format="rgb24", width=THUMB_WIDTH, height=height)


def pick(open_video: Callable[[str], tuple], chips: Callable[[list[Moment]], str], row: dict) -> tuple:
    """The picked hit's video opened (`App.open_video`'s outputs), its moment as the only chip, and the
    time to seek to."""
    opened = list(open_video(row["video"]))
    opened[3] = chips([Moment(row["start_s"], row["end_s"], row["score"])])
    return (*opened, row["start_s"])


def build(gr: Any, app: Any, library: Any, media_root: Path, chips: Callable[..., str], opened: list) -> None:
    """The tab's controls and handlers, inside the caller's Blocks. `app.open_video(relative)` gives the
    `opened` components' values; the player then seeks to the hit."""

    def search(query: str):
        try:
            return results(library, media_root, query)
        except GroundingAgentError as exc:  # a query that reads as nothing: a one-line toast
            raise gr.Error(str(exc)) from None

    def select(rows: list[dict], evt: gr.SelectData):
        try:
            return pick(app.open_video, chips, rows[evt.index])
        except GroundingAgentError as exc:
            raise gr.Error(str(exc)) from None

    # Gradio finds the event argument by its annotation, which must be the class itself: a string one
    # (this module's `from __future__ import annotations`) names `gr`, which is not a global here.
    select.__annotations__ = {"rows": list, "evt": gr.SelectData}

    with gr.Tab("library"):
        query = gr.Textbox(
            label="search every video", placeholder="she mentions the budget", elem_id="library-query"
        )
        button = gr.Button("search", elem_id="library-search")
        gallery = gr.Gallery(label="hits", columns=3, height=300, elem_id="library-hits", allow_preview=False)
        notes = gr.Markdown(elem_id="library-notes")
        rows = gr.State([])
        start = gr.Number(visible=False)
    button.click(search, [query], [gallery, rows, notes], api_name="search_library")
    query.submit(search, [query], [gallery, rows, notes], api_name=False)
    gallery.select(select, [rows], [*opened, start], api_name=False).then(None, [start], [start], js=SEEK_JS)
