"""Misleading lines: each careless input gets one line that says what is wrong (not a library's ValueError,
a wrong diagnosis, or 31 lines of usage), exit 2, with nothing written and no input changed."""

from __future__ import annotations

import hashlib
import subprocess
from pathlib import Path

import pytest

from grounding_agent.errors import ConfigError, NoVideoStreamError
from tests.test_hostile_options import CLIP, assert_one_line_error, run_cli

UNREACHABLE = "http://127.0.0.1:9/v1"  # nothing listens: any attempt to use the server would say so


def digest(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


@pytest.fixture
def work(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.chdir(tmp_path)
    return tmp_path


@pytest.fixture(scope="module")
def song(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """An mp3 with cover art: its picture is an attached_pic "video" stream."""
    folder = tmp_path_factory.mktemp("song")
    cover, song = folder / "cover.png", folder / "song.mp3"
    ff = ["ffmpeg", "-loglevel", "error", "-y"]
    subprocess.run([*ff, "-f", "lavfi", "-i", "color=red:s=64x64:d=1", "-frames:v", "1", cover], check=True)
    subprocess.run(
        [*ff, "-f", "lavfi", "-i", "sine=d=2", "-i", cover, "-map", "0", "-map", "1", "-c:a", "libmp3lame",
         "-c:v", "png", "-disposition:v", "attached_pic", song],
        check=True,
    )  # fmt: skip
    return song


def test_asr_language_unknown_names_the_codes(capsys, work) -> None:
    pytest.importorskip("faster_whisper")
    before = digest(CLIP)
    rc, out, err = run_cli(
        capsys,
        "ground",
        CLIP,
        "door",
        "--backend",
        "uniform",
        "--asr-model",
        work,
        "--asr-language",
        "klingon",
    )
    line = assert_one_line_error(rc, err, "--asr-language", "'klingon'", " en ", " de ")
    assert "ValueError" not in line and out == "" and list(work.iterdir()) == [] and digest(CLIP) == before


def test_asr_language_python_is_config_error() -> None:
    pytest.importorskip("faster_whisper")
    from grounding_agent.media.asr import Transcriber, check_language

    with pytest.raises(ConfigError, match="klingon"):
        Transcriber("no-such-model", language="klingon")
    assert check_language("en") == "en" and check_language(None) is None


@pytest.mark.parametrize(
    "argv",
    [
        ["ground", CLIP, "door", "--backend", "uniform", "--timeline", "t.txt"],
        ["highlights", CLIP, "--plot", "t.txt"],
    ],
    ids=["ground --timeline", "highlights --plot"],
)
def test_plot_suffix_matplotlib_cannot_write(capsys, work, argv) -> None:
    pytest.importorskip("matplotlib")
    before = digest(CLIP)
    rc, out, err = run_cli(capsys, *argv)
    line = assert_one_line_error(rc, err, ".txt", "png")
    assert "ValueError" not in line and out == "" and list(work.iterdir()) == [] and digest(CLIP) == before


def test_audio_with_cover_art_is_not_called_a_video(capsys, work, song) -> None:
    before = digest(song)
    rc, out, err = run_cli(capsys, "probe", song)
    line = assert_one_line_error(rc, err, "audio file with cover art")
    assert "found: audio, video" not in line and digest(song) == before and list(work.iterdir()) == []
    from grounding_agent.media.video import open_video

    with pytest.raises(NoVideoStreamError, match="cover art, not a video"):
        open_video(song)


@pytest.mark.parametrize("quote", ['""', "''", "“”"])
def test_empty_quoted_words_never_reach_the_visual_grounder(capsys, work, quote) -> None:
    before = digest(CLIP)
    rc, out, err = run_cli(
        capsys, "edit", CLIP, f"remove every time he says {quote}", "--server", UNREACHABLE
    )
    line = assert_one_line_error(rc, err, "quote holds no words")
    assert "vLLM" not in line and "reach" not in line
    assert out == "" and list(work.iterdir()) == [] and digest(CLIP) == before


@pytest.mark.parametrize("option", ["--limit", "--concurrency"])
def test_eval_run_bad_count_is_one_line(capsys, work, option) -> None:
    rc, out, err = run_cli(
        capsys, "eval", "run", "--dataset", "charades-sta", "--gt", "gt.jsonl", option, "0"
    )
    assert_one_line_error(rc, err, option, ">= 1")
    assert "usage:" not in err and out == "" and list(work.iterdir()) == []
