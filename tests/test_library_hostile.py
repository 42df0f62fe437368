"""The library under bad input and bad luck: hostile files in the folder, a symlink loop, a newer schema, another
tool's SQLite file, a damaged store (`index --repair`), a second writer, empty queries; a kill -9 mid-index
then `index` again gives the same library, and two `search` processes while `index` writes see no error."""

from __future__ import annotations

import os
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import pytest

from grounding_agent.cli import main
from grounding_agent.errors import LibraryError, LibraryStoreError
from grounding_agent.library import Library, Store
from grounding_agent.library.lock import writer_lock
from grounding_agent.library.store import DB_NAME, MIGRATIONS, SCHEMA_VERSION, _executescript, connect
from tests.librarygen import library_clips
from tests.videogen import make_audio_only, write_garbage

REPO = Path(__file__).resolve().parents[1]
CLI = [sys.executable, "-c", "import sys; from grounding_agent.cli import main; sys.exit(main())"]


@pytest.fixture(scope="module")
def clip() -> Path:
    return library_clips(8)[0].path


def _one_error_line(capsys) -> str:
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("error: "), err
    return err[0]


def test_hostile_folder_is_indexed_around_its_bad_files(clip, tmp_path):
    src = tmp_path / "src"
    (src / "sub").mkdir(parents=True)
    (src / "-dash\nnew line é.mp4").write_bytes(clip.read_bytes())
    write_garbage(src / "garbage.mp4")
    (src / "empty.mp4").write_bytes(b"")
    make_audio_only(src / "audio.mp4")
    (src / "notes.txt").write_text("hi")
    (src / "sub" / "loop").symlink_to(src, target_is_directory=True)
    (src / "dangling.mp4").symlink_to(tmp_path / "nowhere.mp4")
    unreadable = src / "locked.mp4"
    unreadable.write_bytes(clip.read_bytes()[:1000])
    unreadable.chmod(0)
    report = Library(tmp_path / "lib", create=True).index([src], channels=["ocr"])
    rows = {Path(r.path).name: r for r in report.rows}
    assert rows["-dash\nnew line é.mp4"].status == "indexed"
    for name, why in [("garbage.mp4", ""), ("empty.mp4", "empty"), ("audio.mp4", "video stream"),
                      ("notes.txt", "not a video"), ("loop", "loop"), ("dangling.mp4", "broken")]:  # fmt: skip
        assert rows[name].status == "skipped" and why in rows[name].reason, rows[name]
        assert "\n" not in rows[name].reason
    assert rows["locked.mp4"].status == "skipped"
    assert report.count("indexed") == 1


def test_store_from_a_newer_schema_or_another_tool_is_refused(tmp_path, capsys):
    Library(tmp_path / "new", create=True).close()
    conn = sqlite3.connect(tmp_path / "new" / DB_NAME)
    conn.execute("UPDATE meta SET value = '99' WHERE key = 'schema_version'")
    conn.commit()
    conn.close()
    assert main(["search", "hello", "--library", str(tmp_path / "new")]) == 2
    assert "newer than this grounding-agent" in _one_error_line(capsys)
    (tmp_path / "other").mkdir()
    sqlite3.connect(tmp_path / "other" / DB_NAME).execute("CREATE TABLE t(x)").connection.commit()
    assert main(["search", "hello", "--library", str(tmp_path / "other")]) == 2
    assert "another tool" in _one_error_line(capsys)
    (tmp_path / "files").mkdir()
    (tmp_path / "files" / "a.txt").write_text("mine")
    assert (
        main(["index", str(tmp_path), "--library", str(tmp_path / "files"), "--no-visual", "--no-speech"])
        == 2
    )
    assert "not a grounding-agent library" in _one_error_line(capsys)
    assert (tmp_path / "files" / "a.txt").read_text() == "mine"


def test_an_old_schema_is_migrated(tmp_path):
    folder = tmp_path / "old"
    folder.mkdir()
    conn = connect(folder / DB_NAME)
    _executescript(conn, MIGRATIONS[0])
    conn.execute("INSERT INTO meta VALUES ('tool', 'grounding-agent-library'), ('schema_version', '1')")
    conn.close()
    migrated = Store.open(folder)
    assert migrated.meta("schema_version") == str(SCHEMA_VERSION) == "4"
    assert migrated.shots(1) == []  # the table version 2 added


def test_damaged_store_says_repair_and_repair_recovers(clip, tmp_path, capsys):
    lib_dir = tmp_path / "lib"
    src = tmp_path / "src"
    src.mkdir()
    (src / "a.mp4").write_bytes(clip.read_bytes())
    assert main(["index", str(src), "--library", str(lib_dir), "--no-visual", "--no-speech", "--quiet"]) == 0
    capsys.readouterr()
    (lib_dir / DB_NAME).write_bytes(b"this is not a database" * 400)
    assert main(["search", "Quarterly", "--library", str(lib_dir)]) == 2
    assert "--repair" in _one_error_line(capsys)
    assert main(["index", "--repair", str(src), "--library", str(lib_dir), "--no-visual", "--no-speech"]) == 0
    out = capsys.readouterr().out
    assert "moved to" in out and "1 indexed" in out
    assert list(lib_dir.glob(f"{DB_NAME}.damaged-*"))  # the damaged file is kept, never deleted
    assert Library(lib_dir).search("the slide titled Quarterly Results", k=1)[0].path.name == "a.mp4"


def test_second_writer_and_empty_queries_are_one_line_errors(tmp_path, capsys):
    lib = Library(tmp_path / "lib", create=True)
    with writer_lock(lib.folder), pytest.raises(LibraryStoreError, match="another process"):
        lib.index([tmp_path], channels=["ocr"])
    for query in ["   ", "?!", "..."]:
        assert main(["search", query, "--library", str(lib.folder)]) == 2
        _one_error_line(capsys)
    with pytest.raises(LibraryError, match="unknown channel"):
        lib.search("hello", channels=["smell"])
    with pytest.raises(LibraryError, match="needs a model"):
        lib.index([tmp_path], channels=["speech"])


def _rows(folder: Path) -> list[tuple]:
    conn = sqlite3.connect(folder / DB_NAME)
    videos = conn.execute("SELECT path, fingerprint, channels FROM videos ORDER BY path").fetchall()
    texts = conn.execute("SELECT v.path, kind, start_s, end_s, text FROM texts t JOIN videos v ON v.id = t.video_id "
                         "ORDER BY 1, 2, 3").fetchall()  # fmt: skip
    conn.close()
    return videos + texts


@pytest.mark.slow
def test_kill_9_mid_index_then_index_again_is_the_same_library(whisper_base, tmp_path):
    """Cold model caches (a fresh GROUNDING_AGENT_CACHE) make each clip take seconds, so the kill lands mid-run;
    two `search` processes run against the library the whole time."""
    src = tmp_path / "src"
    src.mkdir()
    for c in library_clips(8)[:4]:
        (src / c.path.name).write_bytes(c.path.read_bytes())
    env = {**os.environ, "GROUNDING_AGENT_CACHE": str(tmp_path / "cache")}
    index = [*CLI, "index", str(src), "--no-visual", "--quiet",
             "--asr-model", str(whisper_base)]  # fmt: skip
    killed = tmp_path / "killed"
    proc = subprocess.Popen([*index, "--library", str(killed)], env=env, cwd=REPO)
    searches = []
    deadline = time.time() + 300
    while time.time() < deadline and proc.poll() is None:
        if (killed / DB_NAME).is_file() and not searches:
            search = [*CLI, "search", "old", "--library", str(killed)]
            script = "for i in $(seq 3); do " + " ".join(map(repr, search)) + " >/dev/null || exit 1; done"
            searches = [subprocess.Popen(["bash", "-c", script], env=env, cwd=REPO, stderr=subprocess.PIPE)
                        for _ in range(2)]  # fmt: skip
        if (killed / DB_NAME).is_file() and _count(killed) >= 1:
            proc.send_signal(signal.SIGKILL)
            break
        time.sleep(0.05)
    proc.wait()
    assert proc.returncode == -signal.SIGKILL, "index finished before the kill: the test did not test"
    assert 1 <= _count(killed) < 4
    assert subprocess.run([*index, "--library", str(killed)], env=env, cwd=REPO).returncode == 0
    clean = tmp_path / "clean"
    assert subprocess.run([*index, "--library", str(clean)], env=env, cwd=REPO).returncode == 0
    assert _rows(killed) == _rows(clean) and _count(clean) == 4
    assert connect(killed / DB_NAME).execute("PRAGMA integrity_check").fetchone()[0] == "ok"
    for s in searches:
        _, err = s.communicate(timeout=300)
        assert s.returncode == 0 and b"error" not in err, err.decode()


def _count(folder: Path) -> int:
    conn = sqlite3.connect(folder / DB_NAME)
    try:
        return conn.execute("SELECT count(*) FROM videos").fetchone()[0]
    except sqlite3.OperationalError:  # the tables are not made yet
        return 0
    finally:
        conn.close()
