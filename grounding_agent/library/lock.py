"""One `index` at a time per library: an advisory lock file (`fcntl.flock`) the OS drops when the process dies,
so a killed writer never leaves a stale lock behind; readers (`search`) take no lock (WAL serves them)."""

from __future__ import annotations

import fcntl
import os
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from grounding_agent.errors import LibraryStoreError

LOCK_NAME = "index.lock"


@contextmanager
def writer_lock(folder: Path) -> Iterator[None]:
    """Hold the library's writer lock; a second writer gets a one-line `LibraryStoreError` at once."""
    fd = os.open(folder / LOCK_NAME, os.O_RDWR | os.O_CREAT, 0o644)
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            raise LibraryStoreError(
                f"library {folder} is being indexed by another process; wait for that `index` to finish"
            ) from None
        yield
    finally:
        os.close(fd)  # closing releases the lock
