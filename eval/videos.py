"""Finding a benchmark video's file under `--videos`: `{vid}.<ext>` or a `--video-pattern` such as
'*_{vid}.mp4'."""

from __future__ import annotations

import re
from pathlib import Path

from grounding_agent.errors import ConfigError

VIDEO_EXTENSIONS = (".mp4", ".mkv", ".webm", ".avi", ".mov")


def _pattern_regex(pattern: str, vid: str) -> re.Pattern[str]:
    literal = [re.escape(part).replace(r"\*", ".*").replace(r"\?", ".") for part in pattern.split("{vid}")]
    return re.compile(re.escape(vid).join(literal))


class VideoFinder:
    """vid -> video file under a folder: `{vid}.<ext>` or a `--video-pattern` such as '*_{vid}.mp4'."""

    def __init__(self, folder: Path | None, pattern: str | None = None):
        if pattern is not None and (pattern.count("{vid}") != 1 or "/" in pattern):
            raise ConfigError(
                f"--video-pattern {pattern!r} must name a file with {{vid}} once, e.g. '*_{{vid}}.mp4'"
            )
        if folder is not None and not folder.is_dir():
            raise ConfigError(f"--videos {folder}: not a folder")
        self.folder, self.pattern = folder, pattern
        self._names: list[str] | None = None

    def find(self, vid: str) -> Path | None:
        """The one file for `vid`, None if there is none.

        Raises:
            ConfigError: several files match (the pattern is too loose).
        """
        if self.folder is None:
            return None
        if self.pattern is None:
            return next((p for ext in VIDEO_EXTENSIONS if (p := self.folder / f"{vid}{ext}").is_file()), None)
        if self._names is None:  # listed once: a pattern is matched against names, not globbed per query
            self._names = sorted(
                p.name for p in self.folder.iterdir() if p.suffix.lower() in VIDEO_EXTENSIONS and p.is_file()
            )
        regex = _pattern_regex(self.pattern, vid)
        hits = [n for n in self._names if vid in n and regex.fullmatch(n)]
        if len(hits) > 1:
            raise ConfigError(
                f"{len(hits)} files match video {vid} ({', '.join(hits[:3])}); make --video-pattern stricter"
            )
        return self.folder / hits[0] if hits else None
