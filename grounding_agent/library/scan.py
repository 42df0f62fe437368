"""Which files an `index` run looks at: the paths given, folders walked (symlinks followed, loops caught).

`scan(paths)` yields `Found` items: a file to try, or a path already skipped with its reason (a symlink
loop, a broken link, a file that is not a video by its name, one we may not read). Nothing raises for one
bad path: the rest of the folder is still indexed.
"""

from __future__ import annotations

import errno
import os
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path

VIDEO_SUFFIXES = frozenset(
    ".mp4 .m4v .mov .mkv .webm .avi .mpg .mpeg .ts .mts .m2ts .flv .wmv .3gp .ogv".split()
)


@dataclass(frozen=True)
class Found:
    """A path met while scanning: `skip` is empty for a file to index, else why it is skipped."""

    path: Path
    skip: str = ""


def scan(paths: Iterable[str | Path]) -> Iterator[Found]:
    """Files under `paths` in a stable order; folders walked recursively, each real folder once."""
    seen_dirs: set[tuple[int, int]] = set()
    for raw in paths:
        path = Path(raw).expanduser()
        if path.is_symlink() and not path.exists():
            yield Found(path, _link_reason(path))
        elif path.is_dir():
            yield from _walk(path, seen_dirs)
        elif path.exists():
            yield Found(path)
        else:
            yield Found(path, "no such file or folder")


def _walk(root: Path, seen_dirs: set[tuple[int, int]]) -> Iterator[Found]:
    try:
        st = root.stat()
        entries = sorted(os.scandir(root), key=lambda e: e.name)
    except OSError as exc:
        yield Found(root, f"unreadable folder ({exc.strerror})")
        return
    key = (st.st_dev, st.st_ino)
    if key in seen_dirs:
        yield Found(root, "symlink loop (folder already scanned)")
        return
    seen_dirs.add(key)
    for entry in entries:
        path = Path(entry.path)
        if entry.name.startswith("."):
            continue  # hidden files and folders: editors' and tools' own (.DS_Store, .git)
        if path.is_symlink() and not path.exists():
            yield Found(path, _link_reason(path))
        elif path.is_dir():
            yield from _walk(path, seen_dirs)
        elif path.suffix.lower() not in VIDEO_SUFFIXES:
            yield Found(path, f"not a video file name ({path.suffix or 'no suffix'})")
        else:
            yield Found(path)


def _link_reason(path: Path) -> str:
    try:
        path.resolve(strict=True)
    except RuntimeError:
        return "symlink loop"
    except OSError as exc:
        if exc.errno == errno.ELOOP:
            return "symlink loop"
    return "broken symlink (its target does not exist)"
