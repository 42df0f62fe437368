"""Prediction files: QVHighlights-submission-shaped jsonl read into `Prediction`s, checked line by line."""

from __future__ import annotations

import math
from pathlib import Path

from grounding_agent.benchmarks.reading import check_qid, read_jsonl
from grounding_agent.errors import DatasetError
from grounding_agent.types import Prediction


def _is_number(x: object) -> bool:
    # bool is an int in Python: `[true, 5]` would read as the window [1, 5].
    return isinstance(x, (int, float)) and not isinstance(x, bool)


def _check_windows(row: dict, where: str) -> None:
    """The raw windows, before `Prediction` converts them: each a scorable [start_s, end_s, score]."""
    if "pred_relevant_windows" not in row:
        raise DatasetError(
            f"{where}: no pred_relevant_windows; write [[start_s, end_s, score], ...] ([] for no answer)"
        )
    windows = row["pred_relevant_windows"]
    if not isinstance(windows, list):
        raise DatasetError(f"{where}: pred_relevant_windows must be a list of [start_s, end_s, score]")
    for w in windows:
        if not isinstance(w, list) or len(w) != 3 or not all(_is_number(x) for x in w):
            raise DatasetError(
                f"{where}: windows must be [start_s, end_s, score] of 3 numbers, got {w!r:.80}"
            )
        if not all(math.isfinite(x) for x in w):
            raise DatasetError(f"{where}: windows must be finite [start_s, end_s, score], got {w}")
        if w[0] < 0 or w[0] > w[1]:
            raise DatasetError(
                f"{where}: window {w[:2]} is {'negative' if w[0] < 0 else 'reversed'}; "
                "write [start_s, end_s, score] with 0 <= start_s <= end_s"
            )


def _check_prediction(pred: Prediction, where: str) -> None:
    check_qid(pred.qid, where)
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
        DatasetError: malformed lines, a line without `qid` or `pred_relevant_windows`, windows that are
            not [start_s, end_s, score] numbers with 0 <= start_s <= end_s, bad saliency, or a qid twice.
    """
    path = Path(path)
    out: dict[int | str, Prediction] = {}
    for lineno, row in read_jsonl(path):
        where = f"{path}:{lineno}"
        _check_windows(row, where)
        try:
            pred = Prediction.from_dict(row)
        except (KeyError, TypeError, ValueError) as exc:
            raise DatasetError(f"{where}: not a prediction ({type(exc).__name__}: {exc})") from None
        _check_prediction(pred, where)
        if pred.qid in out:
            raise DatasetError(f"{where}: qid {pred.qid!r} appears twice; keep one line per query")
        out[pred.qid] = pred
    return out
