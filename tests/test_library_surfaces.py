"""Every surface over a library: HTTP /v1/search and library sessions, the LangChain tools, `chat --library`
and `reel --library` - on a real library of generated clips with on-screen titles (real RapidOCR)."""

from __future__ import annotations

import io
import json
import subprocess
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from grounding_agent.cli import main
from grounding_agent.conversation.session import Session
from grounding_agent.grounders.baselines import UniformGrounder
from grounding_agent.http import create_app
from grounding_agent.library import Library
from grounding_agent.library.chat import LibraryChat
from grounding_agent.library.tools import library_tools

TITLES = {"budget.mp4": "BUDGET REVIEW", "dog.mp4": "DOG PARK"}


@pytest.fixture(scope="session")
def titled_library(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """(media folder, library folder): two 6 s clips, each with its title on screen from 2 s to 4 s, indexed
    for on-screen text only (the cheapest real channel)."""
    root = tmp_path_factory.mktemp("surfaces")
    media = root / "media"
    media.mkdir()
    for name, title in TITLES.items():
        subprocess.run(
            ["ffmpeg", "-nostdin", "-loglevel", "error", "-y", "-f", "lavfi",
             "-i", "color=c=black:size=640x360:rate=10:duration=6", "-vf",
             f"drawtext=text='{title}':fontsize=48:fontcolor=white:x=(w-tw)/2:y=(h-th)/2:enable='between(t,2,4)'",
             "-c:v", "libx264", "-preset", "ultrafast", "-pix_fmt", "yuv420p", str(media / name)],
            check=True,
        )  # fmt: skip
    with Library(root / "lib", create=True) as lib:
        report = lib.index([media], channels=("ocr",))
        assert report.count("indexed") == 2
    return media, root / "lib"


@pytest.fixture()
def client(titled_library: tuple[Path, Path]) -> TestClient:
    media, folder = titled_library
    grounder = UniformGrounder()
    app = create_app(lambda path: Session(path, grounder), media_root=media, grounder_name=grounder.name)
    app.state.library = Library(folder)
    return TestClient(app, base_url="http://127.0.0.1")


def test_http_search_and_a_library_session(client: TestClient) -> None:
    found = client.post("/v1/search", json={"query": "budget review", "k": 3})
    assert found.status_code == 200, found.text
    best = found.json()["hits"][0]
    assert best["video"] == "budget.mp4" and "path" not in best  # relative to the media root, never absolute
    assert best["start_s"] <= 2.5 and best["end_s"] >= 3.5
    assert [e["kind"] for e in best["evidence"]] == ["ocr"] and "BUDGET" in best["evidence"][0]["text"]
    made = client.post("/v1/library/sessions", json={"video_id": best["video_id"]})
    assert made.status_code == 201 and made.json()["video"] == "budget.mp4"
    reply = client.post(
        f"/v1/sessions/{made.json()['id']}/messages", json={"message": "when is the title shown?"}
    )
    assert reply.status_code == 200 and reply.json()["moments"]
    assert client.post("/v1/library/sessions", json={"video_id": 999}).status_code == 404
    assert client.post("/v1/search", json={"query": "x", "k": 0}).status_code == 422


def test_http_without_a_library_says_how_to_start_one(titled_library: tuple[Path, Path]) -> None:
    media, _ = titled_library
    app = create_app(lambda path: Session(path, "uniform"), media_root=media)
    reply = TestClient(app, base_url="http://127.0.0.1").post("/v1/search", json={"query": "dog park"})
    assert reply.status_code == 404 and "--library" in reply.json()["detail"]


def test_langchain_tools_search_then_ask(titled_library: tuple[Path, Path]) -> None:
    search, ask = library_tools(Library(titled_library[1]), session_kwargs={"grounder": "uniform"})
    hits = search.invoke({"query": "dog park", "k": 2})["hits"]
    assert Path(hits[0]["path"]).name == "dog.mp4"
    answer = ask.invoke({"video_id": hits[0]["video_id"], "message": "when is the title shown?"})
    assert answer["video_id"] == hits[0]["video_id"] and answer["moments"]


def test_library_chat_finds_the_video_then_hands_follow_ups_to_it(titled_library: tuple[Path, Path]) -> None:
    chat = LibraryChat(Library(titled_library[1]), session_kwargs={"grounder": "uniform"})
    first = chat.ask("in which video does it say budget review?")
    assert Path(first["video"]).name == "budget.mp4" and 'on screen: "BUDGET REVIEW"' in first["text"]
    follow = chat.ask("what happens after that?")
    assert follow["video_id"] == first["video_id"] and not follow["hits"]


def test_chat_and_reel_commands_over_a_library(titled_library, tmp_path, monkeypatch, capsys) -> None:
    _, folder = titled_library
    lines = [json.dumps({"message": "where is the dog park title?"}), "not json"]
    monkeypatch.setattr("sys.stdin", io.StringIO("\n".join(lines) + "\n"))
    assert main(["chat", "--library", str(folder), "--backend", "uniform", "--jsonl"]) == 0
    replies = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    assert Path(replies[0]["video"]).name == "dog.mp4" and "error" in replies[1]
    assert main(["chat", "--backend", "uniform"]) == 2  # neither a video nor a library
    out = tmp_path / "dogs.otio"
    assert (
        main(["reel", "dog park", "--library", str(folder), "--total-s", "2", "--export", str(out), "--json"])
        == 0
    )
    reel = json.loads(capsys.readouterr().out)
    assert [Path(c["video"]).name for c in reel["clips"]] == ["dog.mp4"] and reel["duration_s"] <= 2.0 + 1e-6
    assert out.is_file()


def test_ui_library_tab_shows_thumbnails_and_opens_the_hit(titled_library, tmp_path) -> None:
    from grounding_agent.ui import app as ui
    from grounding_agent.ui import search_tab

    media, folder = titled_library
    library = Library(folder)
    config = ui.UIConfig(media_root=media, output_root=tmp_path)
    demo = ui.build_app(config, lambda path: Session(path, "uniform"), library)
    assert any(getattr(b, "elem_id", None) == "library-hits" for b in demo.blocks.values())
    items, rows, notes = search_tab.results(library, media, "budget review")
    thumb, caption = items[0]
    assert caption.startswith("budget.mp4 0:02") and thumb.shape[1] == search_tab.THUMB_WIDTH
    assert thumb.mean() > 5  # the title's frame (white text on black), not the black frames around it
    assert notes.startswith(f"{len(rows)} hit")
    opened = search_tab.pick(demo.app_handlers.open_video, ui.chips_html, rows[0])
    assert opened[0].endswith("budget.mp4") and opened[-1] == rows[0]["start_s"]
    assert f'data-start="{rows[0]["start_s"]:.3f}"' in opened[3]
    # A library elsewhere than the media root: its hits are counted, not served.
    _, hidden, notes = search_tab.results(library, tmp_path, "budget review")
    assert not hidden and "outside the media root" in notes
