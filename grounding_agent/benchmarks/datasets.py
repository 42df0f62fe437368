"""Benchmark annotations in one schema (`Annotation`), and prediction files.

Adapters (`DATASETS`):
- Charades-STA: TALL txt lines `VID start end##sentence` plus the Charades csv `length` column as the
  video duration; `qid` is the 0-based line index in the txt (the convention of published prediction files).
  A moment_detr-style jsonl (Lighthouse's `charades_test_release.jsonl`, its own qids) also loads.
- QVHighlights: moment_detr jsonl (`qid, query, vid, duration, relevant_windows, relevant_clip_ids,
  saliency_scores`), val or the test file with released GT.
- ActivityNet Captions: `val_1.json` / `val_2.json` (`{vid: {duration, timestamps: [[s, e]...],
  sentences: [...]}}`, seconds); `qid` is the 0-based running index over (video, sentence) in file order.
- TACoS: the common json (2D-TAN's `{video.avi: {num_frames, fps, timestamps: [[start_frame,
  end_frame]...], sentences}}`); times are frames / fps, the video id drops the extension; qids as above.

Ground-truth handling is explicit (`GTPolicy`); the default matches the community: a GT end past the
video's duration is clipped to it (2D-TAN's published numbers only reproduce with clipping) and
inverted lines (start >= end) are dropped with a logged count. Non-finite times, duplicate qids, bool or
non-scalar qids, and malformed saliency annotations are errors: they would change the metrics silently.
"""

from __future__ import annotations

import csv
import io
import json
import logging
import math
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from grounding_agent.defaults import CLIP_LEN_S
from grounding_agent.errors import DatasetError
from grounding_agent.types import Prediction

log = logging.getLogger(__name__)

CLIP_LENGTH_S = CLIP_LEN_S  # QVHighlights saliency is annotated per 2-second clip


@dataclass(frozen=True)
class Annotation:
    """One query with its ground truth.

    Attributes:
        qid: query id, unique in the dataset (int or str, never bool).
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


# --- reading files ---------------------------------------------------------------------------------


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


def _wrong_format_hint(path: Path, expected: str) -> str:
    """' — it looks like a X file; pass --dataset X' when the content is another known format."""
    found = sniff(path)
    if found and found != expected:
        return f"; it looks like a {found} file: pass --dataset {found}"
    return ""


def _finite(value: Any, what: str, where: str) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float, str)):
        raise DatasetError(f"{where}: {what} must be a number, got {value!r}")
    try:
        out = float(value)
    except ValueError:
        raise DatasetError(f"{where}: {what} must be a number, got {value!r}") from None
    if not math.isfinite(out):
        raise DatasetError(f"{where}: {what} is {out}; GT times must be finite numbers")
    return out


def _qid(value: Any, where: str) -> int | str:
    # bool is an int in Python: `"qid": true` would silently match qid 1.
    if isinstance(value, bool) or not isinstance(value, (int, str)):
        raise DatasetError(f"{where}: qid must be an integer or a string, got {value!r}")
    return value


def _fix_window(
    start_s: float, end_s: float, duration_s: float, policy: GTPolicy, stats: dict[str, int], where: str
) -> tuple[float, float] | None:
    """The window after the policy, or None when it is dropped."""
    start_s, end_s = _finite(start_s, "GT start", where), _finite(end_s, "GT end", where)
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


def _duration(value: Any, where: str) -> float:
    duration_s = _finite(value, "duration", where)
    if duration_s <= 0:
        raise DatasetError(f"{where}: duration must be > 0 s, got {duration_s}")
    return duration_s


def _report(name: str, stats: dict[str, int]) -> None:
    if stats.get("dropped_inverted"):
        log.warning("%s: dropped %d inverted GT windows (start >= end)", name, stats["dropped_inverted"])
    if stats.get("dropped_outside"):
        log.warning(
            "%s: dropped %d GT windows starting after the video's end", name, stats["dropped_outside"]
        )
    if stats.get("clipped_end"):
        log.info("%s: clipped %d GT ends to the video duration", name, stats["clipped_end"])


def _unique(annotations: list[Annotation], path: Path) -> list[Annotation]:
    """The annotations, or an error naming a qid that appears twice (it would be counted twice)."""
    seen: set[int | str] = set()
    for ann in annotations:
        if ann.qid in seen:
            raise DatasetError(f"{path}: qid {ann.qid!r} appears twice; keep one annotation per query")
        seen.add(ann.qid)
    return annotations


# --- Charades-STA ----------------------------------------------------------------------------------


def charades_durations(csv_path: Path) -> dict[str, float]:
    """Video id -> `length` (seconds) from a Charades_v1_*.csv."""
    text = read_text(csv_path, "Charades_v1_<split>.csv with video lengths (--durations)")
    try:
        rows = list(csv.DictReader(io.StringIO(text, newline="")))
        return {row["id"]: _duration(row["length"], f"{csv_path}: video {row['id']}") for row in rows}
    except (KeyError, ValueError, csv.Error) as exc:
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
    lines = read_text(txt_path, "Charades-STA txt (--gt)").splitlines()  # first: a missing --gt is named
    lengths = charades_durations(Path(durations) if durations else default_charades_csv(txt_path))
    stats: dict[str, int] = {}
    out: list[Annotation] = []
    for qid, line in enumerate(lines):
        where = f"{txt_path}:{qid + 1}"
        try:
            head, sentence = line.split("##", 1)
            vid, start, end = head.split()
        except ValueError:
            raise DatasetError(
                f"{where}: expected 'VID start end##sentence', got {line[:80]!r}"
                + _wrong_format_hint(txt_path, "charades-sta")
            ) from None
        if vid not in lengths:
            raise DatasetError(f"{where}: video {vid} has no length in the durations csv; wrong split csv?")
        window = _fix_window(start, end, lengths[vid], policy, stats, where)
        if window is not None:
            out.append(Annotation(qid, vid, sentence.strip(), lengths[vid], (window,)))
    _report(txt_path.name, stats)
    return Dataset("charades-sta", out, stats)


# --- QVHighlights ----------------------------------------------------------------------------------


def _saliency(
    row: dict[str, Any], duration_s: float, where: str
) -> tuple[tuple[int, ...], tuple[tuple[int, ...], ...]]:
    """(relevant_clip_ids, saliency_scores), checked: int ids inside the video, one row of int scores
    per id, every row as long as the first."""
    ids, scores = row.get("relevant_clip_ids", []), row.get("saliency_scores", [])
    if not isinstance(ids, list) or not isinstance(scores, list):
        raise DatasetError(f"{where}: relevant_clip_ids and saliency_scores must be lists")
    num_clips = int(duration_s / CLIP_LENGTH_S)
    clip_ids = []
    for c in ids:
        if isinstance(c, bool) or not isinstance(c, int) or not 0 <= c < num_clips:
            raise DatasetError(
                f"{where}: clip id {c!r} is not an integer in 0..{num_clips - 1} "
                f"({duration_s} s of {CLIP_LENGTH_S:g}-second clips)"
            )
        clip_ids.append(c)
    if scores and len(scores) != len(clip_ids):
        raise DatasetError(f"{where}: {len(scores)} saliency rows for {len(clip_ids)} relevant_clip_ids")
    out = []
    for s in scores:
        ok = isinstance(s, list) and all(
            isinstance(x, int) and not isinstance(x, bool) and 0 <= x <= 4 for x in s
        )
        if not ok:
            raise DatasetError(f"{where}: saliency scores must be lists of integers 0..4, got {s!r}")
        if len(s) != len(scores[0]) or not s:
            raise DatasetError(f"{where}: ragged saliency scores (rows of {len(scores[0])} and {len(s)})")
        out.append(tuple(s))
    return tuple(clip_ids), tuple(out)


def _qvh_annotation(
    row: dict[str, Any], policy: GTPolicy, stats: dict[str, int], where: str
) -> Annotation | None:
    for key in ("qid", "vid", "query", "duration"):
        if key not in row:
            raise DatasetError(f"{where}: not a QVHighlights annotation (no {key!r})")
    duration_s = _duration(row["duration"], where)
    raw_windows = row.get("relevant_windows", [])
    if not isinstance(raw_windows, list) or not all(isinstance(w, list) and len(w) == 2 for w in raw_windows):
        raise DatasetError(f"{where}: relevant_windows must be [[start_s, end_s], ...], got {raw_windows!r}")
    windows = [_fix_window(s, e, duration_s, policy, stats, where) for s, e in raw_windows]
    if raw_windows and not any(windows):
        return None  # every window was inverted or outside the video, and dropped
    if (
        not isinstance(row["query"], str)
        or not isinstance(row["vid"], (str, int))
        or isinstance(row["vid"], bool)
    ):
        raise DatasetError(f"{where}: query must be a string and vid a string")
    clip_ids, saliency = _saliency(row, duration_s, where)
    return Annotation(
        qid=_qid(row["qid"], where),
        vid=str(row["vid"]),
        query=row["query"],
        duration_s=duration_s,
        windows_s=tuple(w for w in windows if w is not None),
        relevant_clip_ids=clip_ids,
        saliency_scores=saliency,
    )


def load_qvhighlights(jsonl_path: str | Path, policy: GTPolicy = GTPolicy()) -> Dataset:
    """QVHighlights (moment_detr jsonl) annotations; a file without GT yields empty windows."""
    jsonl_path = Path(jsonl_path)
    stats: dict[str, int] = {}
    out: list[Annotation] = []
    for lineno, row in _read_jsonl(jsonl_path, "qvhighlights"):
        ann = _qvh_annotation(row, policy, stats, f"{jsonl_path}:{lineno}")
        if ann is not None:
            out.append(ann)
    _report(jsonl_path.name, stats)
    return Dataset("qvhighlights", _unique(out, jsonl_path), stats)


# --- ActivityNet Captions and TACoS (one json object keyed by video) --------------------------------


def _read_json_object(path: Path, expected: str) -> dict[str, Any]:
    text = read_text(path, f"{expected} json (--gt)")
    try:
        data = json.loads(text)
    except json.JSONDecodeError as exc:
        hint = _wrong_format_hint(path, expected) or "; is the file truncated?"
        raise DatasetError(f"{path}: not JSON ({exc.msg} at line {exc.lineno}){hint}") from None
    if not isinstance(data, dict) or not all(isinstance(v, dict) for v in data.values()):
        raise DatasetError(
            f"{path}: expected one JSON object {{video: {{timestamps, sentences, ...}}}}"
            + _wrong_format_hint(path, expected)
        )
    return data


def _per_video(
    path: Path,
    name: str,
    videos: Iterable[tuple[str, float, list[Any], list[Any], float]],
    policy: GTPolicy,
) -> Dataset:
    """Annotations from (vid, duration_s, timestamps, sentences, seconds per time unit) per video."""
    stats: dict[str, int] = {}
    out: list[Annotation] = []
    qid = 0
    for vid, duration_s, timestamps, sentences, unit_s in videos:
        where = f"{path}: video {vid}"
        if (
            not isinstance(timestamps, list)
            or not isinstance(sentences, list)
            or len(timestamps) != len(sentences)
        ):
            raise DatasetError(f"{where}: needs equally long 'timestamps' and 'sentences' lists")
        for ts, sentence in zip(timestamps, sentences):
            if not isinstance(ts, list) or len(ts) != 2 or not isinstance(sentence, str):
                raise DatasetError(f"{where}: timestamp {ts!r} / sentence {sentence!r} malformed")
            start, end = (_finite(t, "GT time", where) * unit_s for t in ts)
            window = _fix_window(start, end, duration_s, policy, stats, where)
            if window is not None:
                out.append(Annotation(qid, vid, sentence.strip(), duration_s, (window,)))
            qid += 1
    _report(path.name, stats)
    return Dataset(name, out, stats)


def load_activitynet_captions(json_path: str | Path, policy: GTPolicy = GTPolicy()) -> Dataset:
    """ActivityNet Captions grounding annotations (`val_1.json`, `val_2.json`, `train.json`)."""
    path = Path(json_path)
    data = _read_json_object(path, "activitynet-captions")

    def videos():
        for vid, v in data.items():
            if "duration" not in v:
                raise DatasetError(
                    f"{path}: video {vid} has no 'duration'"
                    + _wrong_format_hint(path, "activitynet-captions")
                )
            yield (
                vid,
                _duration(v["duration"], f"{path}: video {vid}"),
                v.get("timestamps"),
                v.get("sentences"),
                1.0,
            )

    return _per_video(path, "activitynet-captions", videos(), policy)


def load_tacos(json_path: str | Path, policy: GTPolicy = GTPolicy()) -> Dataset:
    """TACoS annotations in the common json (times in frames; duration = num_frames / fps)."""
    path = Path(json_path)
    data = _read_json_object(path, "tacos")

    def videos():
        for key, v in data.items():
            where = f"{path}: video {key}"
            if "num_frames" not in v or "fps" not in v:
                raise DatasetError(
                    f"{where}: needs 'num_frames' and 'fps'" + _wrong_format_hint(path, "tacos")
                )
            fps = _duration(v["fps"], where)  # > 0 and finite, like a duration
            yield (
                Path(key).stem,
                _duration(v["num_frames"], where) / fps,
                v.get("timestamps"),
                v.get("sentences"),
                1.0 / fps,
            )

    return _per_video(path, "tacos", videos(), policy)


# --- registry --------------------------------------------------------------------------------------


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
    "activitynet-captions": load_activitynet_captions,
    "tacos": load_tacos,
}


# --- predictions -----------------------------------------------------------------------------------


def _read_jsonl(path: Path, expected: str | None = None) -> list[tuple[int, dict[str, Any]]]:
    text = read_text(path, "jsonl file")
    rows = []
    for lineno, line in enumerate(text.splitlines(), start=1):
        if not line.strip():
            continue
        try:
            row = json.loads(line)
        except json.JSONDecodeError as exc:
            hint = (_wrong_format_hint(path, expected) if expected else "") or "; is the file truncated?"
            raise DatasetError(f"{path}:{lineno}: not JSON ({exc.msg}){hint}") from None
        if not isinstance(row, dict):
            raise DatasetError(
                f"{path}:{lineno}: expected a JSON object per line"
                + (_wrong_format_hint(path, expected) if expected else "")
            )
        rows.append((lineno, row))
    return rows


def _check_prediction(pred: Prediction, where: str) -> None:
    _qid(pred.qid, where)
    for w in pred.pred_relevant_windows:
        if len(w) < 2 or not all(math.isfinite(x) for x in w):
            raise DatasetError(f"{where}: windows must be finite [start_s, end_s, score], got {w}")
    sal = pred.pred_saliency_scores
    if sal is not None:
        ok = isinstance(sal, list) and all(
            isinstance(x, (int, float)) and not isinstance(x, bool) and math.isfinite(x) for x in sal
        )
        if not ok:
            raise DatasetError(f"{where}: pred_saliency_scores must be a flat list of finite numbers")


def load_predictions(path: str | Path) -> dict[int | str, Prediction]:
    """qid -> Prediction from a QVHighlights-submission-shaped jsonl.

    Raises:
        DatasetError: malformed lines, a line without `qid`, bad windows or saliency, or a qid twice.
    """
    path = Path(path)
    out: dict[int | str, Prediction] = {}
    for lineno, row in _read_jsonl(path):
        where = f"{path}:{lineno}"
        try:
            pred = Prediction.from_dict(row)
        except (KeyError, TypeError, ValueError) as exc:
            raise DatasetError(f"{where}: not a prediction ({type(exc).__name__}: {exc})") from None
        _check_prediction(pred, where)
        if pred.qid in out:
            raise DatasetError(f"{where}: qid {pred.qid!r} appears twice; keep one line per query")
        out[pred.qid] = pred
    return out
