"""Checks on output paths before any work starts: one line saying what is wrong, nothing written."""

from __future__ import annotations

import os
from pathlib import Path

from grounding_agent.errors import EditError, OutputError
from grounding_agent.io import check_output_path, refuse_inputs

VIDEO_SUFFIXES = (".mp4", ".mov", ".m4v", ".mkv")
IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg")


def check_output(path: str | Path, source: str | Path, *, suffixes: tuple[str, ...] | None = None) -> Path:
    """`path` if an edit may be written there: its folder exists and is writable, it is not the source
    video, it is not a folder / link / device, and (with `suffixes`) its suffix is one of them.

    Raises:
        EditError, OutputError: why not, in one line.
    """
    path = Path(path)
    folder = path.parent if str(path.parent) else Path(".")
    if not folder.is_dir():
        raise EditError(f"{path}: the folder {folder} does not exist; create it or write elsewhere")
    if not os.access(folder, os.W_OK | os.X_OK):
        raise EditError(f"{path}: the folder {folder} is not writable; write elsewhere")
    try:  # by inode too: a symlink or a hard link to the video is the video
        refuse_inputs([("", path)], [("the input video", source)])
    except OutputError as exc:
        raise EditError(str(exc)) from None
    if suffixes is not None and path.suffix.lower() not in suffixes:
        raise EditError(f"{path}: use one of {', '.join(suffixes)}")
    return check_output_path(path)
