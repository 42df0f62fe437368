"""The web UI: media-root confinement, the session store, the handlers over a real `Session`, and the app
answering through Gradio's own client on 127.0.0.1."""

from __future__ import annotations

import os
import shutil
import socket
from pathlib import Path

import pytest

from grounding_agent.errors import ConfigError
from grounding_agent.types import Moment

os.environ.setdefault("GRADIO_ANALYTICS_ENABLED", "False")  # before gradio is imported: no phoning home
gr = pytest.importorskip("gradio")

from grounding_agent.ui import app as ui  # noqa: E402 (after the gradio skip)

CLIP = "timer1_charades_OHOFG.mp4"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture
def media_root(tmp_path: Path, real_clips) -> Path:
    root = tmp_path / "media"
    (root / "sub").mkdir(parents=True)
    shutil.copy(real_clips[CLIP], root / CLIP)
    shutil.copy(real_clips[CLIP], root / "sub" / "copy.mp4")
    (root / "notes.txt").write_text("not a video")
    outside = tmp_path / "outside.mp4"
    shutil.copy(real_clips[CLIP], outside)
    (root / "escape.mp4").symlink_to(outside)  # a symlink leaving the media root
    return root


def uniform_session_factory():
    from grounding_agent import Session
    from grounding_agent.grounders import GROUNDERS

    grounder = GROUNDERS["uniform"]()
    return lambda path: Session(path, grounder)


def test_list_videos_keeps_to_the_media_root(media_root):
    assert ui.list_videos(media_root) == [
        "sub/copy.mp4",
        CLIP,
    ]  # sorted; the text file and the escaping link are left out


@pytest.mark.parametrize("bad", ["../outside.mp4", "/etc/passwd", "escape.mp4", "missing.mp4", "", "a\x00b"])
def test_resolve_media_refuses_anything_outside_or_missing(media_root, bad):
    with pytest.raises(ConfigError):
        ui.resolve_media(media_root, bad)


def test_resolve_media_finds_nested_files(media_root):
    assert ui.resolve_media(media_root, "sub/copy.mp4") == (media_root / "sub" / "copy.mp4").resolve()


def test_ui_config_validates(tmp_path):
    with pytest.raises(ConfigError, match="not a folder"):
        ui.UIConfig(tmp_path / "nope", tmp_path / "out")
    with pytest.raises(ConfigError):
        ui.UIConfig(tmp_path, tmp_path / "out", max_sessions=0)
    opts = ui.launch_options(ui.UIConfig(tmp_path, tmp_path / "out", max_upload_mb=5))
    assert opts["max_file_size"] == "5mb"
    assert opts["allowed_paths"] == [str(tmp_path.resolve()), str((tmp_path / "out").resolve())]


def test_session_store_drops_the_least_recently_used():
    store = ui.SessionStore(2)
    a, b = store.add("A"), store.add("B")
    assert store.get(a) == "A"  # a is now the most recent
    c = store.add("C")
    assert len(store) == 2 and store.get(a) == "A" and store.get(c) == "C"
    with pytest.raises(ConfigError, match="pick a video"):
        store.get(b)
    with pytest.raises(ConfigError):
        store.get(None)


def test_chips_carry_the_start_time_and_escape_explanations():
    html = ui.chips_html([Moment(1.5, 3.0, 0.9, {"sentence": 'he said "<hi>"'}), Moment(7.25, 9.0, 0.5)])
    assert html.count('class="chip"') == 2
    assert 'data-start="1.500"' in html and 'data-start="7.250"' in html
    assert "&lt;hi&gt;" in html and "<hi>" not in html
    assert "no moment found" in ui.chips_html([])


def test_handlers_over_a_real_session(media_root, tmp_path):
    app = ui.App(ui.UIConfig(media_root, tmp_path / "out"), uniform_session_factory())
    path, key, history, chips, timeline, gallery, status = app.open_video(CLIP)
    assert Path(path) == (media_root / CLIP).resolve() and history == [] and CLIP in status
    history, chips, png, thumbs, cleared = app.ask("when does the person sit down?", history, key)
    session = app.sessions.get(key)
    answer = session.turns[-1].answer
    assert cleared == "" and [m["role"] for m in history] == ["user", "assistant"]
    assert history[1]["content"].startswith(answer.text)
    assert chips.count('class="chip"') == len(answer.moments) >= 1
    assert Path(png).is_file() and Path(png).parent == tmp_path / "out" / key
    assert len(thumbs) == len(answer.moments) and thumbs[0][0].ndim == 3
    # A follow-up goes to the same session: its turn count grows.
    app.ask("what happens after that?", history, key)
    assert len(session.turns) == 2
    with pytest.raises(ConfigError, match="type a question"):
        app.ask("  ", history, key)
    with pytest.raises(ConfigError, match="pick a video"):
        app.ask("hello", [], "no-such-key")


@pytest.mark.slow
def test_app_answers_through_gradio_client(media_root, tmp_path):
    from gradio_client import Client, handle_file

    config = ui.UIConfig(media_root, tmp_path / "out")
    demo = ui.build_app(config, uniform_session_factory())
    port = free_port()
    demo.launch(
        server_name="127.0.0.1",
        server_port=port,
        prevent_thread_lock=True,
        quiet=True,
        **ui.launch_options(config),
    )
    try:
        client = Client(f"http://127.0.0.1:{port}/", verbose=False)
        # The session key is Gradio state: the client's own session carries it between calls.
        player, history, chips, timeline, thumbs, status = client.predict(CLIP, None, api_name="/open_video")
        assert CLIP in status and history == []
        history, chips, png, thumbs, cleared = client.predict(
            "when does the person sit down?", [], api_name="/ask"
        )
        assert [m["role"] for m in history] == ["user", "assistant"] and 'data-start="' in chips
        assert Path(png).is_file()
        again = client.predict("what happens next?", history, api_name="/ask")
        assert len(again[0]) == 4
        segments, files, rendered, notes = client.predict("trim the first 3 seconds", False, api_name="/edit")
        assert [row[0] for row in segments["data"]] == ["cut", "keep"] and rendered is None
        assert {Path(f).suffix for f in files} >= {".otio", ".srt"} and "keeps" in notes
        # Refused input comes back as a Gradio error, not a crash of the app.
        with pytest.raises(Exception, match="not in the list of choices"):
            client.predict("../outside.mp4", None, api_name="/open_video")
        with pytest.raises(Exception, match="Invalid file type"):
            client.predict(None, handle_file(str(media_root / "notes.txt")), api_name="/open_video")
        fake = tmp_path / "fake.mp4"
        fake.write_bytes(b"this is not a video" * 100)
        with pytest.raises(Exception, match="fake.mp4"):  # our VideoError's one line, shown as a Gradio error
            client.predict(None, handle_file(str(fake)), api_name="/open_video")
        # The app still answers after the errors.
        assert client.predict(CLIP, None, api_name="/open_video")[-1].startswith(f"**{CLIP}**")
    finally:
        demo.close()


@pytest.mark.slow
def test_cli_serves_the_page_on_loopback(media_root, tmp_path):
    import subprocess
    import sys
    import time

    import httpx

    port = free_port()
    cmd = [str(Path(sys.executable).with_name("grounding-agent")), "ui", "--media-root", str(media_root),
           "--output-dir", str(tmp_path / "out"), "--port", str(port), "--backend", "uniform"]  # fmt: skip
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    try:
        deadline = time.monotonic() + 90
        while time.monotonic() < deadline:
            try:
                page = httpx.get(f"http://127.0.0.1:{port}/", timeout=2)
                break
            except httpx.HTTPError:
                assert proc.poll() is None, proc.stdout.read()
                time.sleep(0.5)
        else:
            pytest.fail("the UI did not answer within 90 s")
        assert page.status_code == 200 and "grounding-agent" in page.text
        # Files outside the media root and the output folder are not served.
        leak = httpx.get(f"http://127.0.0.1:{port}/gradio_api/file=/etc/passwd", timeout=5)
        assert leak.status_code in (403, 404) and "root:" not in leak.text
    finally:
        proc.terminate()
        proc.wait(timeout=30)


@pytest.mark.parametrize("extra", [["--port", "70000"], ["--media-root", "/no/such/folder"]])
def test_cli_refuses_bad_options_in_one_line(extra, capsys):
    from grounding_agent.cli import main

    assert main(["ui", "--backend", "uniform", *extra]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("error:") and len(err.splitlines()) == 1


def test_timeline_rows_show_each_sub_event_of_a_compositional_answer(media_root, tmp_path):
    from grounding_agent import Session
    from grounding_agent.agent import Agent
    from grounding_agent.grounders import GROUNDERS

    grounder = GROUNDERS["uniform"]()
    session = Session(media_root / CLIP, grounder, agent=Agent(grounder))
    answer = session.ask("when does the person sit down, then eat some food?")
    assert answer.plan is not None and len(answer.plan.steps) == 2
    rows = ui._step_rows(answer.plan, answer.evidence)
    assert [name.split(":")[0] for name, _ in rows] == ["s1", "s2"]
    assert all(spans for _, spans in rows)  # every sub-event has its candidates on the timeline
    png = ui.timeline_png(session, answer, tmp_path / "t.png")
    assert png.stat().st_size > 5_000


def test_edit_tab_plans_exports_and_renders(media_root, tmp_path):
    from grounding_agent.media.video import open_video

    app = ui.App(ui.UIConfig(media_root, tmp_path / "out"), uniform_session_factory())
    key = app.open_video(CLIP)[1]
    rows, files, rendered, notes = app.edit("cut 0:05 to 0:15", key, True)
    assert [r[0] for r in rows] == ["keep", "cut", "keep"]
    assert rows[1][1] == pytest.approx(5.0, abs=0.11) and rows[1][2] == pytest.approx(
        15.0, abs=0.11
    )  # one frame at 9.5 fps
    suffixes = {Path(f).suffix for f in files}
    assert {".otio", ".fcpxml", ".srt"} <= suffixes and all(
        Path(f).parent == tmp_path / "out" / key for f in files
    )
    # This clip runs at 9.53 fps: no EDL can hold it, and the page says why instead of failing the edit.
    assert ".edl" not in suffixes and "no .edl" in notes and "SMPTE" in notes
    kept_s = sum(r[2] - r[1] for r in rows if r[0] == "keep")
    assert open_video(rendered).duration_s == pytest.approx(kept_s, abs=0.11)
    with pytest.raises(ConfigError, match="editing instruction"):
        app.edit(" ", key)
