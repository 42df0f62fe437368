"""Scoring a run: parse status per query, the metrics of the selected queries and of their parsed-only
subset with every count beside them, and the per-query rows of `samples.jsonl`."""

from __future__ import annotations

from collections import Counter
from typing import Any

from eval.videos import VideoFinder
from grounding_agent.benchmarks.datasets import Annotation
from grounding_agent.benchmarks.metrics import METRICS, brief
from grounding_agent.types import Prediction
from grounding_agent.utils.temporal import tiou_matrix


def _steps(row: dict[str, Any]) -> list[dict[str, Any]]:
    return [s for s in row.get("steps") or [] if isinstance(s, dict)]


def row_failures(row: dict[str, Any]) -> list[Any]:
    """Unreadable answers of the query (an agent row: of all its sub-event steps)."""
    return list(row.get("parse_failures") or []) + [
        f for s in _steps(row) for f in s.get("parse_failures", [])
    ]


def row_raw_text(row: dict[str, Any]) -> list[str]:
    return list(row.get("raw_text") or []) + [t for s in _steps(row) for t in s.get("raw_text", [])]


def parse_status(row: dict[str, Any]) -> str:
    """error | fallback (no answer could be read: whole video) | parse_failure (some sample unreadable) | ok.

    An agent row is a fallback when some step had no readable sample (every raw answer failed)."""
    if "error" in row:
        return "error"
    step_fell_back = any(
        s.get("raw_text") and len(s.get("parse_failures", [])) >= len(s["raw_text"]) for s in _steps(row)
    )
    if (row.get("grounder") or {}).get("fallback") or step_fell_back:
        return "fallback"
    return "parse_failure" if row_failures(row) else "ok"


def _metrics(dataset: str, annotations: list[Annotation], rows: dict[Any, dict[str, Any]]) -> dict[str, Any]:
    if not annotations:
        return {"num_queries": 0, "brief": {}, "metrics": {}}
    preds = {a.qid: Prediction.from_dict(rows[a.qid]) for a in annotations}
    metrics = METRICS[dataset](annotations, preds)
    return {"num_queries": len(annotations), "brief": brief(metrics, dataset), "metrics": metrics}


def score(
    dataset: str,
    annotations: list[Annotation],
    rows: dict[Any, dict[str, Any]],
    dataset_queries: int | None = None,
) -> dict[str, Any]:
    """Metrics of the selected queries and of their parsed-only subset, with every count beside them."""
    sel = [rows[a.qid] for a in annotations]
    status = Counter(parse_status(r) for r in sel)
    parsed = [a for a, r in zip(annotations, sel) if parse_status(r) in ("ok", "parse_failure")]
    stage_s: dict[str, list[float]] = {}
    for r in sel:
        for k, v in r.get("timings_s", {}).items():
            if isinstance(v, (int, float)):
                stage_s.setdefault(k, []).append(v)
    main = _metrics(dataset, annotations, rows)
    n_all = dataset_queries if dataset_queries is not None else len(annotations)
    return {
        **main,
        "dataset_queries": n_all,
        "subset": len(annotations) != n_all,
        "parsed_only": _metrics(dataset, parsed, rows),
        "status": {k: status.get(k, 0) for k in ("ok", "parse_failure", "fallback", "error")},
        "errors": dict(Counter(r["error"]["kind"] for r in sel if "error" in r)),
        "parse_failures": sum(len(row_failures(r)) for r in sel),
        "fallbacks": status.get("fallback", 0),
        "missing_videos": sorted(
            {r["vid"] for r in sel if r.get("error", {}).get("kind") == "video_missing"}
        ),
        "mean_timings_s": {k: sum(v) / len(v) for k, v in stage_s.items()},
    }


def video_counts(
    annotations: list[Annotation], finder: VideoFinder, needed: bool, scored: dict[str, Any]
) -> dict[str, Any]:
    """{"total", "absent", "needed"}: for a model, the videos its error rows name missing; for a model-free
    baseline (which never opens them) the videos not found under --videos (None when none was given)."""
    vids = sorted({a.vid for a in annotations})
    if needed:
        absent: int | None = len(scored["missing_videos"])
    else:
        absent = None if finder.folder is None else sum(finder.find(v) is None for v in vids)
    return {"total": len(vids), "absent": absent, "needed": needed}


def sample_rows(
    annotations: list[Annotation], rows: dict[Any, dict[str, Any]], finder: VideoFinder | None = None
):
    """Per query: GT, predictions with their IoU, raw text, parse status, timings (`--log-samples`)."""
    out = []
    for a in annotations:
        r = rows[a.qid]
        windows = r.get("pred_relevant_windows", [])
        ious = tiou_matrix([w[:2] for w in windows], a.windows_s).max(axis=1).tolist() if windows else []
        path = finder.find(a.vid) if finder is not None else None
        out.append(
            {
                "qid": a.qid, "query": a.query, "vid": a.vid, "video": str(path) if path else None,
                "duration_s": a.duration_s, "gt_windows": [list(w) for w in a.windows_s],
                "pred_windows": windows, "ious": ious, "raw_text": row_raw_text(r),
                "parse_status": parse_status(r), "parse_failures": row_failures(r),
                "error": r.get("error"), "agent": bool(r.get("agent")), "timings_s": r.get("timings_s", {}),
            }
        )  # fmt: skip
    return out
