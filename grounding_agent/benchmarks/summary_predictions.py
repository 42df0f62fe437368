"""Summary predictions: a jsonl of per-frame importance scores, one line per video, in either shape

    {"vid": "AwmHb44_ouw", "frame_scores": [0.1, 0.1, ...]}             one score per annotated frame
    {"vid": "AwmHb44_ouw", "timestamps_s": [0, 0.5, ...], "scores": [...]}   held to frames

A timestamped score holds until the next timestamp: frame j (at j / fps seconds) takes the score of the last
timestamp at or before it; frames before the first timestamp take the first score.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from grounding_agent.benchmarks.reading import read_jsonl
from grounding_agent.benchmarks.summaries import SummaryAnnotation
from grounding_agent.errors import DatasetError

__all__ = ["hold_to_frames", "load_summary_predictions"]


def _numbers(row: dict, key: str, where: str) -> np.ndarray:
    values = row[key]
    # bool is an int in Python, and numpy would read "0.5" as 0.5: only JSON numbers are scores.
    if not isinstance(values, list) or not all(type(x) in (int, float) for x in values):
        raise DatasetError(f"{where}: {key} must be a list of numbers")
    out = np.asarray(values, dtype=np.float64)
    if not np.isfinite(out).all():
        bad = out[~np.isfinite(out)][0]
        raise DatasetError(f"{where}: {key} holds {bad}; write finite numbers (NaN and inf are no scores)")
    return out


def hold_to_frames(timestamps_s: np.ndarray, scores: np.ndarray, nframes: int, fps: float) -> np.ndarray:
    """(nframes,) scores: each frame takes the score of the last timestamp at or before its time."""
    frame_s = np.arange(nframes) / fps
    return scores[np.clip(np.searchsorted(timestamps_s, frame_s, side="right") - 1, 0, None)]


def _timed_scores(row: dict, ann: SummaryAnnotation, where: str) -> np.ndarray:
    times, scores = _numbers(row, "timestamps_s", where), _numbers(row, "scores", where)
    if len(times) != len(scores) or not len(times):
        raise DatasetError(
            f"{where}: {len(times)} timestamps_s but {len(scores)} scores; write one score per timestamp"
        )
    if times[0] < 0 or (np.diff(times) <= 0).any():
        raise DatasetError(
            f"{where}: timestamps_s must be >= 0 and strictly increasing (seconds from the start)"
        )
    return hold_to_frames(times, scores, ann.nframes, ann.fps)


def _frame_scores(row: dict[str, Any], ann: SummaryAnnotation, where: str) -> np.ndarray:
    has_frames, has_times = "frame_scores" in row, "timestamps_s" in row or "scores" in row
    if has_frames == has_times:
        raise DatasetError(
            f"{where}: write either frame_scores (one per frame) or timestamps_s with scores"
            + (", not both" if has_frames else "")
        )
    if has_times:
        return _timed_scores(row, ann, where)
    scores = _numbers(row, "frame_scores", where)
    if len(scores) != ann.nframes:
        raise DatasetError(
            f"{where}: {len(scores)} frame_scores for {ann.vid}, which has {ann.nframes} frames; "
            "write one score per frame (or timestamps_s with scores)"
        )
    return scores


def load_summary_predictions(
    path: str | Path, annotations: Sequence[SummaryAnnotation] | Mapping[str, SummaryAnnotation]
) -> dict[str, np.ndarray]:
    """vid -> (nframes,) frame scores, checked against the annotation of each video.

    Raises:
        DatasetError: not jsonl, a line without a string `vid`, a vid the annotations lack or seen twice,
            scores that are not finite numbers, frame_scores of the wrong length, timestamps that do not
            increase — one line naming the file and line.
    """
    path = Path(path)
    by_vid = annotations if isinstance(annotations, Mapping) else {a.vid: a for a in annotations}
    out: dict[str, np.ndarray] = {}
    for lineno, row in read_jsonl(path):
        where = f"{path}:{lineno}"
        vid = row.get("vid")
        if not isinstance(vid, str):
            raise DatasetError(f"{where}: vid must be the video id as a string, got {vid!r:.60}")
        if vid not in by_vid:
            raise DatasetError(
                f"{where}: vid {vid!r:.60} is not in the annotations ({len(by_vid)} videos); "
                "is this the right --dataset / --gt?"
            )
        if vid in out:
            raise DatasetError(f"{where}: vid {vid!r} appears twice; keep one line per video")
        out[vid] = _frame_scores(row, by_vid[vid], where)
    if not out:
        raise DatasetError(f"{path}: no predictions; write one JSON line per video")
    return out
