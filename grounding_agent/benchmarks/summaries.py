"""Video-summarization benchmarks: TVSum (`ydata-tvsum50.mat`, MATLAB v7.3) and SumMe (`GT/*.mat`, MATLAB v5)
read into one record, `SummaryAnnotation`: each annotator's per-frame scores and the video's shots.

TVSum: 20 annotators score every 2-second shot 1-5 (`user_anno`, constant over a shot); its shots are the
points where any annotator's score changes, with the 2-second grid filling a run of shots every annotator
scored alike. SumMe: 15-18 annotators each select the frames of their own summary (`user_score` > 0); it
has no shots of its own, so the summary scorer cuts it into uniform 2-second shots.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import numpy as np

from grounding_agent.errors import DatasetError, MissingDependencyError

__all__ = [
    "SHOT_S",
    "SUMMARY_DATASETS",
    "SummaryAnnotation",
    "annotation_shots",
    "load_summe",
    "load_tvsum",
    "uniform_shots",
]

SHOT_S = 2.0  # TVSum's annotation unit; SumMe is cut the same way (Otani et al. 2019 "uniform" segments)
TVSUM_FIELDS = ("video", "title", "category", "length", "nframes", "user_anno", "gt_score")


@dataclass(frozen=True, eq=False)
class SummaryAnnotation:
    """One video's annotation.

    Attributes:
        vid: the dataset's video id (TVSum: the YouTube id; SumMe: the file name without `.mat`).
        user_scores: (users, nframes) float: TVSum 1-5 importance, SumMe 0/1 selection.
        shots: (shots, 2) int, half-open frame ranges [start, end) covering every frame in order.
        user_kind: "scores" (a user's summary is the knapsack over their scores, TVSum) or "selections"
            (a user's summary is what they selected, SumMe).
        gt_score: (nframes,) the dataset's own mean score.
        memo: what scorers derive from the annotation once (the annotators' summaries at a budget), kept
            with it so scoring a prediction, the human row and the random row do not redo 1000 knapsacks.
    """

    vid: str
    title: str
    category: str
    duration_s: float
    fps: float
    nframes: int
    user_scores: np.ndarray
    shots: np.ndarray
    user_kind: Literal["scores", "selections"]
    gt_score: np.ndarray
    memo: dict[Any, Any] = field(default_factory=dict, repr=False)


def uniform_shots(nframes: int, fps: float, start: int = 0, end: int | None = None) -> np.ndarray:
    """Shots of `SHOT_S` seconds over frames [start, end): (shots, 2) half-open ranges, the last one
    taking the remainder (a run is split into round(length / shot) equal parts)."""
    end = nframes if end is None else end
    parts = max(1, round((end - start) / (SHOT_S * fps)))
    cuts = start + np.round(np.arange(parts + 1) * (end - start) / parts).astype(np.int64)
    return np.stack([cuts[:-1], cuts[1:]], axis=1)


def annotation_shots(user_scores: np.ndarray, fps: float) -> np.ndarray:
    """TVSum's shots: a boundary wherever any annotator's score changes; a run longer than one shot (every
    annotator gave its shots the same score) is split on the 2-second grid."""
    nframes = user_scores.shape[1]
    changes = np.flatnonzero((np.diff(user_scores, axis=1) != 0).any(axis=0)) + 1
    bounds = np.concatenate([[0], changes, [nframes]])
    return np.concatenate([uniform_shots(nframes, fps, a, b) for a, b in zip(bounds[:-1], bounds[1:])])


# --- TVSum -----------------------------------------------------------------------------------------------


def _open_hdf5(path: Path) -> Any:
    try:
        import h5py  # MATLAB v7.3 files are HDF5; scipy.io.loadmat cannot read them
    except ImportError:
        raise MissingDependencyError(
            "reading TVSum's .mat (MATLAB v7.3, HDF5) needs h5py, which is not installed: pip install h5py"
        ) from None
    _check_file(path)
    try:
        return h5py.File(path, "r")
    except OSError:
        hint = "; it is a MATLAB v5 file: SumMe? pass --dataset summe" if _is_mat_v5(path) else ""
        raise DatasetError(
            f"{path}: not an HDF5 (MATLAB v7.3) file; pass TVSum's ydata-tvsum50.mat{hint}"
        ) from None


def _check_file(path: Path) -> None:
    if not path.exists():
        raise DatasetError(f"{path}: not found; check the annotation file path (--gt)")
    if path.is_dir():
        raise DatasetError(f"{path}: is a folder; pass the annotation file itself (ydata-tvsum50.mat)")


def _is_mat_v5(path: Path) -> bool:
    try:
        with open(path, "rb") as f:
            return f.read(10).startswith(b"MATLAB 5.0")
    except OSError:
        return False


def _deref(h5: Any, ref: Any) -> np.ndarray:
    return np.asarray(h5[ref][()])


def _text(h5: Any, ref: Any) -> str:
    return "".join(map(chr, _deref(h5, ref).ravel()))


def _scalar(h5: Any, ref: Any, what: str, where: str) -> float:
    value = _deref(h5, ref)
    if value.size != 1 or not np.isfinite(value).all() or value.item() <= 0:
        raise DatasetError(f"{where}: {what} must be one positive number, got shape {value.shape}")
    return float(value.item())


def _tvsum_video(h5: Any, refs: dict[str, np.ndarray], i: int, path: Path) -> SummaryAnnotation:
    where = f"{path}: video {i + 1}"
    vid = _text(h5, refs["video"][i])
    duration_s = _scalar(h5, refs["length"][i], "length", where)
    nframes = int(_scalar(h5, refs["nframes"][i], "nframes", where))
    users = _deref(h5, refs["user_anno"][i]).astype(np.float64)
    gt = _deref(h5, refs["gt_score"][i]).astype(np.float64).ravel()
    if users.ndim != 2 or users.shape[1] != nframes or users.shape[0] < 2 or gt.size != nframes:
        raise DatasetError(
            f"{where} ({vid}): user_anno is {users.shape}, gt_score has {gt.size} values; expected "
            f"(annotators, {nframes}) and {nframes}: is this ydata-tvsum50.mat?"
        )
    if not np.isfinite(users).all():
        raise DatasetError(f"{where} ({vid}): user_anno holds NaN or inf; re-download ydata-tvsum50.mat")
    fps = nframes / duration_s
    return SummaryAnnotation(
        vid, _text(h5, refs["title"][i]), _text(h5, refs["category"][i]), duration_s, fps, nframes,
        users, annotation_shots(users, fps), "scores", gt,
    )  # fmt: skip


def load_tvsum(path: str | Path) -> list[SummaryAnnotation]:
    """TVSum's 50 videos from `ydata-tvsum50.mat` (struct `tvsum50`, read with h5py), in file order.

    Raises:
        DatasetError: missing, not HDF5, no `tvsum50` struct or a field of it, shapes that disagree, or
            a video id twice — one line naming the file.
        MissingDependencyError: h5py is not installed.
    """
    path = Path(path)
    with _open_hdf5(path) as h5:
        if "tvsum50" not in h5:
            raise DatasetError(
                f"{path}: no struct tvsum50 (found {sorted(h5)[:5]}); is this TVSum's ydata-tvsum50.mat?"
            )
        group = h5["tvsum50"]
        missing = [f for f in TVSUM_FIELDS if f not in group]
        if missing:
            raise DatasetError(
                f"{path}: tvsum50 has no field {', '.join(missing)}; is this ydata-tvsum50.mat?"
            )
        try:
            refs = {f: np.asarray(group[f][()]).ravel() for f in TVSUM_FIELDS}
            if len({len(r) for r in refs.values()}) != 1:
                raise DatasetError(f"{path}: tvsum50's fields hold different numbers of videos")
            videos = [_tvsum_video(h5, refs, i, path) for i in range(len(refs["video"]))]
        except (KeyError, TypeError, ValueError, AttributeError) as exc:  # not object references
            raise DatasetError(
                f"{path}: tvsum50 is not TVSum's layout ({type(exc).__name__}: {exc})"
            ) from None
    return _unique(videos, path)


def _unique(videos: list[SummaryAnnotation], path: Path) -> list[SummaryAnnotation]:
    if not videos:
        raise DatasetError(f"{path}: no videos; pass the full annotation file")
    seen: set[str] = set()
    for v in videos:
        if v.vid in seen:
            raise DatasetError(f"{path}: video {v.vid!r} appears twice; keep one annotation per video")
        seen.add(v.vid)
    return videos


# --- SumMe -----------------------------------------------------------------------------------------------


def _summe_number(data: dict, key: str, where: str) -> float:
    value = np.asarray(data.get(key, np.empty(0)), dtype=np.float64)
    if value.size != 1 or not np.isfinite(value).all() or value.item() <= 0:
        raise DatasetError(f"{where}: {key} must be one positive number; is this a SumMe GT/*.mat file?")
    return float(value.item())


def _summe_video(path: Path) -> SummaryAnnotation:
    from scipy import io  # scipy is in the `eval` extra

    try:
        data = io.loadmat(path)
    except NotImplementedError:  # scipy refuses v7.3 (HDF5) files
        raise DatasetError(f"{path}: a MATLAB v7.3 file, not SumMe's; TVSum? pass --dataset tvsum") from None
    except (ValueError, TypeError, OSError) as exc:
        raise DatasetError(f"{path}: not a MATLAB .mat file ({exc}); pass SumMe's GT/*.mat") from None
    nframes = int(_summe_number(data, "nFrames", str(path)))
    fps = _summe_number(data, "FPS", str(path))
    users = np.asarray(data.get("user_score", np.empty(0)), dtype=np.float64)
    if users.ndim != 2 or users.shape[0] != nframes or users.shape[1] < 1:
        raise DatasetError(
            f"{path}: user_score is {users.shape}, expected ({nframes}, users); is this SumMe?"
        )
    if not np.isfinite(users).all():
        raise DatasetError(f"{path}: user_score holds NaN or inf; re-download SumMe's GT")
    gt = np.asarray(data.get("gt_score", users.mean(axis=1)), dtype=np.float64).ravel()
    duration_s = float(np.asarray(data.get("video_duration", nframes / fps)).ravel()[0])
    users = (users > 0).astype(np.float64).T  # a frame is selected when its score is > 0 (Gygli's summe.py)
    return SummaryAnnotation(
        path.stem, path.stem, "", duration_s, fps, nframes, users, uniform_shots(nframes, fps), "selections",
        gt if gt.size == nframes else users.mean(axis=0),
    )  # fmt: skip


def load_summe(path: str | Path) -> list[SummaryAnnotation]:
    """SumMe from one `GT/<video>.mat` or the `GT/` folder (every `*.mat` in it, sorted by name).

    Raises:
        DatasetError: missing, no .mat in the folder, a file that is not SumMe's layout (user_score
            (nFrames, users), nFrames, FPS) — one line naming the file.
    """
    path = Path(path)
    if not path.exists():
        raise DatasetError(f"{path}: not found; pass SumMe's GT/ folder or one of its .mat files (--gt)")
    files = sorted(path.glob("*.mat")) if path.is_dir() else [path]
    if not files:
        raise DatasetError(f"{path}: no .mat files in the folder; pass SumMe's GT/ folder")
    return _unique([_summe_video(f) for f in files], path)


# name -> reader, beside the moment datasets' `DATASETS` (`eval score --dataset tvsum|summe`).
SUMMARY_DATASETS: dict[str, Callable[[str | Path], list[SummaryAnnotation]]] = {
    "tvsum": load_tvsum,
    "summe": load_summe,
}
