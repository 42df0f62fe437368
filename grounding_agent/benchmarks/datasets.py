"""The dataset registry: `DATASETS` (name -> reader) and `load_dataset`, over readers by dataset.

Readers, one schema (`annotations.Annotation`): Charades-STA (`charades`; a moment_detr-style jsonl such as
Lighthouse's `charades_test_release.jsonl`, its own qids, also loads), QVHighlights (`qvhighlights`),
ActivityNet Captions and TACoS (`captions`); prediction files in `predictions`. This module re-exports
what callers use, so `from grounding_agent.benchmarks.datasets import Annotation, load_dataset` works.

Ground-truth handling is explicit (`GTPolicy`); the default matches the community: a GT end past the
video's duration is clipped to it (2D-TAN's published numbers only reproduce with clipping) and
inverted lines (start >= end) are dropped with a logged count. Non-finite times, duplicate qids, bool or
non-scalar qids, and malformed saliency annotations are errors: they would change the metrics silently.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import replace
from pathlib import Path

from grounding_agent.benchmarks.annotations import Annotation, Dataset, GTPolicy
from grounding_agent.benchmarks.captions import load_activitynet_captions, load_tacos
from grounding_agent.benchmarks.charades import default_charades_csv, load_charades_sta
from grounding_agent.benchmarks.predictions import load_predictions
from grounding_agent.benchmarks.qvhighlights import load_qvhighlights
from grounding_agent.errors import DatasetError

__all__ = [
    "DATASETS",
    "Annotation",
    "Dataset",
    "GTPolicy",
    "default_charades_csv",
    "load_activitynet_captions",
    "load_charades_sta",
    "load_dataset",
    "load_predictions",
    "load_qvhighlights",
    "load_tacos",
]


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
