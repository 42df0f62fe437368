"""Typed errors. Every error a user can cause says what went wrong and how to fix it, in one line.

A model's malformed answer is *not* an error: it is recorded as a `ParseFailure` (see `parsing`).
"""

from __future__ import annotations


class GroundingAgentError(Exception):
    """Base of every error this package raises on purpose."""


class ConfigError(GroundingAgentError, ValueError):
    """A bad argument, option or config file."""


class ModelLoadError(GroundingAgentError):
    """A model, processor or adapter could not be loaded from the given id or path."""


class ServerError(GroundingAgentError):
    """The vLLM server is unreachable, failed to start, or answered with an error."""


class ServerStartError(ServerError):
    """The vLLM server process died or never became healthy while starting.

    The message is one line; `log_tail` holds the server log's last lines and `log_path` the full log.
    """

    def __init__(self, message: str, log_path: object = None, log_tail: str = ""):
        self.log_path = None if log_path is None else str(log_path)
        self.log_tail = log_tail
        super().__init__(message)


class PromptError(GroundingAgentError):
    """A prompt template is missing or was rendered with missing/unknown variables."""


class DatasetError(GroundingAgentError):
    """An annotation or prediction file is missing or malformed."""


# --- video -----------------------------------------------------------------------------------------


class VideoError(GroundingAgentError):
    """Base of every video decoding error. `path` names the offending file."""

    def __init__(self, path: object, message: str):
        self.path = str(path)
        super().__init__(f"{self.path}: {message}")


class VideoNotFoundError(VideoError, FileNotFoundError):
    """The path does not exist or is not a regular file."""


class EmptyVideoError(VideoError):
    """The file has zero bytes."""


class NotAVideoError(VideoError):
    """The file is not a media container that ffmpeg recognises."""


class NoVideoStreamError(VideoError):
    """The container has no video stream (e.g. audio only)."""


class UnsupportedCodecError(VideoError):
    """The video stream's codec cannot be decoded by this build."""


class TruncatedVideoError(VideoError):
    """The file ends before its container says it should (an interrupted copy or download)."""


class CorruptVideoError(VideoError):
    """The stream is damaged: frames in the middle fail to decode."""


class SamplingError(VideoError, ValueError):
    """The sampling request cannot be met (e.g. a window outside the video)."""
