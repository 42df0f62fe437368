"""QVHighlights: moment_detr jsonl (`qid, query, vid, duration, relevant_windows, relevant_clip_ids,
saliency_scores`), val or the test file with released GT; saliency is annotated per 2-second clip."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from grounding_agent.benchmarks.annotations import Annotation, Dataset, GTPolicy
from grounding_agent.benchmarks.reading import (
    check_qid,
    fix_window,
    positive_duration,
    read_jsonl,
    report_changes,
    unique_qids,
)
from grounding_agent.defaults import CLIP_LEN_S
from grounding_agent.errors import DatasetError

CLIP_LENGTH_S = CLIP_LEN_S  # QVHighlights saliency is annotated per 2-second clip


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
    duration_s = positive_duration(row["duration"], where)
    raw_windows = row.get("relevant_windows", [])
    if not isinstance(raw_windows, list) or not all(isinstance(w, list) and len(w) == 2 for w in raw_windows):
        raise DatasetError(f"{where}: relevant_windows must be [[start_s, end_s], ...], got {raw_windows!r}")
    windows = [fix_window(s, e, duration_s, policy, stats, where) for s, e in raw_windows]
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
        qid=check_qid(row["qid"], where),
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
    for lineno, row in read_jsonl(jsonl_path, "qvhighlights"):
        ann = _qvh_annotation(row, policy, stats, f"{jsonl_path}:{lineno}")
        if ann is not None:
            out.append(ann)
    report_changes(jsonl_path.name, stats)
    return Dataset("qvhighlights", unique_qids(out, jsonl_path), stats)
