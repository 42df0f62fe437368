"""A library a team shares (PostgreSQL 15) against the embedded one (SQLite), on the 50-clip library.

A real server is started for the run (`tests/pg_server.py`: initdb into a temporary folder, 127.0.0.1, stopped
by PID afterwards; fsync off, as in the tests: a shared server's durability settings are its admin's). The
same clips (spoken sentence, on-screen title, tiny random-weight CLIP frames) are indexed with all three
channels into a fresh SQLite folder and a fresh database, with the model caches warm (a first, untimed
index fills them), so the rows measure what the store adds: probing, fingerprinting, writing. Then two
processes index the two halves into one new database at once. Search: every quote / paraphrase / title
query of `bench/library.py`'s recall rows against both stores (recall and p50/p95 latency), in this process
over TCP on loopback. The 2 cores are shared with other work: the 1-min load average is in every row.

    .venv/bin/python bench/library_team.py --clips 50 --out bench/results/library_team.json
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from bench._common import machine, now  # noqa: E402
from bench.library import recall  # noqa: E402

REPO = Path(__file__).resolve().parents[1]
CLI = [sys.executable, "-c", "import sys; from grounding_agent.cli import main; sys.exit(main())"]


def index_row(name: str, commands: list[list[str]]) -> dict:
    """Run the `index` commands at once (one process each); wall time until the last ends."""
    load = os.getloadavg()[0]
    t0 = time.perf_counter()
    procs = [subprocess.Popen(c, cwd=REPO, stdout=subprocess.PIPE) for c in commands]
    reports = [json.loads(p.communicate()[0]) for p in procs]
    wall = time.perf_counter() - t0
    if any(p.returncode for p in procs):
        raise SystemExit(f"{name}: an index process failed")
    indexed = sum(r["counts"].get("indexed", 0) for r in reports)
    row = {"store": name, "processes": len(commands), "indexed": indexed, "wall_s": round(wall, 2),
           "s_per_video": round(wall / max(indexed, 1), 3), "load_avg_1m_before": load,
           "load_avg_1m_after": os.getloadavg()[0]}  # fmt: skip
    print(json.dumps(row), flush=True)
    return row


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--clips", type=int, default=50)
    ap.add_argument("--out", default="bench/results/library_team.json")
    args = ap.parse_args(argv)
    from grounding_agent.library import Library
    from tests.assets.build_tiny_models import cached_tiny_models
    from tests.assets.whisper_base import whisper_base_dir
    from tests.librarygen import library_clips
    from tests.pg_server import pg_server

    clip_dir, whisper = cached_tiny_models()["clip"], whisper_base_dir()
    clips = library_clips(args.clips)
    folder = clips[0].path.parent
    models = ["--saliency-model", str(clip_dir), "--asr-model", str(whisper), "--quiet", "--json"]
    with tempfile.TemporaryDirectory() as tmp, pg_server() as pg:
        work = Path(tmp)
        halves = [work / "a", work / "b"]
        for i, half in enumerate(halves):
            half.mkdir()
            for c in clips[i::2]:
                (half / c.path.name).symlink_to(c.path)
        index_row(
            "warm-up (sqlite)", [[*CLI, "index", str(folder), "--library", str(work / "warm"), *models]]
        )
        url, shared = pg.url(pg.create_database()), pg.url(pg.create_database())
        rows = [
            index_row("sqlite", [[*CLI, "index", str(folder), "--library", str(work / "lib"), *models]]),
            index_row("postgresql", [[*CLI, "index", str(folder), "--library", url, *models]]),
            index_row("postgresql, 2 writers", [[*CLI, "index", str(h), "--library", shared, *models] for h in halves]),
        ]  # fmt: skip
        searches = {}
        for name, where in (("sqlite", work / "lib"), ("postgresql", url)):
            with Library(where, saliency=clip_dir) as lib:
                lib.search("warm up", k=5)  # the ANN side file and the CLIP text model, once
                load = os.getloadavg()[0]
                recalls, latency = recall(lib, clips)
                searches[name] = {"recall": recalls, "latency": latency, "load_avg_1m_before": load,
                                  "load_avg_1m_after": os.getloadavg()[0]}  # fmt: skip
                print(json.dumps({name: searches[name]["latency"]}), flush=True)
        with Library(shared) as lib:
            paths = [str(v.path) for v in lib.videos()]
        shared_ok = len(paths) == len(set(paths)) == len(clips)
    result = {"bench": "library_team", "when": now(), "machine": machine(), "clips": len(clips),
              "postgres": "15 (Debian), 127.0.0.1, fsync off", "index": rows, "search": searches,
              "two_writers_every_video_once": shared_ok}  # fmt: skip
    Path(args.out).write_text(json.dumps(result, indent=2) + "\n", encoding="utf-8")
    return 0


if __name__ == "__main__":
    sys.exit(main())
