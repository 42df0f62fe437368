"""Video-summary metrics on TVSum / SumMe: rank correlation with every annotator (Otani et al., "Rethinking
the evaluation of video summaries", CVPR 2019) and F1 of the keyshot summary (Zhang et al. 2016's protocol).

- Kendall's tau-b and Spearman's rho of the predicted frame scores with each annotator's, averaged over
  annotators, then over videos (as `scipy.stats.kendalltau` / `spearmanr` give them, computed here from
  contingency tables and ranks: all of TVSum, 50 videos x 20 annotators x ~7k frames, in about a second).
- F1: the prediction's keyshot summary (a shot's value is its mean frame score; a 0/1 knapsack keeps
  the best shots within `ratio` of the frames) against each annotator's summary, averaged ("avg", TVSum's
  convention) and best ("max", SumMe's). A TVSum annotator's summary is the same knapsack over their own
  scores; a SumMe annotator's is their own selection.
- `human_agreement`: each annotator against each other one, averaged (the human row of Otani et al.:
  TVSum tau 0.177, rho 0.204); `random_row`: uniform random frame scores (expected tau = rho = 0).

F1 is in percent, tau and rho are coefficients (-1 to 1), as the papers print them.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np

from grounding_agent.benchmarks.summaries import SummaryAnnotation
from grounding_agent.defaults import SUMMARY
from grounding_agent.errors import ConfigError, DatasetError
from grounding_agent.utils.knapsack import knapsack

__all__ = [
    "RANDOM_SEED",
    "human_agreement",
    "kendall_tau_b",
    "keyshot_summary",
    "random_row",
    "rank_correlations",
    "score_summaries",
    "spearman_rho",
    "summary_f1",
    "user_summaries",
]

RANDOM_SEED = 0
_MAX_TABLE_CELLS = 1 << 24  # beyond this a contingency table costs more than scipy's O(n log n) Kendall


# --- rank correlations -----------------------------------------------------------------------------------


def _tau_b_from_tables(table: np.ndarray) -> np.ndarray:
    """Kendall's tau-b of each (..., K, L) contingency table (rows: x levels ascending, columns: y's).

    Concordant minus discordant pairs: each cell's count times (pairs above it in x with a larger y, minus
    those with a smaller y); integer counts, so exact.
    """
    t = np.asarray(table, dtype=np.int64)
    col_totals, row_totals = t.sum(axis=-2), t.sum(axis=-1)
    above = col_totals[..., None, :] - np.cumsum(t, axis=-2)  # same y level, larger x
    upto = np.cumsum(above, axis=-1)  # larger x, y level <= this one
    larger_minus_smaller_y = above.sum(axis=-1, keepdims=True) - 2 * upto + above
    score = np.einsum("...kl,...kl->...", t, larger_minus_smaller_y).astype(np.float64)
    n = row_totals.sum(axis=-1).astype(np.float64)
    pairs = n * (n - 1) / 2
    x_ties = (row_totals * (row_totals - 1) // 2).sum(axis=-1)
    y_ties = (col_totals * (col_totals - 1) // 2).sum(axis=-1)
    denom = np.sqrt((pairs - x_ties) * (pairs - y_ties))
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(denom > 0, score / denom, np.nan)


def kendall_tau_b(x: np.ndarray, ys: np.ndarray) -> np.ndarray:
    """Kendall's tau-b of `x` (N,) with each row of `ys` (U, N): (U,), NaN where either side is constant."""
    _, xi = np.unique(x, return_inverse=True)
    levels, yi = np.unique(ys, return_inverse=True)
    k, m, users = int(xi.max()) + 1, len(levels), ys.shape[0]
    yi = yi.reshape(ys.shape)
    if users * k * m <= _MAX_TABLE_CELLS:  # all annotators at once (TVSum: 5 levels, SumMe: 2)
        cells = (np.arange(users)[:, None] * k + xi[None, :]) * m + yi
        return _tau_b_from_tables(np.bincount(cells.ravel(), minlength=users * k * m).reshape(users, k, m))
    from scipy import stats  # both sides nearly continuous: scipy's O(n log n) count, pair by pair

    return np.array([stats.kendalltau(x, y).statistic for y in ys])


def _average_ranks(a: np.ndarray) -> np.ndarray:
    """Ranks 1..N with ties sharing their mean rank (`scipy.stats.rankdata`'s "average")."""
    _, inverse, counts = np.unique(a, return_inverse=True, return_counts=True)
    return (np.cumsum(counts) - (counts - 1) / 2)[inverse]


def spearman_rho(x: np.ndarray, ys: np.ndarray) -> np.ndarray:
    """Spearman's rho of `x` (N,) with each row of `ys` (U, N): Pearson's r of the average ranks."""
    rx = _average_ranks(x)
    rx -= rx.mean()
    ry = np.stack([_average_ranks(y) for y in ys])
    ry -= ry.mean(axis=1, keepdims=True)
    denom = np.linalg.norm(ry, axis=1) * np.linalg.norm(rx)
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(denom > 0, np.einsum("un,n->u", ry, rx) / denom, np.nan)


def _mean(values: np.ndarray) -> float:
    """Mean over annotators; an undefined coefficient (a constant side) is left out, all undefined: 0."""
    finite = values[np.isfinite(values)]
    return float(finite.mean()) if finite.size else 0.0


def rank_correlations(pred: np.ndarray, users: np.ndarray) -> tuple[float, float]:
    """(Kendall's tau-b, Spearman's rho) of frame scores `pred` (N,) with each annotator (U, N), averaged."""
    pred, users = np.asarray(pred, dtype=np.float64), np.atleast_2d(np.asarray(users, dtype=np.float64))
    return _mean(kendall_tau_b(pred, users)), _mean(spearman_rho(pred, users))


# --- keyshot summaries and F1 ----------------------------------------------------------------------------


def keyshot_summary(frame_scores: np.ndarray, shots: np.ndarray, ratio: float) -> np.ndarray:
    """(N,) bool: the shots (half-open [start, end) frame ranges tiling the video) a 0/1 knapsack keeps within
    floor(ratio x N) frames, valuing a shot at its mean frame score.

    Scores are used as given when none is negative (the convention: probabilities, 1-5 ratings); otherwise
    they are shifted so the lowest is 0 (the knapsack never keeps a shot worth <= 0).
    """
    scores = np.asarray(frame_scores, dtype=np.float64)
    if not 0 < ratio <= 1:
        raise ConfigError(f"summary budget {ratio} is not a share of the video; pass a ratio in (0, 1]")
    lengths = shots[:, 1] - shots[:, 0]
    values = np.add.reduceat(scores, shots[:, 0]) / lengths
    if values.min() < 0:
        values -= values.min()
    mask = np.zeros(len(scores), dtype=bool)
    for i in knapsack(values, lengths, int(len(scores) * ratio)):
        mask[shots[i, 0] : shots[i, 1]] = True
    return mask


def user_summaries(ann: SummaryAnnotation, ratio: float) -> np.ndarray:
    """(U, N) bool: each annotator's summary (TVSum: the knapsack over their scores; SumMe: their selection).
    Kept in `ann.memo`: every row scored against the annotation needs them."""
    if ann.user_kind == "selections":
        return ann.user_scores > 0
    key = ("user_summaries", ratio)
    if key not in ann.memo:
        ann.memo[key] = np.stack([keyshot_summary(u, ann.shots, ratio) for u in ann.user_scores])
    return ann.memo[key]


def summary_f1(pred_mask: np.ndarray, user_masks: np.ndarray, reduce: str = "mean") -> float:
    """F1 (a fraction) of a binary summary (N,) against each annotator's (U, N): their mean ("mean",
    TVSum) or best ("max", SumMe); an empty side scores 0."""
    pred = np.asarray(pred_mask, dtype=bool)
    users = np.atleast_2d(np.asarray(user_masks, dtype=bool))
    overlap = (users & pred[None, :]).sum(axis=1)
    precision = np.divide(overlap, pred.sum(), out=np.zeros(len(users)), where=pred.sum() > 0)
    recall = np.divide(overlap, users.sum(axis=1), out=np.zeros(len(users)), where=users.sum(axis=1) > 0)
    denom = precision + recall
    f1 = np.divide(2 * precision * recall, denom, out=np.zeros(len(users)), where=denom > 0)
    if reduce not in ("mean", "max"):
        raise ValueError(f"reduce must be 'mean' or 'max', got {reduce!r}")
    return float(f1.mean() if reduce == "mean" else f1.max())


def _f1s(summary: np.ndarray, references: np.ndarray) -> tuple[float, float]:
    return summary_f1(summary, references, "mean"), summary_f1(summary, references, "max")


# --- rows over a dataset ---------------------------------------------------------------------------------


def _row(per_video: Sequence[tuple[float, float, float, float]]) -> dict[str, float]:
    tau, rho, f1_avg, f1_max = (np.mean(col) if len(per_video) else 0.0 for col in zip(*per_video))
    return {
        "kendall_tau": float(tau),
        "spearman_rho": float(rho),
        "f1_avg": 100 * float(f1_avg),
        "f1_max": 100 * float(f1_max),
    }


def score_summaries(
    annotations: Sequence[SummaryAnnotation],
    predictions: Mapping[str, np.ndarray],
    ratio: float = SUMMARY.ratio,
    allow_missing: bool = False,
) -> dict[str, float]:
    """kendall_tau, spearman_rho (mean over annotators, then videos) and f1_avg / f1_max (percent) of
    per-frame `predictions` (vid -> (nframes,) scores). A video without a prediction is an error, or with
    `allow_missing` scores 0 on every metric.

    Raises:
        DatasetError: a video has no prediction (without `allow_missing`), or a bad `ratio`.
    """
    missing = [a.vid for a in annotations if a.vid not in predictions]
    if missing and not allow_missing:
        raise DatasetError(
            f"{len(missing)} of {len(annotations)} videos have no prediction (first: {missing[0]}); "
            "predict every video or pass --allow-missing to score them as 0"
        )
    per_video = []
    for ann in annotations:
        if ann.vid not in predictions:
            per_video.append((0.0, 0.0, 0.0, 0.0))
            continue
        pred = np.asarray(predictions[ann.vid], dtype=np.float64)
        summary = keyshot_summary(pred, ann.shots, ratio)
        per_video.append(
            (*rank_correlations(pred, ann.user_scores), *_f1s(summary, user_summaries(ann, ratio)))
        )
    return _row(per_video)


def _gram(a: np.ndarray) -> np.ndarray:
    # einsum, not `a @ a.T`: a BLAS product of these thin matrices is slower on a busy machine (threads).
    return np.einsum("in,jn->ij", a, a)


def _pairwise_tau(users: np.ndarray) -> np.ndarray:
    """(U, U) Kendall tau-b of every pair of annotators: all contingency tables of one annotator against
    the others in one `bincount` when the scores take few levels (TVSum: 5), else pair by pair."""
    levels, codes = np.unique(users, return_inverse=True)
    n_users, m = users.shape[0], len(levels)
    if n_users * m * m > _MAX_TABLE_CELLS:
        return np.stack([kendall_tau_b(u, users) for u in users])
    codes = codes.reshape(users.shape)
    offsets = np.arange(n_users)[:, None] * m * m
    tables = [np.bincount((offsets + row * m + codes).ravel(), minlength=n_users * m * m) for row in codes]
    return _tau_b_from_tables(np.stack(tables).reshape(n_users, n_users, m, m))


def _pairwise_rho(users: np.ndarray) -> np.ndarray:
    ranks = np.stack([_average_ranks(u) for u in users])
    ranks -= ranks.mean(axis=1, keepdims=True)
    gram = _gram(ranks)
    norms = np.sqrt(np.diag(gram))
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(np.outer(norms, norms) > 0, gram / np.outer(norms, norms), np.nan)


def _pairwise_f1(summaries: np.ndarray) -> np.ndarray:
    """(U, U) F1 of every pair of binary summaries: 2 |a & b| / (|a| + |b|), 0 when both are empty."""
    s = summaries.astype(np.float64)
    overlap, sizes = _gram(s), s.sum(axis=1)
    total = sizes[:, None] + sizes[None, :]
    return np.divide(2 * overlap, total, out=np.zeros_like(overlap), where=total > 0)


def _leave_one_out(matrix: np.ndarray, reduce: str = "mean") -> float:
    """Each annotator's value against the others (the diagonal left out), then averaged over annotators."""
    others = ~np.eye(len(matrix), dtype=bool)
    rows = [m[o] for m, o in zip(matrix, others)]
    return float(np.mean([r.max() if reduce == "max" else _mean(r) for r in rows]))


def human_agreement(
    annotations: Sequence[SummaryAnnotation], ratio: float = SUMMARY.ratio
) -> dict[str, float]:
    """The annotators' own agreement, the ceiling Otani et al. report: each annotator's scores (and
    summary) against each other annotator's, averaged over the others (F1 also: best of the others), then
    over annotators and videos. On TVSum: tau 0.177, rho 0.204."""
    per_video = []
    for ann in annotations:
        f1 = _pairwise_f1(user_summaries(ann, ratio))
        per_video.append(
            (
                _leave_one_out(_pairwise_tau(ann.user_scores)),
                _leave_one_out(_pairwise_rho(ann.user_scores)),
                _leave_one_out(f1),
                _leave_one_out(f1, "max"),
            )
        )
    return _row(per_video)


def random_row(
    annotations: Sequence[SummaryAnnotation], ratio: float = SUMMARY.ratio, seed: int = RANDOM_SEED
) -> dict[str, float]:
    """The metrics of uniform random frame scores (seeded): tau and rho near 0, F1 the floor to beat."""
    rng = np.random.default_rng(seed)
    predictions = {a.vid: rng.random(a.nframes) for a in annotations}
    return score_summaries(annotations, predictions, ratio)
