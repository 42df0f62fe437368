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
    """The vLLM server is unreachable, failed to start, or answered with an error.

    `status_code` is the HTTP status when the server answered one (None: no answer, or not HTTP).
    """

    def __init__(self, message: str, *, status_code: int | None = None):
        self.status_code = status_code
        super().__init__(message)


def server_error_from_openai(exc: Exception, where: str) -> ServerError:
    """The one mapping of an `openai` client exception (LangChain's client) to a one-line `ServerError`.

    Args:
        where: what was asked, for the message, e.g. "the planner LLM".
    """
    import openai  # only callers holding an openai exception get here

    if isinstance(exc, openai.APITimeoutError):
        return timed_out(where)
    if isinstance(exc, openai.APIConnectionError):
        return unreachable(where)
    if isinstance(exc, openai.APIStatusError):
        return http_status(where, exc.status_code, str(exc))
    # Not an openai error: the client choked on a 200 reply that is no chat completion (an HTML page,
    # cut JSON, null choices or message), as LangChain and the client raise them.
    return not_openai_reply(where, f"{type(exc).__name__}: {exc}")


def timed_out(where: str) -> ServerError:
    return ServerError(f"{where} timed out; raise --timeout or ask for less (fewer frames or tokens)")


def unreachable(where: str) -> ServerError:
    return ServerError(
        f"cannot reach {where}; start one with `grounding-agent serve --model ...` or pass the right --server URL"
    )


def http_status(where: str, status_code: int, detail: str) -> ServerError:
    """An HTTP error status; `detail` (the server's message) is cut to its first line."""
    first = (str(detail).splitlines() or [""])[0][:300]
    return ServerError(f"{where} answered HTTP {status_code}: {first}", status_code=status_code)


def not_openai_reply(where: str, detail: str, what: str = "chat completion") -> ServerError:
    """A 200 reply that is not what the OpenAI API sends (`what`: "chat completion", "model list")."""
    detail = " ".join(str(detail).split())[:160]
    return ServerError(
        f"{where} sent a reply that is not an OpenAI {what} ({detail}); "
        "check that --server is the /v1 URL of a vLLM (OpenAI-compatible) server"
    )


class ServerStartError(ServerError):
    """The vLLM server process died or never became healthy while starting.

    The message is one line; `log_tail` holds the server log's last lines and `log_path` the full log.
    """

    def __init__(self, message: str, log_path: object = None, log_tail: str = ""):
        self.log_path = None if log_path is None else str(log_path)
        self.log_tail = log_tail
        super().__init__(message)


class MissingDependencyError(ConfigError, ImportError):
    """An optional dependency is not installed; the message names the extra to install."""


class OutputError(GroundingAgentError, OSError):
    """An output path cannot be written (a directory, a FIFO or device, a symlink, read-only, disk full)."""


class EditError(ConfigError):
    """An edit instruction or edit that cannot be carried out (reads as nothing, keeps nothing, bad output)."""


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


class HeadError(ConfigError):
    """A learned highlight head folder that cannot be used (missing, not a head, another recipe, damaged)."""


class LibraryError(ConfigError):
    """A video library folder that cannot be used: another tool's, a newer schema, a bad query or path."""


class LibraryStoreError(LibraryError):
    """The library's store is locked by another writer or damaged; the message says to run `index --repair`."""


class StreamError(GroundingAgentError):
    """A live source (`watch`) that cannot be opened, has no video, stalls past --timeout or is lost for good."""


class SummaryError(EditError):
    """A summary that cannot be made: a budget of 0, negative, over 100 % or not shorter than the video."""
