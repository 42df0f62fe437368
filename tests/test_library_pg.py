"""A library a team shares, on a real PostgreSQL 15 server started for these tests (`tests/pg_server.py`).

The same clips indexed into PostgreSQL and into SQLite answer the same searches; two processes index disjoint
halves into one database at once while a third searches; a writer killed with SIGKILL mid-index leaves no half
video and `index` again gives the rows of a clean run; bad URLs, a server that is down, a wrong password,
another tool's database and a newer schema are one-line errors (exit 2) that never echo the password.
"""

from __future__ import annotations

import json
import os
import shlex
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import numpy as np
import pytest

from grounding_agent.cli import main
from grounding_agent.library import Library, VideoRecord
from grounding_agent.library.pg_store import PgStore
from grounding_agent.types import Video
from tests.librarygen import library_clips
from tests.pg_server import PgServer, available, pg_server

REPO = Path(__file__).resolve().parents[1]
CLI = [sys.executable, "-c", "import sys; from grounding_agent.cli import main; sys.exit(main())"]

pytestmark = pytest.mark.skipif(bool(available()), reason=available() or "PostgreSQL 15 is here")


@pytest.fixture(scope="module")
def pg():
    with pg_server() as server:
        yield server


@pytest.fixture(scope="module")
def clips():
    return library_clips(8)


def _one_error_line(capsys) -> str:
    captured = capsys.readouterr()
    err = captured.err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("error: "), err
    return err[0] + captured.out


def _record(path: str, vectors: np.ndarray) -> VideoRecord:
    n = len(vectors)
    return VideoRecord(
        Video(Path(path), float(n), 1.0, n, 64, 64), f"fp-{path}", 1, 1, ("visual",),
        np.arange(n, dtype=np.float64), vectors.astype(np.float32), model={"visual": "synthetic"},
    )  # fmt: skip


def _rows(url: str) -> list[tuple]:
    """Every video's path, fingerprint and channels, every text row and document, and the frames per video."""
    import psycopg

    with psycopg.connect(url) as conn:
        videos = conn.execute("SELECT path, fingerprint, channels FROM videos ORDER BY path").fetchall()
        texts = conn.execute(
            "SELECT v.path, kind, start_s, end_s, text FROM texts t JOIN videos v ON v.id = t.video_id "
            "ORDER BY 1, 2, 3"
        ).fetchall()
        docs = conn.execute(
            "SELECT v.path, kind, body FROM documents d JOIN videos v ON v.id = d.video_id ORDER BY 1, 2"
        ).fetchall()
        frames = conn.execute(
            "SELECT v.path, count(*), sum(f.time_s) FROM frames f JOIN videos v ON v.id = f.video_id "
            "GROUP BY 1 ORDER BY 1"
        ).fetchall()
    return videos + texts + docs + frames


def _count(url: str) -> int:
    import psycopg

    with psycopg.connect(url) as conn:
        try:
            return conn.execute("SELECT count(*) FROM videos").fetchone()[0]
        except psycopg.errors.UndefinedTable:
            return 0


# --- the store itself (synthetic vectors: no models) -----------------------------------------------


def test_knn_is_exact_and_its_local_copy_follows_writes_and_deletes(pg: PgServer, tmp_path, monkeypatch):
    monkeypatch.setenv("GROUNDING_AGENT_CACHE", str(tmp_path / "cache"))
    url = pg.url(pg.create_database())
    rng = np.random.default_rng(0)
    store = PgStore.open(url, create=True)
    x = rng.normal(size=(300, 16)).astype(np.float32)
    for i in range(3):
        store.write(_record(f"/v/{i}.mp4", x[i * 100 : (i + 1) * 100]))
    q = rng.normal(size=16).astype(np.float32)
    cos = (x @ q) / (np.linalg.norm(x, axis=1) * np.linalg.norm(q))
    best = np.argsort(-cos)[:10]
    got = store.knn(q, 10)
    assert [(v - 1) * 100 + int(t) for v, t, _ in got] == best.tolist()
    assert np.allclose([s for *_, s in got], cos[best], atol=1e-5)
    cached = list((tmp_path / "cache" / "library-pg").rglob("*.faiss"))
    assert len(cached) == 1 and pg.password not in str(cached[0])
    reader = PgStore.open(url)  # another process's view: the cache file, then only the rows after it
    assert reader.knn(q, 10) == got
    store.write(_record("/v/0.mp4", x[:50]))  # re-indexed: its old frames deleted (a new epoch)
    store.write(_record("/v/3.mp4", x[250:260]))
    epoch = reader.vector_stamp()[1]
    assert epoch == 1
    assert {v for v, *_ in reader.knn(q, 400)} == {2, 3, 4, 5} and len(reader.knn(q, 400)) == 260
    store.delete(2)
    assert all(v != 2 for v, *_ in reader.knn(q, 400))
    assert reader.text_search(["anything"], "speech", 5) == [] and reader.shots(1) == []
    assert [v["path"] for v in reader.videos()] == ["/v/2.mp4", "/v/0.mp4", "/v/3.mp4"]


def test_two_writers_of_one_path_leave_one_video(pg: PgServer):
    url = pg.url(pg.create_database())
    a, b = PgStore.open(url, create=True), PgStore.open(url, create=True)  # two schema creators: one schema
    x = np.ones((5, 8), np.float32)
    a.write(_record("/same.mp4", x))
    b.write(_record("/same.mp4", x * 2))
    assert [v["path"] for v in a.videos()] == ["/same.mp4"] and len(a.knn(x[0], 50)) == 5


def test_bad_locations_are_one_line_errors_without_the_password(pg: PgServer, tmp_path, capsys):
    db = pg.create_database()
    secret = pg.password
    wrong = pg.url(db, password="not-" + secret)
    free = pg.url(db, port=1)  # nothing listens on port 1
    bad = [
        (f"postgresql://ga:{secret}@127.0.0.1:port/{db}", "not a valid PostgreSQL URL"),
        (f"postgres://ga:{secret}@[::1/{db}", "not a valid PostgreSQL URL"),
        (f"postgresql://ga:{secret}@127.0.0.1:{pg.port}/", "names no database"),
        (free, "cannot reach the library server"),
        (wrong, "refused the login"),
        (f"postgresql://ga@127.0.0.1:{pg.port}/{db}?password=x{secret}", "refused the login"),
        (pg.url("no_such_db"), "does not exist"),
        (pg.url(db), "no library in"),  # search before any index
    ]
    for url, says in bad:
        assert main(["search", "hello", "--library", url]) == 2, url
        line = _one_error_line(capsys)
        assert says in line and secret not in line, line
    assert main(["index", str(tmp_path), "--library", pg.url(db), "--repair"]) == 2
    assert "--repair mends a library folder" in _one_error_line(capsys)
    pg.sql("CREATE TABLE invoices(id int)", db)  # another tool's database
    assert main(["index", str(tmp_path), "--library", pg.url(db), "--no-visual", "--no-speech"]) == 2
    line = _one_error_line(capsys)
    assert "another tool's tables" in line and secret not in line
    newer = pg.create_database()
    PgStore.open(pg.url(newer), create=True).close()
    pg.sql("UPDATE meta SET value = '99' WHERE key = 'schema_version'", newer)
    assert main(["search", "hello", "--library", pg.url(newer)]) == 2
    assert "newer than this grounding-agent" in _one_error_line(capsys)


# --- real clips, real models ------------------------------------------------------------------------


@pytest.mark.slow
@pytest.mark.integration
def test_postgres_and_sqlite_give_the_same_search_results(pg, clips, tiny_models, whisper_base, tmp_path):
    url = pg.url(pg.create_database())
    models = ["--saliency-model", str(tiny_models["clip"]), "--asr-model", str(whisper_base)]
    for where in (url, str(tmp_path / "lib")):
        assert main(["index", str(clips[0].path.parent), "--library", where, "--quiet", *models]) == 0
    on_pg = Library(url, saliency=tiny_models["clip"])
    on_sqlite = Library(tmp_path / "lib", saliency=tiny_models["clip"])
    assert [(v.path, v.fingerprint, v.channels) for v in on_pg.videos()] == [
        (v.path, v.fingerprint, v.channels) for v in on_sqlite.videos()
    ]
    right = 0
    for clip in clips:
        for kind, (query, _span) in clip.queries().items():
            a, b = on_pg.search(query, k=5)[0], on_sqlite.search(query, k=5)[0]
            assert (a.path, a.start_s, a.end_s) == (b.path, b.start_s, b.end_s), (kind, query)
            right += a.path == clip.path.resolve()
        seen = [(h.path, h.start_s, h.end_s) for h in on_pg.search(clip.title, k=10, channels=["visual"])]
        assert seen == [
            (h.path, h.start_s, h.end_s) for h in on_sqlite.search(clip.title, k=10, channels=["visual"])
        ]
    assert right == 3 * len(clips)
    video = on_pg.video(clips[0].path)
    assert on_pg.transcript(video.video_id).text == on_sqlite.transcript(video.video_id).text
    assert on_pg.session(clips[0].path).transcript is not None


@pytest.mark.slow
def test_two_writers_and_a_reader_at_once(pg, clips, tmp_path):
    """Two `index` processes write disjoint halves into one database at once (cold OCR caches, so each takes
    seconds) while `search` processes read it; then a third process finds every video, each once."""
    url = pg.url(pg.create_database())
    halves = [tmp_path / "a", tmp_path / "b"]
    for i, folder in enumerate(halves):
        folder.mkdir()
        for c in clips[i * 4 : i * 4 + 4]:
            (folder / c.path.name).write_bytes(c.path.read_bytes())
    env = {**os.environ, "GROUNDING_AGENT_CACHE": str(tmp_path / "cache")}
    index = [*CLI, "index", "--library", url, "--no-visual", "--no-speech", "--quiet", "--json"]
    # The schema first (as a team does once), so both writers start on an existing library.
    assert main(["index", str(tmp_path / "none"), "--library", url, "--no-visual", "--no-speech"]) == 0
    writers = [subprocess.Popen([*index, str(f)], env=env, cwd=REPO, stdout=subprocess.PIPE) for f in halves]
    overlap = threading.Event()  # a video written while both writers still run: polled often, in a thread,
    # because each `search` below takes a second or two of start-up and would sample too coarsely.

    def watch_overlap() -> None:
        while not overlap.is_set() and all(w.poll() is None for w in writers):
            if _count(url) >= 1 and all(w.poll() is None for w in writers):
                overlap.set()
            time.sleep(0.05)

    watcher = threading.Thread(target=watch_overlap, daemon=True)
    watcher.start()
    searches = 0
    while any(w.poll() is None for w in writers):
        done = subprocess.run([*CLI, "search", "the slide titled", "--library", url, "--json"], env=env,
                              cwd=REPO, capture_output=True, text=True)  # fmt: skip
        assert done.returncode == 0, done.stderr
        searches += 1
    reports = [json.loads(w.communicate()[0]) for w in writers]
    watcher.join(timeout=10)
    assert all(w.returncode == 0 for w in writers)
    assert overlap.is_set(), "one writer finished before the other had written: the test did not test"
    assert [r["counts"].get("indexed") for r in reports] == [4, 4] and searches >= 1
    with Library(url) as lib:
        paths = [str(v.path) for v in lib.videos()]
        assert len(paths) == len(set(paths)) == 8
    for clip in clips:
        done = subprocess.run([*CLI, "search", f"the slide titled {clip.title}", "--library", url, "--json",
                               "-k", "1"], env=env, cwd=REPO, capture_output=True, text=True)  # fmt: skip
        assert Path(json.loads(done.stdout)["hits"][0]["path"]).name == clip.path.name


@pytest.mark.slow
def test_kill_9_mid_index_then_index_again_is_the_same_library(pg, clips, tmp_path):
    src = tmp_path / "src"
    src.mkdir()
    for c in clips[:4]:
        (src / c.path.name).write_bytes(c.path.read_bytes())
    env = {**os.environ, "GROUNDING_AGENT_CACHE": str(tmp_path / "cache")}  # cold: seconds per clip
    index = [*CLI, "index", str(src), "--no-visual", "--no-speech", "--quiet"]
    killed, clean = pg.url(pg.create_database()), pg.url(pg.create_database())
    proc = subprocess.Popen([*index, "--library", killed], env=env, cwd=REPO)
    deadline = time.time() + 300
    while time.time() < deadline and proc.poll() is None and _count(killed) < 1:
        time.sleep(0.05)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    assert proc.returncode == -signal.SIGKILL, "index finished before the kill: the test did not test"
    assert 1 <= _count(killed) < 4
    assert subprocess.run([*index, "--library", killed], env=env, cwd=REPO).returncode == 0
    assert subprocess.run([*index, "--library", clean], env=env, cwd=REPO).returncode == 0
    assert _rows(killed) == _rows(clean) and _count(clean) == 4


@pytest.mark.slow
def test_index_on_two_ray_nodes_into_postgres(pg, clips, tmp_path, capsys, monkeypatch):
    """`index --ray` into a database: the cluster runs in a private network namespace (loopback only, see
    bench/_ray.py) and reaches the server through its unix socket; the rows are a one-process index's."""
    from bench._ray import ADDRESS, BIN, can_start, two_node_cluster

    if not can_start():
        pytest.skip("the two-node Ray cluster needs root for unshare")
    monkeypatch.setenv("GROUNDING_AGENT_CACHE", str(tmp_path / "cache-local"))
    media = tmp_path / "media"
    media.mkdir()
    for c in clips[:3]:
        (media / c.path.name).write_bytes(c.path.read_bytes())
    index = ["index", str(media), "--no-visual", "--no-speech", "--json"]
    local, on_ray = pg.create_database(), pg.create_database()
    assert main([*index, "--library", pg.url(local)]) == 0
    capsys.readouterr()
    line = [f"{BIN}/grounding-agent", *index, "--library", pg.socket_url(on_ray), "--ray", ADDRESS]
    done = two_node_cluster(
        [f"{BIN}/python -c 'import ray; ray.init(address=\"{ADDRESS}\"); print(\"nodes\", len(ray.nodes()))'",
         " ".join(shlex.quote(a) for a in line)],
        env={"GROUNDING_AGENT_CACHE": str(tmp_path / "cache-ray")},
    )  # fmt: skip
    assert done.returncode == 0, done.stderr[-3000:]
    assert "nodes 2" in done.stdout
    assert list((tmp_path / "cache-ray").rglob("*")), "the cluster's workers computed (and cached) nothing"
    assert _count(pg.url(on_ray)) == 3 and _rows(pg.url(on_ray)) == _rows(pg.url(local))
