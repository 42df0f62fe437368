"""Reading annotation files: UTF-8 text, JSON and JSON-lines, sniffing which format a file is, and the
checks every reader applies (finite times, scalar qids, positive durations, the GT policy on a window,
unique qids), so a malformed file fails naming the path and line instead of changing the metrics."""

from __future__ import annotations

import json
import logging
import math
from pathlib import Path
from typing import Any

from grounding_agent.benchmarks.annotations import Annotation, GTPolicy
from grounding_agent.defaults import EVAL
from grounding_agent.errors import DatasetError

log = logging.getLogger("grounding_agent.benchmarks.datasets")  # the name its GT-policy counts always had


def read_text(path: Path, what: str = "annotation file") -> str:
    """The file's text (UTF-8, BOM tolerated).

    Raises:
        DatasetError: missing, a folder, unreadable, or not UTF-8 — naming the path.
    """
    try:
        data = Path(path).read_bytes()
    except FileNotFoundError:
        raise DatasetError(f"{path}: not found; check the {what} path") from None
    except IsADirectoryError:
        raise DatasetError(f"{path}: is a folder; pass the {what} itself") from None
    except OSError as exc:
        raise DatasetError(f"{path}: cannot read the {what} ({exc.strerror or exc})") from None
    try:
        return data.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        raise DatasetError(
            f"{path}: not UTF-8 (byte {exc.start}: {data[exc.start : exc.start + 1]!r}; Latin-1?); "
            "re-save it as UTF-8 (iconv -f latin1 -t utf-8)"
        ) from None


class _HugeNumber(ValueError):
    """A JSON number too long to be a time, a score or an id."""


def _bounded_number(kind: type) -> Any:
    def parse(text: str) -> Any:
        # Python's int() refuses past 4300 digits with a ValueError; float() turns 400 digits into inf.
        if len(text) > EVAL.max_json_number_chars:
            raise _HugeNumber(f"a number of {len(text)} characters ({text[:12]}...)")
        return kind(text)

    return parse


def loads_json(text: str, where: str, max_chars: int | None = EVAL.max_json_line_chars) -> Any:
    """`json.loads` that refuses, as one `DatasetError` naming `where`, what the stdlib turns into a
    traceback or a silent infinity: numbers longer than `EVAL.max_json_number_chars`, nesting deeper than
    the interpreter's recursion limit, a text longer than `max_chars` (None: a whole file, no bound).

    Raises:
        json.JSONDecodeError: not JSON (callers add their own hint).
        DatasetError: the bounds above.
    """
    if max_chars is not None and len(text) > max_chars:
        raise DatasetError(
            f"{where}: {len(text)} characters in one JSON line (at most {max_chars}); is this the right file?"
        )
    try:
        return json.loads(text, parse_int=_bounded_number(int), parse_float=_bounded_number(float))
    except _HugeNumber as exc:
        raise DatasetError(f"{where}: {exc}; write times, scores and ids as ordinary numbers") from None
    except RecursionError:
        raise DatasetError(f"{where}: JSON nested too deeply to be a prediction or annotation") from None


def sniff(path: Path) -> str | None:
    """Which DATASETS format the file looks like (by its content), or None."""
    try:
        with open(path, "rb") as f:
            head = f.read(4096).decode("utf-8", errors="replace").lstrip("\ufeff")
    except OSError:
        return None
    first = next((line for line in head.splitlines() if line.strip()), "")
    if "##" in first and not first.lstrip().startswith("{"):
        return "charades-sta"
    stripped = first.lstrip()
    if stripped.startswith("{") and '"qid"' in first:
        return "qvhighlights"
    if stripped.startswith("{"):
        if '"num_frames"' in head:
            return "tacos"
        if '"timestamps"' in head and '"duration"' in head:
            return "activitynet-captions"
    return None


def wrong_format_hint(path: Path, expected: str) -> str:
    """' — it looks like a X file; pass --dataset X' when the content is another known format."""
    found = sniff(path)
    if found and found != expected:
        return f"; it looks like a {found} file: pass --dataset {found}"
    return ""


def finite(value: Any, what: str, where: str) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float, str)):
        raise DatasetError(f"{where}: {what} must be a number, got {value!r}")
    try:
        out = float(value)
    except ValueError:
        raise DatasetError(f"{where}: {what} must be a number, got {value!r}") from None
    if not math.isfinite(out):
        raise DatasetError(f"{where}: {what} is {out}; GT times must be finite numbers")
    return out


def check_qid(value: Any, where: str) -> int | str:
    # bool is an int in Python: `"qid": true` would silently match qid 1.
    if isinstance(value, bool) or not isinstance(value, (int, str)):
        raise DatasetError(f"{where}: qid must be an integer or a string, got {value!r}")
    return value


def fix_window(
    start_s: float, end_s: float, duration_s: float, policy: GTPolicy, stats: dict[str, int], where: str
) -> tuple[float, float] | None:
    """The window after the policy, or None when it is dropped."""
    start_s, end_s = finite(start_s, "GT start", where), finite(end_s, "GT end", where)
    if min(start_s, end_s) < 0:  # clipping would hide it; no benchmark has times before the video starts
        raise DatasetError(
            f"{where}: negative GT time ({start_s}, {end_s}); times are seconds from the video's start"
        )
    if start_s >= end_s:
        if not policy.drop_inverted:
            raise DatasetError(
                f"{where}: inverted GT window {start_s} >= {end_s}; fix the file or drop inverted lines"
            )
        stats["dropped_inverted"] = stats.get("dropped_inverted", 0) + 1
        return None
    if policy.clip_to_duration and end_s > duration_s:
        if start_s >= duration_s:  # nothing of it is inside the video
            stats["dropped_outside"] = stats.get("dropped_outside", 0) + 1
            return None
        stats["clipped_end"] = stats.get("clipped_end", 0) + 1
        end_s = duration_s
    return (start_s, end_s)


def positive_duration(value: Any, where: str) -> float:
    duration_s = finite(value, "duration", where)
    if duration_s <= 0:
        raise DatasetError(f"{where}: duration must be > 0 s, got {duration_s}")
    return duration_s


def report_changes(name: str, stats: dict[str, int]) -> None:
    if stats.get("dropped_inverted"):
        log.warning("%s: dropped %d inverted GT windows (start >= end)", name, stats["dropped_inverted"])
    if stats.get("dropped_outside"):
        log.warning(
            "%s: dropped %d GT windows starting after the video's end", name, stats["dropped_outside"]
        )
    if stats.get("clipped_end"):
        log.info("%s: clipped %d GT ends to the video duration", name, stats["clipped_end"])


def unique_qids(annotations: list[Annotation], path: Path) -> list[Annotation]:
    """The annotations, or an error naming a qid that appears twice (it would be counted twice)."""
    seen: set[int | str] = set()
    for ann in annotations:
        if ann.qid in seen:
            raise DatasetError(f"{path}: qid {ann.qid!r} appears twice; keep one annotation per query")
        seen.add(ann.qid)
    return annotations


def read_jsonl(path: Path, expected: str | None = None) -> list[tuple[int, dict[str, Any]]]:
    text = read_text(path, "jsonl file")
    rows = []
    for lineno, line in enumerate(text.splitlines(), start=1):
        if not line.strip():
            continue
        try:
            row = loads_json(line, f"{path}:{lineno}")
        except json.JSONDecodeError as exc:
            hint = (wrong_format_hint(path, expected) if expected else "") or "; is the file truncated?"
            raise DatasetError(f"{path}:{lineno}: not JSON ({exc.msg}){hint}") from None
        if not isinstance(row, dict):
            raise DatasetError(
                f"{path}:{lineno}: expected a JSON object per line"
                + (wrong_format_hint(path, expected) if expected else "")
            )
        rows.append((lineno, row))
    return rows


def read_json_object(path: Path, expected: str) -> dict[str, Any]:
    text = read_text(path, f"{expected} json (--gt)")
    try:
        data = loads_json(text, str(path), max_chars=None)
    except json.JSONDecodeError as exc:
        hint = wrong_format_hint(path, expected) or "; is the file truncated?"
        raise DatasetError(f"{path}: not JSON ({exc.msg} at line {exc.lineno}){hint}") from None
    if not isinstance(data, dict) or not all(isinstance(v, dict) for v in data.values()):
        raise DatasetError(
            f"{path}: expected one JSON object {{video: {{timestamps, sentences, ...}}}}"
            + wrong_format_hint(path, expected)
        )
    return data
