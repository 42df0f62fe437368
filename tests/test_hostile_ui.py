"""Hostile requests to the web UI's server side: a FIFO or an over-long name behind Gradio's file route, a
foreign Host header, over-long or non-regular picks, and the cleanup of evicted sessions (their outputs
and uploads go; nothing outside the UI's own folders is touched)."""

from __future__ import annotations

import hashlib
import os
import shutil
import time
from pathlib import Path

import pytest

from grounding_agent.errors import ConfigError
from tests.test_hostile_http import Served as HTTPServed

os.environ.setdefault("GRADIO_ANALYTICS_ENABLED", "False")  # before gradio is imported: no phoning home
gr = pytest.importorskip("gradio")

from grounding_agent.ui import app as ui  # noqa: E402 (after the gradio skip)
from grounding_agent.ui.server import asgi_app  # noqa: E402

CLIP = "timer1_charades_OHOFG.mp4"


@pytest.fixture
def media_root(tmp_path: Path, real_clips) -> Path:
    root = tmp_path / "media"
    root.mkdir()
    shutil.copy(real_clips[CLIP], root / CLIP)
    shutil.copy(real_clips[CLIP], root / "second.mp4")
    os.mkfifo(root / "pipe.mp4")  # reading it blocks until a writer comes: never
    return root


def snapshot(root: Path) -> dict[str, str]:
    return {
        str(p.relative_to(root)): hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted(root.rglob("*"))
        if p.is_file()
    }


def uniform_factory():
    from grounding_agent import Session
    from grounding_agent.grounders.baselines import UniformGrounder

    grounder = UniformGrounder()
    return lambda path: Session(path, grounder)


def Served(config: ui.UIConfig, allowed_hosts=("127.0.0.1", "localhost")) -> HTTPServed:  # noqa: N802
    """The UI as `grounding-agent ui` serves it (`ui.server.asgi_app`) on a real uvicorn, in a thread."""
    return HTTPServed(asgi_app(ui.build_app(config, uniform_factory()), config, allowed_hosts))


@pytest.mark.timeout(120)
def test_the_file_route_refuses_fifos_and_names_the_os_refuses(media_root, tmp_path) -> None:
    import httpx

    before = snapshot(media_root)
    config = ui.UIConfig(media_root, tmp_path / "out")
    with Served(config) as served:
        file_route = f"{served.base}/gradio_api/file="
        for name, why in (("pipe.mp4", "not a regular file"), ("a" * 300 + ".mp4", "no such file")):
            start = time.perf_counter()
            r = httpx.get(file_route + str(media_root.resolve() / name), timeout=10)
            assert r.status_code == 404 and why in r.json()["detail"]
            assert len(r.content) < 200 and "aaaa" not in r.text
            assert time.perf_counter() - start < 5
        too_long = httpx.get(file_route + "/" + "b/" * 3000, timeout=10)
        assert too_long.status_code == 404 and "bbb" not in too_long.text
        # A regular file inside the media root is still served, and the app still answers.
        assert httpx.get(file_route + str(media_root.resolve() / CLIP), timeout=10).status_code == 200
        assert httpx.get(served.base + "/", timeout=10).status_code == 200
    assert snapshot(media_root) == before


@pytest.mark.timeout(120)
def test_a_foreign_host_is_400_and_allowed_ones_pass(media_root, tmp_path) -> None:
    import httpx

    config = ui.UIConfig(media_root, tmp_path / "out")
    with Served(config, allowed_hosts=["127.0.0.1", "localhost", "box.lan"]) as served:
        for host, status in (("evil.example", 400), (f"evil.example:{served.port}", 400),
                             (f"localhost:{served.port}", 200), ("box.lan", 200), ("127.0.0.1", 200)):  # fmt: skip
            r = httpx.get(served.base + "/", headers={"host": host}, timeout=10)
            assert r.status_code == status, host
            if status == 400:
                assert len(r.content) < 100


@pytest.mark.parametrize("bad", ["a" * 300 + ".mp4", "pipe.mp4", "x/" * 3000 + "y.mp4", "."])
def test_picks_the_os_refuses_are_one_line_errors(media_root, bad) -> None:
    with pytest.raises(ConfigError) as caught:
        ui.resolve_media(media_root, bad)
    message = str(caught.value)
    assert "\n" not in message and len(message) < 200 and str(media_root) not in message


def open_upload(app: ui.App, uploads: Path, name: str) -> tuple[str, Path]:
    """Put a clip where Gradio would (its own folder under the upload root) and open it as an upload."""
    folder = uploads / hashlib.sha256(name.encode()).hexdigest()[:16]
    folder.mkdir(parents=True)
    upload = folder / name
    shutil.copy(app.config.media_root / CLIP, upload)
    key = app.open_video(None, str(upload))[1]
    return key, upload


def test_an_evicted_session_loses_its_upload_and_outputs_and_nothing_else(media_root, tmp_path) -> None:
    uploads, out = tmp_path / "uploads", tmp_path / "out"
    bystander = uploads / "bystander.txt"  # in the upload root, but no session's upload
    bystander.parent.mkdir(parents=True)
    bystander.write_text("keep me")
    before = snapshot(media_root)
    config = ui.UIConfig(media_root, out, max_sessions=1, upload_root=uploads)
    app = ui.App(config, uniform_factory())
    key, upload = open_upload(app, uploads, "mine.mp4")
    app.ask("when does the person sit down?", [], key)
    assert (out / key).is_dir() and any((out / key).iterdir())
    # A file opened from outside the upload root as an "upload" is never deleted.
    outside = tmp_path / "outside.mp4"
    shutil.copy(media_root / CLIP, outside)
    outside_key = app.open_video(None, str(outside))[1]  # evicts the first session
    assert not upload.exists() and not upload.parent.exists() and not (out / key).exists()
    app.open_video(CLIP)  # evicts the "outside" one: its file stays
    assert outside.is_file() and not (out / outside_key).exists()
    assert bystander.read_text() == "keep me" and snapshot(media_root) == before
    with pytest.raises(ConfigError, match="pick a video"):
        app.ask("again?", [], key)


def test_an_upload_two_sessions_share_goes_with_the_last_of_them(media_root, tmp_path) -> None:
    uploads = tmp_path / "uploads"
    app = ui.App(ui.UIConfig(media_root, tmp_path / "out", max_sessions=2, upload_root=uploads),
                 uniform_factory())  # fmt: skip
    _, upload = open_upload(app, uploads, "shared.mp4")
    app.open_video(None, str(upload))  # Gradio hands the same path to a second browser with the same file
    app.open_video(CLIP)  # evicts the first: the second still uses the file
    assert upload.is_file()
    app.open_video("second.mp4")  # evicts the second
    assert not upload.exists()
