"""Benchmark annotations in one schema (`Annotation`), and prediction files.

Adapters:
- Charades-STA: TALL txt lines `VID start end##sentence` plus the Charades csv `length` column as the
  video duration; `qid` is the 0-based line index in the txt (the convention of published prediction files).
  A moment_detr-style jsonl (Lighthouse's `charades_test_release.jsonl`, its own qids) also loads.
- QVHighlights: moment_detr jsonl (`qid, query, vid, duration, relevant_windows, relevant_clip_ids,
  saliency_scores`), val or the test file with released GT.

Ground-truth handling is explicit (`GTPolicy`); the default matches the community: a GT end past the
video's duration is clipped to it (2D-TAN's published numbers only reproduce with clipping) and
inverted lines (start >= end) are dropped with a logged count.
"""

from __future__ import annotations

import csv
import json
import logging
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from grounding_agent.errors import DatasetError
from grounding_agent.types import Prediction

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Annotation:
    """One query with its ground truth.

    Attributes:
        qid: query id, unique in the dataset (int for both benchmarks).
        vid: video id (file stem under the videos folder).
        query: the sentence.
        duration_s: the video's duration as the dataset states it.
        windows_s: GT (start_s, end_s) windows.
        relevant_clip_ids: QVHighlights: indices of annotated 2-second clips.
        saliency_scores: QVHighlights: per annotated clip, one 0..4 score per annotator.
    """

    qid: int | str
    vid: str
    query: str
    duration_s: float
    windows_s: tuple[tuple[float, float], ...]
    relevant_clip_ids: tuple[int, ...] = ()
    saliency_scores: tuple[tuple[int, ...], ...] = ()

    def with_windows(self, windows_s: tuple[tuple[float, float], ...]) -> Annotation:
        return replace(self, windows_s=windows_s)


@dataclass(frozen=True)
class GTPolicy:
    """How to treat imperfect ground truth.

    Attributes:
        clip_to_duration: clip GT ends past the stated duration to it (community default); windows
            starting after the end are dropped.
        drop_inverted: drop windows with start >= end (and their query if none is left); False raises.
    """

    clip_to_duration: bool = True
    drop_inverted: bool = True


@dataclass
class Dataset:
    """Annotations of one split, with counts of what the GT policy changed."""

    name: str
    annotations: list[Annotation]
    stats: dict[str, int] = field(default_factory=dict)

    def __len__(self) -> int:
        return len(self.annotations)


def _fix_window(
    start_s: float, end_s: float, duration_s: float, policy: GTPolicy, stats: dict[str, int], where: str
) -> tuple[float, float] | None:
    """The window after the policy, or None when it is dropped."""
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


def _report(name: str, stats: dict[str, int]) -> None:
    if stats.get("dropped_inverted"):
        log.warning("%s: dropped %d inverted GT windows (start >= end)", name, stats["dropped_inverted"])
    if stats.get("dropped_outside"):
        log.warning(
            "%s: dropped %d GT windows starting after the video's end", name, stats["dropped_outside"]
        )
    if stats.get("clipped_end"):
        log.info("%s: clipped %d GT ends to the video duration", name, stats["clipped_end"])


def charades_durations(csv_path: Path) -> dict[str, float]:
    """Video id -> `length` (seconds) from a Charades_v1_*.csv."""
    try:
        with open(csv_path, newline="", encoding="utf-8") as f:
            return {row["id"]: float(row["length"]) for row in csv.DictReader(f)}
    except FileNotFoundError:
        raise DatasetError(
            f"{csv_path}: not found; pass the Charades_v1_<split>.csv with video lengths"
        ) from None
    except (KeyError, ValueError) as exc:
        raise DatasetError(f"{csv_path}: not a Charades csv with 'id' and 'length' columns ({exc})") from None


def default_charades_csv(txt_path: Path) -> Path:
    """charades_sta_test.txt -> Charades_v1_test.csv beside it."""
    split = "train" if "train" in Path(txt_path).name else "test"
    return Path(txt_path).with_name(f"Charades_v1_{split}.csv")


def load_charades_sta(
    txt_path: str | Path, durations: str | Path | None = None, policy: GTPolicy = GTPolicy()
) -> Dataset:
    """Charades-STA annotations.

    Args:
        txt_path: `charades_sta_{train,test}.txt` (TALL format).
        durations: Charades_v1_{split}.csv; default: the one beside `txt_path`.
        policy: GT handling.

    Raises:
        DatasetError: a missing file, a malformed line, or a video without a length.
    """
    txt_path = Path(txt_path)
    lengths = charades_durations(Path(durations) if durations else default_charades_csv(txt_path))
    try:
        lines = txt_path.read_text(encoding="utf-8").splitlines()
    except FileNotFoundError:
        raise DatasetError(f"{txt_path}: not found; pass a charades_sta_<split>.txt") from None
    stats: dict[str, int] = {}
    out: list[Annotation] = []
    for qid, line in enumerate(lines):
        where = f"{txt_path}:{qid + 1}"
        try:
            head, sentence = line.split("##", 1)
            vid, start, end = head.split()
            start_s, end_s = float(start), float(end)
        except ValueError:
            raise DatasetError(f"{where}: expected 'VID start end##sentence', got {line[:80]!r}") from None
        if vid not in lengths:
            raise DatasetError(f"{where}: video {vid} has no length in the durations csv; wrong split csv?")
        window = _fix_window(start_s, end_s, lengths[vid], policy, stats, where)
        if window is not None:
            out.append(Annotation(qid, vid, sentence.strip(), lengths[vid], (window,)))
    _report(txt_path.name, stats)
    return Dataset("charades-sta", out, stats)


def load_qvhighlights(jsonl_path: str | Path, policy: GTPolicy = GTPolicy()) -> Dataset:
    """QVHighlights (moment_detr jsonl) annotations; a file without GT yields empty windows."""
    jsonl_path = Path(jsonl_path)
    stats: dict[str, int] = {}
    out: list[Annotation] = []
    for lineno, row in _read_jsonl(jsonl_path):
        where = f"{jsonl_path}:{lineno}"
        try:
            duration_s = float(row["duration"])
            windows = [
                _fix_window(float(s), float(e), duration_s, policy, stats, where)
                for s, e in row.get("relevant_windows", [])
            ]
            ann = Annotation(
                qid=row["qid"],
                vid=str(row["vid"]),
                query=str(row["query"]),
                duration_s=duration_s,
                windows_s=tuple(w for w in windows if w is not None),
                relevant_clip_ids=tuple(int(c) for c in row.get("relevant_clip_ids", [])),
                saliency_scores=tuple(tuple(int(x) for x in s) for s in row.get("saliency_scores", [])),
            )
        except (KeyError, TypeError, ValueError) as exc:
            raise DatasetError(
                f"{where}: not a QVHighlights annotation ({type(exc).__name__}: {exc})"
            ) from None
        if row.get("relevant_windows") and not ann.windows_s:
            continue  # every window was inverted and dropped
        out.append(ann)
    _report(jsonl_path.name, stats)
    return Dataset("qvhighlights", out, stats)


def load_dataset(
    name: str, gt_path: str | Path, durations: str | Path | None = None, policy: GTPolicy = GTPolicy()
) -> Dataset:
    """Load `gt_path` with the adapter registered as `name` (see `DATASETS`)."""
    if name not in DATASETS:
        raise DatasetError(f"unknown dataset {name!r}; choose one of {sorted(DATASETS)}")
    if (
        name == "charades-sta" and Path(gt_path).suffix == ".jsonl"
    ):  # moment_detr-style (Lighthouse's release)
        return replace(load_qvhighlights(gt_path, policy), name="charades-sta")
    if name == "charades-sta":
        return load_charades_sta(gt_path, durations, policy)
    return DATASETS[name](gt_path, policy)


DATASETS: dict[str, Callable[..., Dataset]] = {
    "charades-sta": load_charades_sta,
    "qvhighlights": load_qvhighlights,
}


# --- predictions -----------------------------------------------------------------------------------


def _read_jsonl(path: Path) -> list[tuple[int, dict[str, Any]]]:
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise DatasetError(f"{path}: not found; check the path") from None
    rows = []
    for lineno, line in enumerate(text.splitlines(), start=1):
        if not line.strip():
            continue
        try:
            row = json.loads(line)
        except json.JSONDecodeError as exc:
            raise DatasetError(f"{path}:{lineno}: not JSON ({exc.msg}); is the file truncated?") from None
        if not isinstance(row, dict):
            raise DatasetError(f"{path}:{lineno}: expected a JSON object per line")
        rows.append((lineno, row))
    return rows


def load_predictions(path: str | Path) -> dict[int | str, Prediction]:
    """qid -> Prediction from a QVHighlights-submission-shaped jsonl.

    Raises:
        DatasetError: malformed lines, a line without `qid`, bad windows, or a qid twice.
    """
    path = Path(path)
    out: dict[int | str, Prediction] = {}
    for lineno, row in _read_jsonl(path):
        try:
            pred = Prediction.from_dict(row)
            bad = [w for w in pred.pred_relevant_windows if len(w) < 2]
        except (KeyError, TypeError, ValueError) as exc:
            raise DatasetError(f"{path}:{lineno}: not a prediction ({type(exc).__name__}: {exc})") from None
        if bad:
            raise DatasetError(f"{path}:{lineno}: windows must be [start_s, end_s, score], got {bad[0]}")
        if pred.qid in out:
            raise DatasetError(f"{path}:{lineno}: qid {pred.qid!r} appears twice; keep one line per query")
        out[pred.qid] = pred
    return out
