"""The run folder's files (`run.json`, `predictions.jsonl`, `samples.jsonl`) and reading the predictions
back to resume: a torn last line (a killed run) is cut, error lines are dropped with `--retry-errors`."""

from __future__ import annotations

import fcntl
import json
import os
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from grounding_agent.benchmarks.reading import loads_json
from grounding_agent.errors import DatasetError, OutputError
from grounding_agent.io import dumps_json
from grounding_agent.io import write_text_atomic as write_atomic

PREDICTIONS, SAMPLES, RUN_JSON, LOCK = "predictions.jsonl", "samples.jsonl", "run.json", "run.lock"


@contextmanager
def run_lock(out: Path) -> Iterator[None]:
    """Hold the run folder for one `eval run`: a second run into it would append duplicate answers.

    The lock is `fcntl.flock` on `out/run.lock` (released by the OS when the process dies, even on
    SIGKILL, so a killed run never leaves a stale lock); the file holds the holder's pid for the message.

    Raises:
        OutputError: another process holds the folder, or the lock file cannot be opened.
    """
    path = out / LOCK
    try:
        fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_NOFOLLOW, 0o644)
    except OSError as exc:
        raise OutputError(f"{path}: cannot open the run's lock file ({exc.strerror or exc})") from None
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = os.pread(fd, 32, 0).decode("ascii", "replace").strip() or "unknown"
            raise OutputError(
                f"{out}: another eval run (pid {holder}) is writing this folder; wait for it to end, "
                "or use another --out"
            ) from None
        os.ftruncate(fd, 0)
        os.pwrite(fd, f"{os.getpid()}\n".encode(), 0)
        yield
    finally:
        os.close(fd)  # closing releases the lock


def _row(line: bytes, where: str) -> dict[str, Any]:
    """One predictions line: a JSON object with a qid (bounded: huge numbers or deep nesting are refused)."""
    try:
        row = loads_json(line.decode("utf-8"), where)
    except (UnicodeDecodeError, json.JSONDecodeError):
        row = None
    if (
        not isinstance(row, dict)
        or isinstance(row.get("qid"), bool)
        or not isinstance(row.get("qid"), (int, str))
    ):
        raise DatasetError(f"{where}: broken line inside the file; move the file away to restart")
    return row


def read_done(path: Path, retry_errors: bool = False, repair: bool = True) -> dict[Any, dict[str, Any]]:
    """qid -> line already written. Cuts a torn last line (`repair=False`: skips it and leaves the file
    alone, for readers such as `eval analyze`); `retry_errors` drops error lines from the file.

    Raises:
        DatasetError: a broken line that is not the last one (the file was edited, not interrupted).
    """
    if not path.exists():
        return {}
    data = path.read_bytes()
    end = data.rfind(b"\n") + 1
    if end < len(data) and repair:  # killed mid-write: the tail after the last newline is a partial line
        with open(path, "r+b") as f:
            f.truncate(end)
    done: dict[Any, dict[str, Any]] = {}
    for lineno, line in enumerate(data[:end].splitlines(), start=1):
        row = _row(line, f"{path}:{lineno}")
        done[row["qid"]] = row
    if retry_errors and any("error" in r for r in done.values()):
        done = {q: r for q, r in done.items() if "error" not in r}
        write_atomic(path, "".join(dumps_json(r) + "\n" for r in done.values()))
    return done
