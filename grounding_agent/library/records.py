"""The library's records: what one indexed video holds (`VideoRecord`), what `index` reports, what
`search` and `ground` answer. Plain frozen dataclasses, so a Ray Data stage can pass them between workers."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import numpy as np

from grounding_agent.media.ocr import ScreenText
from grounding_agent.media.transcript import Transcript
from grounding_agent.types import Evidence, Moment, Video

Channel = Literal["visual", "speech", "ocr"]
CHANNELS: tuple[Channel, ...] = ("visual", "speech", "ocr")
IndexStatus = Literal["indexed", "unchanged", "skipped", "removed"]


@dataclass(frozen=True, eq=False)
class VideoRecord:
    """Everything the index keeps of one video, made by `pipeline.index_one` and written by `Store.write`.

    Attributes:
        video: its metadata (path resolved).
        fingerprint: sha256 of the file's bytes.
        size_bytes, mtime_ns: the file's stat when indexed (a cheap "unchanged" check next time).
        channels: the channels that were computed.
        frame_times_s: (T,) times of the embedded frames; frame_vectors: (T, D) unit-norm float32.
        shots: (start_s, end_s) spans cut where consecutive frame embeddings differ.
        transcript: what is said (None without the speech channel).
        screen: the text read on screen (None without the OCR channel).
        model: per channel, the model that made it.
    """

    video: Video
    fingerprint: str
    size_bytes: int
    mtime_ns: int
    channels: tuple[Channel, ...]
    frame_times_s: np.ndarray = field(default_factory=lambda: np.zeros(0, np.float64))
    frame_vectors: np.ndarray = field(default_factory=lambda: np.zeros((0, 0), np.float32))
    shots: tuple[tuple[float, float], ...] = ()
    transcript: Transcript | None = None
    screen: ScreenText | None = None
    model: dict[str, str] = field(default_factory=dict)

    @property
    def path(self) -> Path:
        return self.video.path


@dataclass(frozen=True)
class IndexRow:
    """What `index` did with one path: indexed, unchanged, skipped (with the reason) or removed."""

    path: str
    status: IndexStatus
    reason: str = ""
    seconds: float = 0.0

    def to_dict(self) -> dict[str, Any]:
        return {"path": self.path, "status": self.status, "reason": self.reason, "seconds": self.seconds}


@dataclass(frozen=True)
class IndexReport:
    """Per-file rows of one `Library.index` run, in the order the files were met."""

    rows: tuple[IndexRow, ...] = ()
    wall_s: float = 0.0

    def count(self, status: IndexStatus) -> int:
        return sum(r.status == status for r in self.rows)

    def to_dict(self) -> dict[str, Any]:
        counts = {s: self.count(s) for s in ("indexed", "unchanged", "skipped", "removed")}
        return {"counts": counts, "wall_s": self.wall_s, "rows": [r.to_dict() for r in self.rows]}


@dataclass(frozen=True)
class LibraryVideo:
    """One video in the library, as listed by `Library.videos()`."""

    video_id: int
    path: Path
    fingerprint: str
    duration_s: float
    channels: tuple[str, ...]

    def to_dict(self) -> dict[str, Any]:
        return {
            "video_id": self.video_id,
            "path": str(self.path),
            "fingerprint": self.fingerprint,
            "duration_s": self.duration_s,
            "channels": list(self.channels),
        }


@dataclass(frozen=True)
class SearchHit:
    """A span of one video that matches a query, its fused score and the evidence of each channel."""

    video_id: int
    path: Path
    start_s: float
    end_s: float
    score: float
    evidence: tuple[Evidence, ...] = ()

    @property
    def channels(self) -> tuple[str, ...]:
        return tuple(dict.fromkeys(e.kind for e in self.evidence))

    def to_moment(self) -> Moment:
        return Moment(self.start_s, self.end_s, self.score)

    def to_dict(self) -> dict[str, Any]:
        return {
            "video_id": self.video_id,
            "path": str(self.path),
            "start_s": round(self.start_s, 3),
            "end_s": round(self.end_s, 3),
            "score": round(self.score, 6),
            "evidence": [e.to_dict() for e in self.evidence],
        }


@dataclass(frozen=True)
class GroundedHit:
    """The grounder's best moment inside one retrieved candidate window."""

    hit: SearchHit
    moment: Moment | None
    window_s: tuple[float, float]


@dataclass(frozen=True)
class LibraryAnswer:
    """What retrieve-then-ground answers: the best moments across videos, and how much it looked at."""

    query: str
    hits: tuple[SearchHit, ...]
    grounded: tuple[GroundedHit, ...]
    videos_looked_at: int
    seconds_looked_at: float
    grounder_calls: int

    @property
    def best(self) -> GroundedHit | None:
        found = [g for g in self.grounded if g.moment is not None]
        return max(found, key=lambda g: g.moment.score) if found else None

    def to_dict(self) -> dict[str, Any]:
        return {
            "query": self.query,
            "videos_looked_at": self.videos_looked_at,
            "seconds_looked_at": round(self.seconds_looked_at, 3),
            "grounder_calls": self.grounder_calls,
            "grounded": [
                {
                    "video_id": g.hit.video_id,
                    "path": str(g.hit.path),
                    "window_s": [round(g.window_s[0], 3), round(g.window_s[1], 3)],
                    "moment": None if g.moment is None else g.moment.to_window(),
                }
                for g in self.grounded
            ],
            "hits": [h.to_dict() for h in self.hits],
        }
