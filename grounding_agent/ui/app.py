"""Web UI: a Gradio app over `Session` (pick a video, chat with follow-ups, see and click the moments, edit).

    app = build_app(UIConfig(media_root=Path("videos"), output_root=Path("/tmp/ga-ui")), make_session)
    app.launch(server_name="127.0.0.1", server_port=7860, **launch_options(config))

Everything the answers need comes from the `Session` (the agent is never re-implemented here). Files are
served only from the media root and the app's output folder (one sub-folder per browser session), and a
video is opened only from inside the media root (or from an upload, which Gradio caps at
`max_upload_mb`). Named endpoints (`/open_video`, `/ask`, `/edit`) make the app drivable by `gradio_client`.
"""

from __future__ import annotations

import contextlib
import html
import os
import re
import shutil
import threading
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from grounding_agent.defaults import EDIT_LIMITS, UI
from grounding_agent.errors import ConfigError, GroundingAgentError
from grounding_agent.types import Evidence, Moment
from grounding_agent.ui import live_tab, search_tab, summary_tab
from grounding_agent.utils.cache import BoundedCache

if TYPE_CHECKING:
    from grounding_agent.conversation.session import Session

VIDEO_SUFFIXES = (".mp4", ".mkv", ".webm", ".mov", ".m4v", ".avi")
PLAYER_ID = "player"
EDIT_EXPORTS = (".edl", ".otio", ".fcpxml", ".xml", ".srt")
# Inline Markdown (a note is the text of a "- " item); & < > are left to html.escape. An underscore inside a
# word never starts emphasis, so "a_b.mp4" stays as it is.
_MARKDOWN_SPECIAL = re.compile(r"[\\`*\[\]#!|~]|(?<!\w)_|_(?!\w)")
_UNSAFE_FILE_CHARS = re.compile(r"[^\w.-]+")

# Clicking a chip seeks the player: one delegated listener on the chip strip survives every re-render.
CHIPS_JS = """
element.addEventListener('click', (event) => {
  const chip = event.target.closest('[data-start]');
  if (!chip) return;
  const video = document.querySelector('#PLAYER video');
  if (!video) return;
  video.currentTime = parseFloat(chip.dataset.start);
  document.querySelectorAll('[data-start].active').forEach((c) => c.classList.remove('active'));
  chip.classList.add('active');
});
""".replace("PLAYER", PLAYER_ID)
CHIPS_CSS = """
.chip { display: inline-block; margin: 2px 4px; padding: 4px 10px; border-radius: 14px; cursor: pointer;
        border: 1px solid #888; background: #eef6ee; color: #1b1b1b !important; font-family: monospace; }
.chip.active { background: #2e7d32; color: #ffffff !important; }
"""


@dataclass(frozen=True)
class UIConfig:
    """Where the app reads videos, where it writes, and how much it holds.

    Attributes:
        media_root: the only folder videos are opened (and served) from.
        output_root: per-session outputs (timelines, exports, renders) go to a sub-folder of it.
        max_upload_mb: Gradio refuses larger uploads.
        max_sessions: sessions kept in memory (least recently used is dropped first); a dropped session's
            output folder and its upload (when no other session uses it) are deleted.
        upload_root: where Gradio keeps uploads (None: Gradio's upload folder); only files inside it are
            ever deleted as uploads.
        max_path_chars: longest path the file route looks at (`ui.server`).
    """

    media_root: Path
    output_root: Path
    max_upload_mb: int = UI.max_upload_mb
    max_sessions: int = UI.max_sessions
    upload_root: Path | None = None
    max_path_chars: int = UI.max_path_chars

    def __post_init__(self) -> None:
        if not Path(self.media_root).is_dir():
            raise ConfigError(f"--media-root {self.media_root} is not a folder")
        if self.max_upload_mb < 1 or self.max_sessions < 1:
            raise ConfigError("max_upload_mb and max_sessions must be >= 1")


def launch_options(config: UIConfig) -> dict[str, Any]:
    """Gradio `launch` keywords that keep file serving inside the media root and the output folder."""
    return {
        "allowed_paths": [str(Path(config.media_root).resolve()), str(Path(config.output_root).resolve())],
        "max_file_size": f"{config.max_upload_mb}mb",
    }


def upload_root(config: UIConfig) -> Path:
    """The folder uploads land in: `config.upload_root`, else Gradio's ($GRADIO_TEMP_DIR or <tmp>/gradio)."""
    if config.upload_root is not None:
        return Path(config.upload_root).resolve()
    from gradio.utils import get_upload_folder

    return Path(get_upload_folder()).resolve()


def list_videos(media_root: Path) -> list[str]:
    """Video files under the media root, as sorted paths relative to it (symlinks leaving it are skipped)."""
    root = Path(media_root).resolve()
    found = []
    for path in root.rglob("*"):
        if path.suffix.lower() in VIDEO_SUFFIXES and path.is_file() and path.resolve().is_relative_to(root):
            found.append(path.relative_to(root).as_posix())
    return sorted(found)


def resolve_media(media_root: Path, relative: str) -> Path:
    """The file `relative` names inside the media root; anything resolving outside it is refused."""
    root = Path(media_root).resolve()
    shown = repr(relative if len(relative or "") <= 80 else relative[:80] + "…")
    if not relative or "\x00" in relative or Path(relative).is_absolute():
        raise ConfigError(f"pick a video inside the media root, got {shown}")
    try:
        path = (root / relative).resolve()
        outside = not path.is_relative_to(root)
        regular = not outside and path.is_file()
    except (OSError, ValueError):  # a name longer than the file system allows, a link loop
        raise ConfigError(f"{shown}: not a usable path in the media root") from None
    if outside:
        raise ConfigError(f"{shown} is outside the media root")
    if not regular:  # missing, or a folder / FIFO (which would block the decoder)
        raise ConfigError(f"{shown}: no such video in the media root")
    return path


class SessionStore:
    """Open sessions by key in a `BoundedCache`: the least recently used is dropped first (memory stays
    bounded), and `on_evict(key, session)` hears each one dropped."""

    def __init__(self, max_sessions: int, on_evict: Callable[[str, Any], None] | None = None):
        self.max_sessions = max_sessions
        self._items: BoundedCache[str, Any] = BoundedCache(max_sessions, on_evict=on_evict)

    def add(self, session: Any) -> str:
        key = uuid.uuid4().hex
        self._items.set(key, session)
        return key

    def get(self, key: str | None) -> Any:
        session = self._items.get(key) if key else None
        if session is None:
            raise ConfigError("no video is open (or its session expired): pick a video first")
        return session

    def __len__(self) -> int:
        return len(self._items)


def chips_html(moments: list[Moment]) -> str:
    """One clickable chip per moment (data-start seeks the player)."""
    if not moments:
        return "<p>no moment found</p>"
    chips = [
        f'<button class="chip" data-start="{m.start_s:.3f}" title="{html.escape(_explanation_text(m))}">'
        f"#{i} {m.start_s:.2f}–{m.end_s:.2f} s</button>"
        for i, m in enumerate(moments, 1)
    ]
    return '<div class="chips">' + "".join(chips) + "</div>"


def _explanation_text(moment: Moment) -> str:
    exp = moment.explanation
    if isinstance(exp, dict):
        return str(exp.get("sentence") or exp.get("text") or "")
    return str(exp or "")


def thumbnails(frames: Any, moments: list[Moment]) -> list[tuple[np.ndarray, str]]:
    """The already-decoded frame nearest each moment's middle, captioned with its times and explanation."""
    if frames is None or len(frames) == 0:
        return []
    out = []
    for i, m in enumerate(moments, 1):
        at = int(np.argmin(np.abs(frames.timestamps_s - (m.start_s + m.end_s) / 2)))
        caption = f"#{i} {m.start_s:.2f}–{m.end_s:.2f} s"
        if text := _explanation_text(m):
            caption += f": {text}"
        out.append((frames.pixels[at], caption))
    return out


def _step_rows(plan: Any, evidence: list[Evidence]) -> list[tuple[str, list[Moment]]]:
    """Timeline rows of the plan's sub-events: each step's grounder evidence as its candidates."""
    if plan is None or len(plan.steps) < 2:
        return []
    rows = []
    for step in plan.steps:
        spans = [
            Moment(e.start_s, e.end_s, e.score if e.score is not None else 0.0)
            for e in evidence
            if e.source == step.id and e.kind in ("grounder", "speech")
        ]
        rows.append((f"{step.id}: {step.text[:24]}", spans))
    return rows


def _speech_bars(session: Session) -> list:
    from grounding_agent.highlights.plots import Bar

    segments = session.transcript.segments if session.transcript is not None else []
    return [Bar(s.start_s, s.end_s, s.text[:30], "tab:orange") for s in segments]


def timeline_png(session: Any, answer: Any, path: Path) -> Path:
    """The answer's timeline: saliency curve (if any), moments, sub-events, speech segments."""
    from grounding_agent.highlights.plots import save_timeline

    return save_timeline(
        path,
        session.video.duration_s,
        answer.moments,
        steps=_step_rows(answer.plan, answer.evidence),
        curve=session.saliency_curve(),
        speech=_speech_bars(session),
    )


class App:
    """The handlers behind the page; plain methods so tests (and `gradio_client`) can call them."""

    def __init__(self, config: UIConfig, make_session: Callable[[Path], Any]):
        self.config = config
        self.make_session = make_session
        self.sessions = SessionStore(config.max_sessions, on_evict=self._forget)
        self.uploads: dict[str, Path] = {}  # session key -> the upload it was opened from
        self._uploads_lock = threading.Lock()
        Path(config.output_root).mkdir(parents=True, exist_ok=True)

    def out_dir(self, key: str) -> Path:
        folder = Path(self.config.output_root) / key
        folder.mkdir(parents=True, exist_ok=True)
        return folder

    def open_video(self, relative: str | None, upload: str | None = None, progress: Any = None):
        """Open a video (from the media root, or an upload); decode its frames once; fresh chat."""
        path = Path(upload) if upload else resolve_media(self.config.media_root, relative or "")
        step = progress or (lambda *a, **k: None)
        step(0.05, desc="opening the video")
        session = self.make_session(path)
        step(0.3, desc="decoding frames")
        _ = session.frames
        step(0.7, desc="scoring saliency")
        session.saliency_curve()
        key = self.sessions.add(session)
        if upload:
            with self._uploads_lock:
                self.uploads[key] = Path(upload).resolve()
        v = session.video
        status = f"**{markdown_text(path.name)}**: {v.duration_s:.2f} s, {v.width}×{v.height}, {len(session.frames)} frames sampled"
        return str(path), key, [], chips_html([]), None, [], status

    def _forget(self, key: str, session: Any) -> None:
        """A dropped session: delete its output folder and its upload (unless another session uses it).
        Nothing outside the output folder and the upload folder is ever deleted."""
        folder = (Path(self.config.output_root) / key).resolve()
        if folder.parent == Path(self.config.output_root).resolve() and folder.is_dir():
            shutil.rmtree(folder, ignore_errors=True)
        with self._uploads_lock:
            upload = self.uploads.pop(key, None)
            shared = upload in self.uploads.values()
        if upload is None or shared or not upload.is_file():
            return
        root = upload_root(self.config)
        if not upload.is_relative_to(root):
            return
        upload.unlink(missing_ok=True)
        if upload.parent != root:  # Gradio keeps each upload in a folder of its own
            with contextlib.suppress(OSError):
                upload.parent.rmdir()  # only when empty

    def ask(self, message: str, history: list | None, key: str | None, progress: Any = None):
        """One chat turn: the Session's answer, its moments as chips, a timeline and thumbnails."""
        session = self.sessions.get(key)
        if not (message or "").strip():
            raise ConfigError("type a question first")
        step = progress or (lambda *a, **k: None)
        step(0.1, desc="planning and grounding")
        answer = session.ask(message)
        step(0.8, desc="drawing the timeline")
        turn = len(session.turns)
        png = timeline_png(session, answer, self.out_dir(key) / f"timeline-{turn}.png")
        reply = answer.text + "".join(
            f"\n- {m.start_s:.2f}–{m.end_s:.2f} s (score {m.score:.2f})" for m in answer.moments
        )
        history = list(history or []) + [
            {"role": "user", "content": message},
            {"role": "assistant", "content": reply},
        ]
        # "Not said" / "not shown" is an answer without a moment: no chip, the sentence in its place.
        chips = f"<p>not {answer.absent}</p>" if answer.absent else chips_html(answer.moments)
        return history, chips, str(png), thumbnails(session.frames, answer.moments), ""

    def edit(self, instruction: str, key: str | None, render: bool = False, progress: Any = None):
        """Instruction -> edit plan preview (rows), export files, the rendered cut (optional), and notes.

        Each format that cannot hold this edit (an EDL needs a SMPTE frame rate, say) is left out and
        the reason shown, instead of failing the whole edit."""
        session = self.sessions.get(key)
        if not (instruction or "").strip():
            raise ConfigError("type an editing instruction first")
        from grounding_agent import edit as editing

        step = progress or (lambda *a, **k: None)
        step(0.1, desc="planning the edit")
        plan = session.edit(instruction)
        folder = self.out_dir(key)
        stem = _file_stem(Path(session.video.path).stem) + "-edit"
        files, notes = [], list(plan.notes)
        for ext in EDIT_EXPORTS:
            try:
                files.append(str(editing.export(plan, folder / f"{stem}{ext}")))
            except GroundingAgentError as exc:
                notes.append(f"no {ext}: {exc}")
        rendered = None
        if render:
            step(0.5, desc="rendering")
            rendered = str(editing.render(plan, folder / f"{stem}.mp4"))
        rows = [[s.action, round(s.start_s, 3), round(s.end_s, 3), s.reason] for s in plan.segments]
        summary = (
            f"keeps {plan.kept_s:.2f} s of {session.video.duration_s:.2f} s in {len(plan.kept)} segment(s)"
        )
        # Notes quote file names and instructions: shown as text, never read as Markdown or HTML.
        return rows, files, rendered, "\n".join(f"- {markdown_text(n)}" for n in [summary, *notes])

    def summarize(
        self, seconds: Any, percent: Any, key: str | None, render: bool = False, progress: Any = None
    ):
        """The summary tab (`summary_tab.outputs`): plan rows, exports, the render (optional), notes."""
        session = self.sessions.get(key)
        stem = _file_stem(Path(session.video.path).stem) + "-summary"
        rows, files, rendered, notes = summary_tab.outputs(
            session, self.out_dir(key), stem, seconds, percent, render, progress
        )
        return rows, files, rendered, "\n".join(f"- {markdown_text(n)}" for n in notes)


def markdown_text(text: str) -> str:
    """`text` shown literally in a Markdown line: one line, Markdown punctuation and HTML escaped."""
    from grounding_agent.edit.exports import one_line

    return html.escape(_MARKDOWN_SPECIAL.sub(r"\\\g<0>", one_line(text)), quote=False)


def _file_stem(stem: str) -> str:
    """A file-name stem made from a video's: one line of word characters, short enough to add a suffix to."""
    return _UNSAFE_FILE_CHARS.sub("_", stem)[: EDIT_LIMITS.max_stem_chars] or "video"


def build_app(
    config: UIConfig, make_session: Callable[[Path], Any], library: Any = None, whisper: Any = None
):
    """The Gradio Blocks app (call `.launch(**launch_options(config), ...)` on it); with a `library`
    (`grounding_agent.library.Library`), a "library" tab searches it (`search_tab`); `whisper` (a loaded
    faster-whisper model) lets the live tab's speech alerts run."""
    # Gradio phones home (analytics, version check) unless told not to; a local tool should not.
    os.environ.setdefault("GRADIO_ANALYTICS_ENABLED", "False")
    import gradio as gr

    app = App(config, make_session)

    def guarded(fn, *args, progress):
        # A user error becomes a Gradio toast with one line, not a traceback in the page.
        try:
            return fn(*args, progress=progress)
        except GroundingAgentError as exc:
            raise gr.Error(str(exc)) from None

    def open_video(relative, upload, progress=gr.Progress()):
        return guarded(app.open_video, relative, upload, progress=progress)

    def ask(message, history, key, progress=gr.Progress()):
        return guarded(app.ask, message, history, key, progress=progress)

    def edit(instruction, key, render, progress=gr.Progress()):
        return guarded(app.edit, instruction, key, render, progress=progress)

    def summarize(seconds, percent, key, render, progress=gr.Progress()):
        return guarded(app.summarize, seconds, percent, key, render, progress=progress)

    with gr.Blocks(title="grounding-agent") as demo:
        key = gr.State(None)
        gr.Markdown(
            "# grounding-agent\nFind **when** things happen in a video: ask, follow up, click a moment."
        )
        with gr.Row():
            with gr.Column(scale=3):
                with gr.Row():
                    choice = gr.Dropdown(
                        list_videos(config.media_root), label="video (media root)", elem_id="video-choice"
                    )
                    upload = gr.File(
                        label="or upload", file_types=list(VIDEO_SUFFIXES), type="filepath", height=110
                    )
                open_btn = gr.Button("open", elem_id="open")
                status = gr.Markdown(elem_id="status")
                player = gr.Video(label="player", elem_id=PLAYER_ID, interactive=False, height=320)
                chips = gr.HTML(chips_html([]), js_on_load=CHIPS_JS, css_template=CHIPS_CSS, elem_id="chips")
                timeline = gr.Image(label="timeline", type="filepath", elem_id="timeline", interactive=False)
            with gr.Column(scale=2):
                with gr.Tab("chat"):
                    chat = gr.Chatbot(label="chat", elem_id="chat", height=360)
                    message = gr.Textbox(
                        label="ask", placeholder="when does the person sit down?", elem_id="message"
                    )
                    send = gr.Button("send", variant="primary", elem_id="send")
                    gallery = gr.Gallery(label="moments", columns=3, height=220, elem_id="thumbs")
                with gr.Tab("edit"):
                    instruction = gr.Textbox(
                        label="instruction", placeholder="cut 0:05 to 0:15", elem_id="instruction"
                    )
                    render = gr.Checkbox(label="render the cut", value=False)
                    edit_btn = gr.Button("plan the edit", elem_id="edit")
                    segments = gr.Dataframe(
                        headers=["action", "start_s", "end_s", "reason"], label="edit plan"
                    )
                    files = gr.File(label="exports (EDL / OTIO / FCPXML / SRT)", file_count="multiple")
                    edit_notes = gr.Markdown(elem_id="edit-notes")
                    rendered = gr.Video(label="rendered cut", interactive=False)
                summary_tab.build(gr, summarize, key)
                if library is not None:  # its hits open in the player (App.open_video), seeked to the hit
                    opened = [player, key, chat, chips, timeline, gallery, status]
                    search_tab.build(gr, app, library, config.media_root, chips_html, opened)
                live_tab.build(
                    gr, live_tab.LiveTab(config.output_root, whisper=whisper), CHIPS_CSS
                )  # stream URLs
        open_btn.click(
            open_video,
            [choice, upload],
            [player, key, chat, chips, timeline, gallery, status],
            api_name="open_video",
        )
        ask_outputs = [chat, chips, timeline, gallery, message]
        send.click(ask, [message, chat, key], ask_outputs, api_name="ask")
        message.submit(ask, [message, chat, key], ask_outputs, api_name=False)
        edit_btn.click(
            edit, [instruction, key, render], [segments, files, rendered, edit_notes], api_name="edit"
        )
    demo.app_handlers = app  # tests reach the handlers' state (sessions) through the app
    return demo
