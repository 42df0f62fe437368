"""Small helpers shared by the subcommands: output, and argparse `type=` validators.

The validators turn a bad option into argparse's usual one-line error (exit 2) before any work starts:

    p.add_argument("--top-k", type=positive_int, default=1)
    p.add_argument("--min-gap-s", type=positive_float, default=2.5)
"""

from __future__ import annotations

import argparse
import math
import sys
from pathlib import Path
from typing import Any

from grounding_agent.defaults import LIMITS
from grounding_agent.io import dumps_json


def print_json(obj: Any) -> None:
    """Strict JSON in valid UTF-8 on stdout: a NaN or infinity (which `json` would write as the non-JSON
    `NaN`) is null, a lone surrogate (undecodable bytes in a file name) is "?"."""
    text = dumps_json(obj, indent=2)
    sys.stdout.write(text.encode("utf-8", "replace").decode("utf-8") + "\n")


def fmt_s(seconds: float) -> str:
    """12.3 -> '12.30 s (0:12.30)'."""
    m, s = divmod(seconds, 60.0)
    h, m = divmod(int(m), 60)
    clock = f"{h}:{m:02d}:{s:05.2f}" if h else f"{m}:{s:05.2f}"
    return f"{seconds:.2f} s ({clock})"


def check_output_path(path: Any, option: str = "", *, inputs: tuple[Any, ...] = ()) -> Path:
    """Check an output option's path before any work starts (see `grounding_agent.io`); `inputs` are the
    command's input files, which an output must never replace (`--plot clip.mp4`): paths, or (what it is,
    path) pairs as `command_inputs` gives them.

    Raises:
        OutputError: one line, prefixed with the option's name (e.g. "--plot: out/ is a directory ...").
    """
    from grounding_agent.errors import OutputError
    from grounding_agent.io import check_output_path as check
    from grounding_agent.io import refuse_inputs

    named = [s if isinstance(s, tuple) else ("an input of this command", s) for s in inputs]
    refuse_inputs([(option, path)], named)  # first: a link to the video is "the input video", not "a link"
    prefix = f"{option}: " if option else ""
    try:
        return check(path)
    except OutputError as exc:
        raise OutputError(f"{prefix}{exc}") from None


# Options that name a file a command reads: (argparse dest, what it is). An output must not be one of them.
_INPUT_OPTIONS = (
    ("video", "the input video"),
    ("transcript", "the --transcript file"),
    ("prior_train", "the --prior-train file"),
    ("gt", "the --gt file"),
    ("pred", "the --pred file"),
    ("durations", "the --durations file"),
    ("config", "the config file"),
)


def command_inputs(args: argparse.Namespace) -> list[tuple[str, Any]]:
    """The files this command reads, as (what it is, path) pairs for `grounding_agent.io.refuse_inputs`."""
    return [(what, getattr(args, dest)) for dest, what in _INPUT_OPTIONS if getattr(args, dest, None)]


def check_plot_path(path: Any, option: str) -> None:
    """Refuse, before any work, a plot file whose suffix matplotlib cannot write (`--timeline t.txt`).

    Raises:
        OutputError: one line naming the formats matplotlib writes.
    """
    from matplotlib.backend_bases import FigureCanvasBase  # only when a plot is asked for

    from grounding_agent.errors import OutputError

    formats = FigureCanvasBase.get_supported_filetypes()
    suffix = Path(path).suffix.lower().lstrip(".")
    if suffix and suffix not in formats:
        raise OutputError(
            f"{option}: cannot draw a .{suffix[:20]} file; name it .png (or {', '.join(sorted(formats))})"
        )


# --- argparse validators ---------------------------------------------------------------------------------


def _int(text: str) -> int:
    if len(text.strip()) > 18:  # int() of thousands of digits is slow, and no count needs 19 digits
        raise argparse.ArgumentTypeError(f"must be a whole number, got {len(text.strip())} digits")
    try:
        return int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"must be a whole number, got {text!r}") from None


def finite_float(text: str) -> float:
    """A real number: 'nan', 'inf' and words are refused."""
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"must be a number, got {text!r}") from None
    if not math.isfinite(value):
        raise argparse.ArgumentTypeError(f"must be a finite number, got {text!r}")
    return value


def positive_float(text: str) -> float:
    """A finite number > 0 (seconds, rates)."""
    value = finite_float(text)
    if value <= 0:
        raise argparse.ArgumentTypeError(f"must be > 0, got {text!r}")
    return value


def nonneg_float(text: str) -> float:
    """A finite number >= 0."""
    value = finite_float(text)
    if value < 0:
        raise argparse.ArgumentTypeError(f"must be >= 0, got {text!r}")
    return value


def unit_float(text: str) -> float:
    """A finite number in [0, 1] (IoU thresholds, fractions)."""
    value = finite_float(text)
    if not 0.0 <= value <= 1.0:
        raise argparse.ArgumentTypeError(f"must be between 0 and 1, got {text!r}")
    return value


def positive_int(text: str) -> int:
    """A whole number >= 1 (counts: top-k, concurrency, frames)."""
    value = _int(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be >= 1, got {text!r}")
    return value


def _limited(check, *args: Any) -> Any:
    """A `defaults.LIMITS` check as an argparse error (one line naming the option)."""
    from grounding_agent.errors import ConfigError

    try:
        return check(*args)
    except ConfigError as exc:
        raise argparse.ArgumentTypeError(str(exc).removeprefix("value ")) from None


def top_k_int(text: str) -> int:
    """A count of moments: 1 to `LIMITS.max_top_k`."""
    return _limited(LIMITS.check_count, positive_int(text), "value")


def frames_int(text: str) -> int:
    """A count of frames: 1 to `LIMITS.max_frames`."""
    return _limited(LIMITS.check_count, positive_int(text), "value", LIMITS.max_frames)


def fps_float(text: str) -> float:
    """A sampling rate: > 0 and at most `LIMITS.max_fps`."""
    return _limited(LIMITS.check_fps, positive_float(text), "value")


def nonneg_int(text: str) -> int:
    """A whole number >= 0."""
    value = _int(text)
    if value < 0:
        raise argparse.ArgumentTypeError(f"must be >= 0, got {text!r}")
    return value


def port(text: str) -> int:
    """A TCP port: 0 (any free port) to 65535."""
    value = _int(text)
    if not 0 <= value <= 65535:
        raise argparse.ArgumentTypeError(f"must be a port 0-65535 (0 = any free port), got {text!r}")
    return value


def text_arg(text: str) -> str:
    """Free text (a query): non-empty and valid Unicode.

    A terminal that is not UTF-8 hands Python undecodable bytes as lone surrogates; no tokenizer or JSON
    writer can take them, so they are refused here, saying how to fix it.
    """
    try:
        text.encode("utf-8")
    except UnicodeEncodeError as exc:
        raise argparse.ArgumentTypeError(
            f"is not valid UTF-8 (undecodable byte at position {exc.start}): type it in a UTF-8 terminal "
            "(e.g. LANG=C.UTF-8)"
        ) from None
    if not text.strip():
        raise argparse.ArgumentTypeError("is empty: give a sentence")
    return _limited(LIMITS.check_text, text, "value")
