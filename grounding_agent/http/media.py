"""Which files a client may name: paths relative to one media folder, nothing that resolves outside it."""

from __future__ import annotations

import os
import stat
from pathlib import Path, PurePosixPath

from grounding_agent.defaults import HTTP_SERVICE
from grounding_agent.errors import ConfigError, GroundingAgentError, VideoNotFoundError


class ForbiddenPathError(GroundingAgentError):
    """A path that is absolute, climbs out of the media folder, or resolves (through a link) outside it."""


def shown(text: str, most: int = 80) -> str:
    """A client-given name as a detail may show it: short, printable (never a 4 KB echo)."""
    text = text if len(text) <= most else text[:most] + "…"
    return repr(text.encode("utf-8", "replace").decode("utf-8"))


class MediaRoot:
    """Resolve client-given video paths inside `root`.

    Raises (from `resolve`):
        ForbiddenPathError: absolute, `..` out of the root, or a symlink pointing outside it.
        VideoNotFoundError: inside the root but no such file.
        ConfigError: empty, longer than `max_chars`, not a valid path (NUL bytes, a name longer than the
            file system allows), or not a regular file (a FIFO would block the reader, a folder is no video).
    Details name the path as the client gave it (media-relative), never the server's folders.
    """

    def __init__(self, root: str | Path, max_chars: int = HTTP_SERVICE.max_path_chars):
        self.root = Path(root).expanduser().resolve()
        self.max_chars = max_chars
        if not self.root.is_dir():
            raise ConfigError(f"--media-root {root} is not a folder; pass the folder that holds the videos")

    def resolve(self, video: str) -> Path:
        if not video or "\x00" in video:
            raise ConfigError("video must be a non-empty path relative to the media root")
        if len(video) > self.max_chars:
            raise ConfigError(f"video is {len(video):,} characters; the most is {self.max_chars:,}")
        rel = PurePosixPath(video.replace("\\", "/"))
        if rel.is_absolute() or Path(video).is_absolute() or (rel.parts and ":" in rel.parts[0]):
            raise ForbiddenPathError(f"{shown(video)}: give a path relative to the media root, not absolute")
        try:
            path = (self.root / rel).resolve()
            if not path.is_relative_to(self.root):
                raise ForbiddenPathError(f"{shown(video)} resolves outside the media root")
            mode = path.stat().st_mode
        except FileNotFoundError:
            raise VideoNotFoundError(shown(video), "no such video under the media root") from None
        except (OSError, ValueError) as exc:  # ENAMETOOLONG, ELOOP, ENOTDIR, a surrogate the OS refuses
            reason = os.strerror(exc.errno) if isinstance(exc, OSError) and exc.errno else "not a valid path"
            raise ConfigError(f"video {shown(video)}: {reason}") from None
        if not stat.S_ISREG(mode):
            raise ConfigError(f"video {shown(video)} is not a regular file (a folder, pipe or device)")
        return path

    def relative(self, path: Path) -> str:
        return path.relative_to(self.root).as_posix()

    def redact(self, text: str) -> str:
        """`text` with the media root's absolute path replaced by nothing (a detail names relative paths)."""
        root = str(self.root)
        return text.replace(root + os.sep, "").replace(root, "<media root>")
