"""The one schema every benchmark reader returns: `Annotation` (a query and its GT), `GTPolicy` (how imperfect
GT is treated) and `Dataset` (a split's annotations with counts of what the policy changed)."""

from __future__ import annotations

from dataclasses import dataclass, field, replace


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
