"""Which files a client may name: paths relative to one media folder, nothing that resolves outside it."""

from __future__ import annotations

from pathlib import Path, PurePosixPath

from grounding_agent.errors import ConfigError, GroundingAgentError, VideoNotFoundError


class ForbiddenPathError(GroundingAgentError):
    """A path that is absolute, climbs out of the media folder, or resolves (through a link) outside it."""


class MediaRoot:
    """Resolve client-given video paths inside `root`.

    Raises (from `resolve`):
        ForbiddenPathError: absolute, `..` out of the root, or a symlink pointing outside it.
        VideoNotFoundError: inside the root but no such file.
        ConfigError: empty or not a valid path (NUL bytes).
    """

    def __init__(self, root: str | Path):
        self.root = Path(root).expanduser().resolve()
        if not self.root.is_dir():
            raise ConfigError(f"--media-root {root} is not a folder; pass the folder that holds the videos")

    def resolve(self, video: str) -> Path:
        if not video or "\x00" in video:
            raise ConfigError("video must be a non-empty path relative to the media root")
        rel = PurePosixPath(video.replace("\\", "/"))
        if rel.is_absolute() or Path(video).is_absolute() or (rel.parts and ":" in rel.parts[0]):
            raise ForbiddenPathError(f"{video!r}: give a path relative to the media root, not absolute")
        path = (self.root / rel).resolve()
        if not path.is_relative_to(self.root):
            raise ForbiddenPathError(f"{video!r} resolves outside the media root")
        if not path.is_file():
            raise VideoNotFoundError(video, "no such video under the media root")
        return path

    def relative(self, path: Path) -> str:
        return path.relative_to(self.root).as_posix()
