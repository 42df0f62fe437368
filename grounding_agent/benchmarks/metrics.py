"""Temporal grounding and highlight metrics that reproduce the community's evaluation code.

- Charades-STA: R@k at IoU >= t (k in 1, 5; t in 0.3, 0.5, 0.7) and mIoU of the top-1 window.
- QVHighlights: moment retrieval (R1, mAP over IoU 0.5:0.05:0.95, by GT length bucket) and highlight
  detection (mAP, HIT@1 at the Fair/Good/VeryGood saliency levels), following the algorithm of
  moment_detr's `standalone_eval` (ActivityNet-style detection AP with VOC interpolation; video2gif-style
  ranking AP with its running-max interpolation; per-annotator binarisation, averaged over annotators).

Video-summary scores (TVSum/SumMe: keyshot F1, Kendall's tau, Spearman's rho) live in `summary_metrics`.

All values are fractions computed without rounding; the dict-returning functions report percent
(like the published tables), still unrounded. Round only when printing.

Deliberate differences from moment_detr, none of which occurs on a complete submission:
- a query with no predicted windows scores AP 0 (moment_detr leaves it out of the mean);
- a zero-length prediction on a zero-length GT window has IoU 0 (moment_detr divides 0 by 0).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence

import numpy as np

from grounding_agent.benchmarks.annotations import Annotation
from grounding_agent.defaults import CLIP_LEN_S
from grounding_agent.errors import DatasetError
from grounding_agent.types import Prediction
from grounding_agent.utils.temporal import tiou_matrix

CHARADES_IOU_THRESHOLDS = (0.3, 0.5, 0.7)
CHARADES_RECALL_KS = (1, 5)
# IoU thresholds of QVHighlights mAP: 0.5, 0.55, ..., 0.95 (exact two-decimal values, as moment_detr uses).
MR_MAP_IOU_THRESHOLDS = tuple(round(0.5 + 0.05 * i, 2) for i in range(10))
MR_R1_IOU_THRESHOLDS = (0.3, *MR_MAP_IOU_THRESHOLDS)
# GT window length buckets (lo, hi] in seconds; "full" keeps every window.
MR_LENGTH_BUCKETS_S: dict[str, tuple[float, float] | None] = {
    "short": (0.0, 10.0),
    "middle": (10.0, 30.0),
    "long": (30.0, 150.0),
    "full": None,
}
MR_MAX_PRED_WINDOWS = 10  # moment_detr scores only the first 10 windows for mAP
# A clip counts as a highlight for an annotator when their score (0..4) reaches the level's minimum.
HL_LEVELS = {"Fair": 2, "Good": 3, "VeryGood": 4}
HL_CLIP_LENGTH_S = CLIP_LEN_S

CHARADES_KEYS = ("R1@0.3", "R1@0.5", "R1@0.7", "R5@0.3", "R5@0.5", "R5@0.7", "mIoU")
# TACoS tables report IoU 0.1 / 0.3 / 0.5 (its moments are short in long videos).
TACOS_IOU_THRESHOLDS = (0.1, 0.3, 0.5)
TACOS_KEYS = ("R1@0.1", "R1@0.3", "R1@0.5", "R5@0.1", "R5@0.3", "R5@0.5", "mIoU")
# moment_detr's "brief" names, plus R1@0.3 and mIoU (what the Charades-style tables also report).
QVH_MR_BRIEF_KEYS = (
    "MR-full-R1@0.3",
    "MR-full-R1@0.5",
    "MR-full-R1@0.7",
    "MR-full-mIoU",
    "MR-full-mAP",
    "MR-full-mAP@0.5",
    "MR-full-mAP@0.75",
    "MR-short-mAP",
    "MR-middle-mAP",
    "MR-long-mAP",
)
QVH_HL_BRIEF_KEYS = tuple(f"HL-min-{level}-{m}" for level in HL_LEVELS for m in ("mAP", "Hit1"))


# --- building blocks -------------------------------------------------------------------------------


def voc_ap(precision: np.ndarray, recall: np.ndarray) -> float | np.ndarray:
    """Area under the precision envelope (VOC 2011 / ActivityNet interpolation).

    Args:
        precision, recall: cumulative values along the ranked list, recall non-decreasing; (N,) or (T, N)
            for T curves at once.

    Returns:
        AP as a float, or (T,) APs.
    """
    prec, rec = np.atleast_2d(precision), np.atleast_2d(recall)
    zeros, ones = np.zeros((len(prec), 1)), np.ones((len(prec), 1))
    prec = np.concatenate([zeros, prec, zeros], axis=1)
    rec = np.concatenate([zeros, rec, ones], axis=1)
    envelope = np.maximum.accumulate(prec[:, ::-1], axis=1)[:, ::-1]  # best precision at >= this recall
    ap = np.sum(np.diff(rec, axis=1) * envelope[:, 1:], axis=1)  # recall steps only: flat parts add 0
    return float(ap[0]) if np.ndim(precision) == 1 else ap


def detection_ap(
    pred_windows: np.ndarray, pred_scores: np.ndarray, gt_windows: np.ndarray, thresholds: Sequence[float]
) -> np.ndarray:
    """Average precision of one query's scored windows against its GT windows, at each IoU threshold.

    Predictions are matched greedily in score order (ties keep input order): each takes the unmatched GT
    window with the highest IoU if that IoU reaches the threshold, otherwise it is a false positive.

    Args:
        pred_windows: (N, 2) [start_s, end_s]; pred_scores: (N,).
        gt_windows: (M, 2), M >= 1.
        thresholds: T IoU thresholds.

    Returns:
        (T,) AP per threshold (zeros when there are no predictions).
    """
    thr = np.asarray(thresholds, dtype=np.float64)
    n_pred, n_gt = len(pred_windows), len(gt_windows)
    if n_gt == 0:  # recall is undefined: the caller scored a query without ground truth
        raise DatasetError("detection_ap needs at least one GT window; drop queries without ground truth")
    if n_pred == 0:
        return np.zeros(len(thr))
    order = np.argsort(-np.asarray(pred_scores, dtype=np.float64), kind="stable")
    ious = tiou_matrix(np.asarray(pred_windows)[order], gt_windows)  # (N, M)
    if n_gt == 1:  # one GT: the first prediction (in score order) reaching the threshold is the only TP
        ok = ious[:, 0][None, :] >= thr[:, None]  # (T, N)
        tp = np.zeros((len(thr), n_pred))
        hit = ok.any(axis=1)
        tp[np.flatnonzero(hit), ok.argmax(axis=1)[hit]] = 1.0
        return _ap_from_tp(tp, n_gt)
    matched = np.zeros((len(thr), n_gt), dtype=bool)
    tp = np.zeros((len(thr), n_pred))
    for i in range(n_pred):
        # GT windows by IoU, best first (ties: later index first, as the reference's reversed argsort).
        gt_order = np.argsort(ious[i], kind="stable")[::-1]
        ok = (ious[i][gt_order][None, :] >= thr[:, None]) & ~matched[:, gt_order]  # (T, M)
        hit = ok.any(axis=1)
        first = gt_order[ok.argmax(axis=1)]
        tp[hit, i] = 1.0
        matched[np.flatnonzero(hit), first[hit]] = True
    return _ap_from_tp(tp, n_gt)


def _ap_from_tp(tp: np.ndarray, n_gt: int) -> np.ndarray:
    """(T,) AP from (T, N) true-positive flags of score-ranked predictions (the rest are false positives)."""
    tp_cum = np.cumsum(tp, axis=1)
    fp_cum = np.cumsum(1.0 - tp, axis=1)
    recall = tp_cum / n_gt
    precision = tp_cum / (tp_cum + fp_cum)
    return voc_ap(precision, recall)


def ranking_ap(y_true: np.ndarray, y_score: np.ndarray) -> float | np.ndarray:
    """Average precision of clip scores against binary labels, as the video2gif evaluation defines it.

    The precision-recall curve has one point per distinct score (lowest threshold first, plus the
    (recall 0, precision 1) end point); precision is replaced by its running maximum from the lowest
    threshold on, and AP is the mean precision at the points after which recall changes. All-negative
    labels give 0, all-positive 1.

    Args:
        y_true: (N,) binary labels, or (N, C) for C label sets ranked by the same scores.
        y_score: (N,) scores.

    Returns:
        AP as a float, or (C,) APs for 2-D labels.
    """
    labels = np.asarray(y_true, dtype=np.float64)
    y = labels[:, None] if labels.ndim == 1 else labels
    y_score = np.asarray(y_score, dtype=np.float64)
    if len(y_score) != len(y):
        raise DatasetError(f"ranking_ap: {len(y_score)} scores for {len(y)} labels")
    if not np.isfinite(y_score).all():  # NaN sorts arbitrarily and would give any AP
        raise DatasetError("ranking_ap: scores must be finite (got NaN or inf)")
    if len(y) == 0:  # a video shorter than one clip has nothing to rank
        return 0.0 if labels.ndim == 1 else np.zeros(y.shape[1])
    order = np.argsort(y_score, kind="mergesort")[::-1]
    score_sorted = y_score[order]
    last_of_tie = np.r_[np.flatnonzero(np.diff(score_sorted)), len(score_sorted) - 1]
    tps = np.cumsum(y[order], axis=0)[last_of_tie]  # (L, C) true positives above each threshold
    fps = 1 + last_of_tie[:, None] - tps
    total = np.where(tps[-1] > 0, tps[-1], 1.0)
    ones = np.ones((1, y.shape[1]))
    precision = np.concatenate([(tps / (tps + fps))[::-1], ones])
    recall = np.concatenate([(tps / total)[::-1], 0 * ones]).astype(np.float32)  # float32 as the reference
    precision = np.maximum.accumulate(precision, axis=0)
    steps = np.diff(recall, axis=0) != 0
    ap = (precision[:-1] * steps).sum(axis=0) / np.maximum(steps.sum(axis=0), 1)
    constant = np.all(y == y[:1], axis=0)
    ap = np.where(constant, (y[0] > 0).astype(np.float64), ap)
    return float(ap[0]) if labels.ndim == 1 else ap


def _pred_array(pred: Prediction | None, limit: int | None = None) -> tuple[np.ndarray, np.ndarray]:
    """(N, 2) windows and (N,) scores of a prediction, in its stored order (best first by convention)."""
    rows = [] if pred is None else pred.pred_relevant_windows[:limit]
    if not rows:
        return np.zeros((0, 2)), np.zeros(0)
    arr = np.asarray([r[:3] if len(r) >= 3 else [r[0], r[1], 1.0] for r in rows], dtype=np.float64)
    return arr[:, :2], arr[:, 2]


def _gt_array(ann: Annotation) -> np.ndarray:
    if not ann.windows_s:
        raise DatasetError(
            f"qid {ann.qid}: no ground-truth windows (a test release without GT?); use a GT file"
        )
    return np.asarray(ann.windows_s, dtype=np.float64).reshape(-1, 2)


def align(
    annotations: Sequence[Annotation],
    predictions: Mapping[object, Prediction],
    *,
    allow_missing: bool = False,
) -> list[Prediction | None]:
    """The prediction of each annotation (None where missing).

    Raises:
        DatasetError: predictions for qids not in the GT (a wrong GT file), or missing predictions
            unless `allow_missing` (then they score as empty answers).
    """
    gt_qids = {a.qid for a in annotations}
    unknown = [q for q in predictions if q not in gt_qids]
    if unknown:
        raise DatasetError(
            f"{len(unknown)} predicted qids are not in the ground truth (e.g. {unknown[0]!r}): wrong GT file?"
        )
    missing = [a.qid for a in annotations if a.qid not in predictions]
    if missing and not allow_missing:
        raise DatasetError(
            f"{len(missing)} of {len(annotations)} GT queries have no prediction (e.g. qid {missing[0]!r}); "
            "predict them all or allow missing ones (they score as misses)"
        )
    return [predictions.get(a.qid) for a in annotations]


# --- Charades-STA ----------------------------------------------------------------------------------


def top_k_ious(annotations: Sequence[Annotation], preds: Sequence[Prediction | None], k: int) -> np.ndarray:
    """(Q, k) IoU of each query's first k windows with its best-matching GT window (0 where absent)."""
    out = np.zeros((len(annotations), k))
    for q, (ann, pred) in enumerate(zip(annotations, preds)):
        windows, _ = _pred_array(pred, k)
        if len(windows):
            out[q, : len(windows)] = tiou_matrix(windows, _gt_array(ann)).max(axis=1)
    return out


def charades_sta_metrics(
    annotations: Sequence[Annotation],
    predictions: Mapping[object, Prediction],
    *,
    allow_missing: bool = False,
    thresholds: Iterable[float] = CHARADES_IOU_THRESHOLDS,
    ks: Iterable[int] = CHARADES_RECALL_KS,
) -> dict[str, float]:
    """R@k at IoU >= t and mIoU (top-1), in percent, for windows in stored (ranked) order.

    Returns:
        {"R1@0.3": ..., "R5@0.7": ..., "mIoU": ...} in percent, unrounded.
    """
    if not annotations:
        raise DatasetError("no ground-truth queries to score")
    ks, thresholds = tuple(ks), tuple(thresholds)
    preds = align(annotations, predictions, allow_missing=allow_missing)
    ious = top_k_ious(annotations, preds, max(ks))
    out: dict[str, float] = {}
    for k in ks:
        best = ious[:, :k].max(axis=1)
        for t in thresholds:
            out[f"R{k}@{t}"] = 100.0 * float(np.mean(best >= t))
    out["mIoU"] = 100.0 * float(np.mean(ious[:, 0]))
    return out


# --- QVHighlights moment retrieval -----------------------------------------------------------------


def _in_bucket(
    annotations: Sequence[Annotation], bucket: tuple[float, float] | None
) -> list[tuple[int, Annotation]]:
    """(position, annotation keeping only GT windows with length in (lo, hi]) for those that keep any."""
    if bucket is None:
        return list(enumerate(annotations))
    lo, hi = bucket
    kept = []
    for i, ann in enumerate(annotations):
        windows = tuple(w for w in ann.windows_s if lo < w[1] - w[0] <= hi)
        if windows:
            kept.append((i, ann.with_windows(windows)))
    return kept


def moment_retrieval_metrics(
    annotations: Sequence[Annotation], preds: Sequence[Prediction | None]
) -> dict[str, float]:
    """MR-{bucket}-R1@t, -mIoU, -mAP@t and -mAP (mean over 0.5:0.05:0.95), in percent, for every bucket.

    R1 compares the first window with the GT window it overlaps most; mAP uses the first 10 windows.
    """
    out: dict[str, float] = {}
    for name, bucket in MR_LENGTH_BUCKETS_S.items():
        kept = _in_bucket(annotations, bucket)
        if not kept:
            continue
        anns = [a for _, a in kept]
        sub_preds = [preds[i] for i, _ in kept]
        top1 = top_k_ious(anns, sub_preds, 1)[:, 0]
        for t in MR_R1_IOU_THRESHOLDS:
            out[f"MR-{name}-R1@{t}"] = 100.0 * float(np.mean(top1 >= t))
        out[f"MR-{name}-mIoU"] = 100.0 * float(np.mean(top1))
        ap = np.array(
            [
                detection_ap(*_pred_array(p, MR_MAX_PRED_WINDOWS), _gt_array(a), MR_MAP_IOU_THRESHOLDS)
                for a, p in zip(anns, sub_preds)
            ]
        )  # (Q, T)
        per_thr = ap.mean(axis=0)
        for t, v in zip(MR_MAP_IOU_THRESHOLDS, per_thr):
            out[f"MR-{name}-mAP@{t}"] = 100.0 * float(v)
        out[f"MR-{name}-mAP"] = 100.0 * float(per_thr.mean())
    return out


# --- QVHighlights highlight detection --------------------------------------------------------------


def clip_saliency_matrix(ann: Annotation) -> np.ndarray:
    """(num_clips, annotators) GT saliency (0..4) over the whole video's 2-second clips (0 if unannotated)."""
    num_clips = int(ann.duration_s / HL_CLIP_LENGTH_S)
    n_annotators = len(ann.saliency_scores[0]) if ann.saliency_scores else 3
    full = np.zeros((num_clips, n_annotators))
    if ann.relevant_clip_ids:
        full[np.asarray(ann.relevant_clip_ids)] = np.asarray(ann.saliency_scores, dtype=np.float64)
    return full


def highlight_metrics(
    annotations: Sequence[Annotation], preds: Sequence[Prediction | None]
) -> dict[str, float]:
    """HL-min-{level}-mAP and -Hit1 in percent.

    Per annotator, clips scoring >= the level's minimum are positives. mAP: ranking AP of the predicted
    clip scores (cut or zero-padded to the video's clip count), averaged over annotators and queries.
    HIT@1: the top-scored clip is a positive for at least one annotator.
    """
    mins = np.array(list(HL_LEVELS.values()), dtype=np.float64)
    aps, hits = [], []  # per query: (levels, annotators) APs; (levels,) hits
    for ann, pred in zip(annotations, preds):
        gt = clip_saliency_matrix(ann)  # (clips, annotators)
        positive = (gt[:, None, :] >= mins[None, :, None]).astype(np.float64)  # (clips, levels, annotators)
        s = np.asarray((pred.pred_saliency_scores if pred else None) or [], dtype=np.float64)
        top = int(np.argmax(s)) if len(s) else len(gt)
        hits.append(positive[top].max(axis=1) if top < len(gt) else np.zeros(len(mins)))
        padded = np.zeros(len(gt))
        padded[: min(len(s), len(gt))] = s[: len(gt)]
        aps.append(ranking_ap(positive.reshape(len(gt), positive.shape[1] * positive.shape[2]), padded))
    mean_ap = np.mean(np.reshape(aps, (len(aps), len(mins), -1)), axis=(0, 2))
    hit1 = np.mean(hits, axis=0)
    out: dict[str, float] = {}
    for i, level in enumerate(HL_LEVELS):
        out[f"HL-min-{level}-mAP"] = 100.0 * float(mean_ap[i])
        out[f"HL-min-{level}-Hit1"] = 100.0 * float(hit1[i])
    return out


def qvhighlights_metrics(
    annotations: Sequence[Annotation],
    predictions: Mapping[object, Prediction],
    *,
    allow_missing: bool = False,
) -> dict[str, float]:
    """Every moment retrieval metric, plus highlight metrics when any prediction has saliency scores."""
    if not annotations:
        raise DatasetError("no ground-truth queries to score")
    preds = align(annotations, predictions, allow_missing=allow_missing)
    out = moment_retrieval_metrics(annotations, preds)
    if any(p is not None and p.pred_saliency_scores is not None for p in preds):
        out.update(highlight_metrics(annotations, preds))
    return out


def brief(metrics: Mapping[str, float], dataset: str) -> dict[str, float]:
    """The headline numbers (`eval score --json` keys) of a full metrics dict."""
    keys = BRIEF_KEYS.get(dataset, QVH_MR_BRIEF_KEYS + QVH_HL_BRIEF_KEYS)
    return {k: metrics[k] for k in keys if k in metrics}


def tacos_metrics(
    annotations: Sequence[Annotation],
    predictions: Mapping[object, Prediction],
    *,
    allow_missing: bool = False,
) -> dict[str, float]:
    """R@k at IoU 0.1 / 0.3 / 0.5 and mIoU: `charades_sta_metrics` at TACoS's thresholds."""
    return charades_sta_metrics(
        annotations, predictions, allow_missing=allow_missing, thresholds=TACOS_IOU_THRESHOLDS
    )


# ActivityNet Captions grounding is scored like Charades-STA (R@k at IoU 0.3 / 0.5 / 0.7, mIoU).
METRICS = {
    "charades-sta": charades_sta_metrics,
    "qvhighlights": qvhighlights_metrics,
    "activitynet-captions": charades_sta_metrics,
    "tacos": tacos_metrics,
}
BRIEF_KEYS = {
    "charades-sta": CHARADES_KEYS,
    "activitynet-captions": CHARADES_KEYS,
    "tacos": TACOS_KEYS,
    "qvhighlights": QVH_MR_BRIEF_KEYS + QVH_HL_BRIEF_KEYS,
}
