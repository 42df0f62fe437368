"""The few types everything flows through.

`Video` (metadata) -> `Frames` (pixels + real timestamps) -> a grounder -> `Moment`s -> `Prediction`
(what eval reads, QVHighlights-submission shaped). `Plan` is what the agent's planner produces.
All times are float seconds and their names say so.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import numpy as np

from grounding_agent.errors import ConfigError

# Times that differ by less than this are the same time (float noise from fps arithmetic).
TIME_EPS_S = 1e-6


@dataclass(frozen=True)
class Video:
    """Metadata of one video file, as read from its container and first video stream.

    Attributes:
        path: the file.
        duration_s: last frame's end time: last timestamp + one frame duration.
        avg_fps: average frame rate of the stream.
        num_frames: number of decodable frames.
        width, height: frame size in pixels.
    """

    path: Path
    duration_s: float
    avg_fps: float
    num_frames: int
    width: int
    height: int

    def to_dict(self) -> dict[str, Any]:
        return {
            "path": str(self.path),
            "duration_s": self.duration_s,
            "avg_fps": self.avg_fps,
            "num_frames": self.num_frames,
            "width": self.width,
            "height": self.height,
        }


@dataclass(frozen=True, eq=False)
class Frames:
    """Sampled frames with the real time of each.

    Attributes:
        video: where they came from.
        pixels: uint8 array (T, H, W, 3), RGB.
        timestamps_s: float array (T,), each frame's presentation time in seconds, strictly increasing.
        indices: int array (T,), each frame's index in the stream.
        fps: the effective sampling rate (frames per second of video) — lower than requested when a
            max-frames cap applied; see `requested_fps`.
        requested_fps: what the caller asked for (None when only max_frames was given).
        window_s: the (start_s, end_s) window sampled from.
    """

    video: Video
    pixels: np.ndarray
    timestamps_s: np.ndarray
    indices: np.ndarray
    fps: float
    requested_fps: float | None
    window_s: tuple[float, float]

    def __post_init__(self) -> None:
        n = len(self.timestamps_s)
        if self.pixels.shape[0] != n or len(self.indices) != n:
            raise ValueError(
                f"pixels/timestamps/indices disagree: {self.pixels.shape[0]}/{n}/{len(self.indices)}"
            )
        if n > 1 and not np.all(np.diff(self.timestamps_s) > 0):
            raise ValueError("frame timestamps must be strictly increasing")

    def __len__(self) -> int:
        return len(self.timestamps_s)

    def subset(self, keep: np.ndarray) -> Frames:
        """Frames at the given positions (a bool mask or int positions), same metadata."""
        return Frames(
            video=self.video,
            pixels=self.pixels[keep],
            timestamps_s=self.timestamps_s[keep],
            indices=self.indices[keep],
            fps=self.fps,
            requested_fps=self.requested_fps,
            window_s=self.window_s,
        )


@dataclass(frozen=True)
class Moment:
    """A span of a video, with a score and (optionally) why.

    Invariant: 0 <= start_s <= end_s (and <= the video's duration, checked by `check_within`).
    """

    start_s: float
    end_s: float
    score: float = 1.0
    explanation: dict[str, Any] | None = field(default=None, compare=False)

    def __post_init__(self) -> None:
        for name in ("start_s", "end_s", "score"):
            value = getattr(self, name)
            if not isinstance(value, (int, float)) or not math.isfinite(value):
                raise ConfigError(f"Moment.{name} must be a finite number, got {value!r}")
        if self.start_s < 0 or self.end_s < self.start_s:
            raise ConfigError(f"Moment needs 0 <= start_s <= end_s, got {self.start_s} .. {self.end_s}")

    @property
    def length_s(self) -> float:
        return self.end_s - self.start_s

    def check_within(self, duration_s: float) -> Moment:
        """Return self, or raise ConfigError if it ends after `duration_s`."""
        if self.end_s > duration_s + TIME_EPS_S:
            raise ConfigError(
                f"Moment {self.start_s:.2f}-{self.end_s:.2f} s ends after the video ({duration_s:.2f} s)"
            )
        return self

    def shifted(self, offset_s: float) -> Moment:
        """The same moment `offset_s` later (maps window-local times back to the full video)."""
        return Moment(self.start_s + offset_s, self.end_s + offset_s, self.score, self.explanation)

    def with_score(self, score: float, explanation: dict[str, Any] | None = None) -> Moment:
        return Moment(
            self.start_s, self.end_s, score, explanation if explanation is not None else self.explanation
        )

    def to_window(self) -> list[float]:
        """QVHighlights `pred_relevant_windows` row: [start_s, end_s, score]."""
        return [float(self.start_s), float(self.end_s), float(self.score)]


EvidenceKind = Literal[
    "grounder", "composition", "saliency", "verifier", "speech", "ocr", "audio", "reference"
]


@dataclass(frozen=True)
class Evidence:
    """One piece of support for an answer, from one channel, at one place in the video.

    Attributes:
        kind: the channel ("grounder": the VLM's answer, "saliency": CLIP, "verifier": the VLM's yes/no,
            "speech": words spoken, "ocr": text on screen, "audio": loudness/speech activity,
            "composition": relations between sub-events, "reference": a follow-up's earlier turn).
        start_s, end_s: where in the video it holds.
        score: its strength in [0, 1] where the channel has one.
        text: what it says (raw model text, words spoken, text read on screen, a note).
        source: which model or step produced it (a model name, a step id).
    """

    kind: EvidenceKind
    start_s: float
    end_s: float
    score: float | None = None
    text: str = ""
    source: str = ""

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {"kind": self.kind, "start_s": float(self.start_s), "end_s": float(self.end_s)}
        if self.score is not None:
            out["score"] = float(self.score)
        if self.text:
            out["text"] = self.text
        if self.source:
            out["source"] = self.source
        return out


RelationKind = Literal["before", "during"]


@dataclass(frozen=True)
class Step:
    """One sub-event of a compositional query."""

    id: str
    text: str


@dataclass(frozen=True)
class Relation:
    """`a` before `b` (a ends no later than b starts, with tolerance) or `a` during `b` (they overlap)."""

    kind: RelationKind
    a: str
    b: str


@dataclass(frozen=True)
class Plan:
    """What the planner made of a query: steps, their temporal relations, and what to return.

    `target` is a step id (return that sub-event) or "span" (return the span covering all steps).
    """

    query: str
    steps: tuple[Step, ...]
    relations: tuple[Relation, ...] = ()
    target: str = "span"
    planner: Literal["rule", "llm"] = "rule"
    notes: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        ids = [s.id for s in self.steps]
        if not ids:
            raise ConfigError("a Plan needs at least one step")
        if len(set(ids)) != len(ids):
            raise ConfigError(f"duplicate step ids in plan: {ids}")
        for r in self.relations:
            if r.a not in ids or r.b not in ids or r.a == r.b:
                raise ConfigError(f"relation {r} refers to unknown or identical steps (have {ids})")
        if self.target != "span" and self.target not in ids:
            raise ConfigError(f"plan target {self.target!r} is neither 'span' nor a step id {ids}")

    @classmethod
    def single(cls, query: str) -> Plan:
        return cls(query=query, steps=(Step("s1", query),), target="s1")

    def to_dict(self) -> dict[str, Any]:
        return {
            "query": self.query,
            "steps": [{"id": s.id, "text": s.text} for s in self.steps],
            "relations": [{"kind": r.kind, "a": r.a, "b": r.b} for r in self.relations],
            "target": self.target,
            "planner": self.planner,
            **({"notes": list(self.notes)} if self.notes else {}),
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any], planner: Literal["rule", "llm"] | None = None) -> Plan:
        """Raises: ConfigError: `data` is not a plan dict (a key missing or of the wrong kind)."""
        try:
            return cls(
                query=data["query"],
                steps=tuple(Step(str(s["id"]), str(s["text"])) for s in data["steps"]),
                relations=tuple(
                    Relation(r["kind"], str(r["a"]), str(r["b"])) for r in data.get("relations", [])
                ),
                target=str(data.get("target", "span")),
                planner=planner or data.get("planner", "rule"),
                notes=tuple(str(n) for n in data.get("notes", ())),
            )
        except (KeyError, TypeError, AttributeError) as exc:
            what = f"missing key {exc}" if isinstance(exc, KeyError) else str(exc)
            raise ConfigError(
                f"not a plan ({what}); a plan has query, steps [{{id, text}}], relations, target"
            ) from None


@dataclass
class Prediction:
    """One query's answer in the QVHighlights submission shape (one jsonl line).

    `pred_relevant_windows` are [start_s, end_s, score] rows sorted by score, best first;
    `pred_saliency_scores` (optional) is one score per 2-second clip.
    """

    qid: int | str
    vid: str
    query: str
    pred_relevant_windows: list[list[float]]
    pred_saliency_scores: list[float] | None = None
    extra: dict[str, Any] = field(default_factory=dict)

    @classmethod
    def from_moments(
        cls, qid: int | str, vid: str, query: str, moments: list[Moment], **extra: Any
    ) -> Prediction:
        ranked = sorted(moments, key=lambda m: m.score, reverse=True)
        return cls(
            qid=qid, vid=vid, query=query, pred_relevant_windows=[m.to_window() for m in ranked], extra=extra
        )

    def moments(self) -> list[Moment]:
        return [Moment(float(s), float(e), float(c)) for s, e, c in self.pred_relevant_windows]

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {
            "qid": self.qid,
            "vid": self.vid,
            "query": self.query,
            "pred_relevant_windows": self.pred_relevant_windows,
        }
        if self.pred_saliency_scores is not None:
            out["pred_saliency_scores"] = self.pred_saliency_scores
        out.update(self.extra)
        return out

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Prediction:
        """A prediction from its JSON dict; a malformed one is a `ConfigError` naming what is wrong."""
        known = {"qid", "vid", "query", "pred_relevant_windows", "pred_saliency_scores"}
        if not isinstance(data, dict) or "qid" not in data:
            raise ConfigError(f"a prediction needs a dict with a 'qid', got {type(data).__name__}")
        try:
            windows = [[float(v) for v in w] for w in data.get("pred_relevant_windows", [])]
        except (TypeError, ValueError):
            raise ConfigError(
                f"qid {data['qid']!r}: pred_relevant_windows must be [start_s, end_s, score] rows"
            ) from None
        if any(len(w) != 3 or not all(math.isfinite(v) for v in w) for w in windows):
            raise ConfigError(
                f"qid {data['qid']!r}: each window must be 3 finite numbers [start_s, end_s, score]"
            )
        return cls(
            qid=data["qid"],
            vid=data.get("vid", ""),
            query=data.get("query", ""),
            pred_relevant_windows=windows,
            pred_saliency_scores=data.get("pred_saliency_scores"),
            extra={k: v for k, v in data.items() if k not in known},
        )


# --- signals over time ---------------------------------------------------------------------------


@dataclass(frozen=True, eq=False)
class Curve:
    """A signal sampled over a video's time.

    Attributes:
        name: what it measures ("clip", "motion", "audio", ...).
        times_s: float array (T,), strictly increasing, seconds from the video's start.
        values: float array (T,), one value per time.
    """

    name: str
    times_s: np.ndarray
    values: np.ndarray

    def __post_init__(self) -> None:
        times = np.asarray(self.times_s, dtype=np.float64).reshape(-1)
        values = np.asarray(self.values, dtype=np.float64).reshape(-1)
        if len(times) != len(values):
            raise ConfigError(f"curve {self.name!r}: {len(times)} times but {len(values)} values")
        if len(times) > 1 and not np.all(np.diff(times) > 0):
            raise ConfigError(f"curve {self.name!r}: times must be strictly increasing")
        if not np.all(np.isfinite(values)):
            raise ConfigError(f"curve {self.name!r}: values must be finite")
        object.__setattr__(self, "times_s", times)
        object.__setattr__(self, "values", values)

    def __len__(self) -> int:
        return len(self.times_s)

    def with_values(self, values: np.ndarray, name: str | None = None) -> Curve:
        return Curve(name or self.name, self.times_s, values)

    def minmax(self) -> Curve:
        """Scaled to [0, 1]; a flat curve becomes all zeros (it carries no ranking information)."""
        return self.with_values(minmax(self.values))

    def zscore(self) -> Curve:
        """Zero mean, unit variance over this video; a flat curve becomes all zeros."""
        return self.with_values(zscore(self.values))

    def to_dict(self) -> dict[str, object]:
        return {"name": self.name, "times_s": self.times_s.tolist(), "values": self.values.tolist()}


def minmax(values: np.ndarray) -> np.ndarray:
    values = np.asarray(values, dtype=np.float64)
    if values.size == 0:
        return values
    span = values.max() - values.min()
    return (values - values.min()) / span if span > 1e-12 else np.zeros_like(values)


def zscore(values: np.ndarray) -> np.ndarray:
    values = np.asarray(values, dtype=np.float64)
    if values.size == 0:
        return values
    std = values.std()
    return (values - values.mean()) / std if std > 1e-12 else np.zeros_like(values)
