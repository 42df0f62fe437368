"""`EditPlan`: what to keep and what to cut, frame-exact, and why.

An instruction becomes a list of `Operation`s (see `parse`); each one is applied in order to the frames
still kept:

- cut X: the frames of X that are still kept are cut;
- keep X: the frames still kept *outside* X are cut ("keep only ...");
- head / tail ("the first 3 seconds", "the last minute") count on the edit so far, not the source, so
  "remove the silences, then keep only the first minute" keeps the first minute of what is left.

Every other target (explicit times, a grounded moment, highlights, silences, spoken words) is a set of
source-time spans, snapped to frame boundaries of the `FrameGrid`. The plan is the ordered partition of
the video into keep / cut segments, each with the operation that decided it and its evidence.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, fields, replace
from typing import Any, Literal

import numpy as np

from grounding_agent.defaults import EDIT
from grounding_agent.edit.timeline import FrameGrid, clock
from grounding_agent.errors import EditError
from grounding_agent.types import Evidence, Video

Action = Literal["cut", "keep"]
Target = Literal["range", "head", "tail", "moment", "highlights", "silence", "words", "speech"]
TARGETS: tuple[str, ...] = ("range", "head", "tail", "moment", "highlights", "silence", "words", "speech")
FILLER_WORDS = ("um", "uh", "erm", "er", "uhm", "hmm", "mm")


@dataclass(frozen=True)
class Operation:
    """One step of an edit. Which fields matter depends on `target`:

    range: start_s, end_s (None = the end of the video); head / tail: seconds; moment: query (and `until`,
    a second query whose end closes the span); highlights: count and/or total_s; silence: min_silence_s,
    threshold_db; words: phrases; speech: where someone speaks (voice activity; pauses shorter than
    min_silence_s stay inside). `text` is the part of the instruction it was read from; `read_as` how
    the parser read it ('rule: "remove silences"', 'llm: ...').
    """

    action: Action
    target: Target
    start_s: float | None = None
    end_s: float | None = None
    seconds: float | None = None
    query: str | None = None
    until: str | None = None
    count: int | None = None
    total_s: float | None = None
    min_silence_s: float | None = None
    threshold_db: float | None = None
    phrases: tuple[str, ...] = ()
    text: str = ""
    # How the parser read it, e.g. 'rule: "remove silences"' (shown per operation; not part of equality).
    read_as: str = field(default="", compare=False)

    def __post_init__(self) -> None:
        if self.action not in ("cut", "keep") or self.target not in TARGETS:
            raise EditError(f"unknown operation {self.action!r} {self.target!r}")
        bad = self._problem()
        if bad:
            raise EditError(f"operation '{self.text or self.describe()}': {bad}")

    def _problem(self) -> str | None:
        t = self.target
        if t == "range":
            if self.start_s is None or self.start_s < 0:
                return "a time range needs a start >= 0"
            if self.end_s is not None and self.end_s <= self.start_s:
                return f"the range ends ({self.end_s:g} s) before it starts ({self.start_s:g} s)"
        if t in ("head", "tail") and not (self.seconds and self.seconds > 0):
            return "the first/last part needs a length in seconds > 0"
        if t == "moment" and not (self.query and self.query.strip()):
            return "a moment needs a description of what happens"
        if t == "highlights":
            if self.count is None and self.total_s is None:
                return "highlights need a count or a total length"
            if (self.count is not None and self.count < 1) or (
                self.total_s is not None and self.total_s <= 0
            ):
                return "the highlight count and total length must be > 0"
        if t == "words" and not any(p.strip() for p in self.phrases):
            return "say which words (in quotes), e.g. remove every time he says 'um'"
        if t == "silence" and self.min_silence_s is not None and self.min_silence_s <= 0:
            return "the shortest silence must be > 0 s"
        return None

    def describe(self) -> str:
        """A short human sentence for this operation."""
        t, a = self.target, self.action
        if t == "range":
            end = "the end" if self.end_s is None else clock(self.end_s)
            return f"{a} {clock(self.start_s or 0.0)} to {end}"
        if t in ("head", "tail"):
            which = "first" if t == "head" else "last"
            return f"{a} the {which} {self.seconds:g} s" + (" of the edit" if a == "keep" else "")
        if t == "moment":
            until = f" until {self.until!r}" if self.until else ""
            return f"{a} the moment {self.query!r}{until}"
        if t == "highlights":
            parts = [f"top {self.count}" if self.count else "best", "highlights"]
            if self.total_s:
                parts.append(f"within {self.total_s:g} s")
            return f"{a} " + " ".join(parts)
        if t == "silence":
            return f"{a} silences (< {self.threshold_db or EDIT.silence_db:g} dBFS, >= {self.min_silence_s or EDIT.min_silence_s:g} s)"
        if t == "speech":
            return f"{a} " + ("only the speech" if a == "keep" else "the speech")
        return f"{a} the words " + ", ".join(repr(p) for p in self.phrases)

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {"action": self.action, "target": self.target}
        for f in fields(self):
            value = getattr(self, f.name)
            if f.name in out or value is None or value == () or (f.name in ("text", "read_as") and not value):
                continue
            out[f.name] = list(value) if isinstance(value, tuple) else value
        return out

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Operation:
        known = {f.name for f in fields(cls)}
        kwargs = {k: v for k, v in data.items() if k in known and v is not None}
        if "phrases" in kwargs:
            kwargs["phrases"] = tuple(str(p) for p in kwargs["phrases"])
        for name in ("start_s", "end_s", "seconds", "total_s", "min_silence_s", "threshold_db"):
            if name in kwargs:
                kwargs[name] = float(kwargs[name])
        if "count" in kwargs:
            kwargs["count"] = int(kwargs["count"])
        return cls(**kwargs)


@dataclass(frozen=True)
class Span:
    """A source-time span an operation targets, and what found it (None: the user gave the times)."""

    start_s: float
    end_s: float
    evidence: Evidence | None = None


class FrameSpan:
    """`duration_s` and `num_frames` of a span that has its start and end in seconds and in frames
    (`EditSegment`, `edit.reel.ReelClip`)."""

    start_s: float
    end_s: float
    start_frame: int
    end_frame: int

    @property
    def duration_s(self) -> float:
        return self.end_s - self.start_s

    @property
    def num_frames(self) -> int:
        return self.end_frame - self.start_frame


@dataclass(frozen=True)
class EditSegment(FrameSpan):
    """A run of frames [start_frame, end_frame) the edit keeps or cuts, and why."""

    action: Action
    start_frame: int
    end_frame: int
    start_s: float
    end_s: float
    reason: str
    operation: int | None = None  # index into EditPlan.operations; None: no operation touched it
    evidence: tuple[Evidence, ...] = ()


@dataclass
class EditPlan:
    """An edit of one video: the ordered keep / cut segments covering it, from an instruction.

    Attributes:
        video: the source; grid: its frame boundaries (real decoder times) and nominal rate.
        instruction: what was asked; operations: how it was read; parser: "rule" or "llm".
        segments: the whole video, in order, each kept or cut (adjacent segments differ).
        notes: what the reader should know (fallbacks, operations that matched nothing, keyframe moves).
    """

    video: Video
    grid: FrameGrid
    instruction: str
    operations: list[Operation]
    segments: list[EditSegment]
    parser: str = "rule"
    notes: list[str] = field(default_factory=list)

    @property
    def kept(self) -> list[EditSegment]:
        return [s for s in self.segments if s.action == "keep"]

    @property
    def kept_s(self) -> float:
        return float(sum(s.duration_s for s in self.kept))

    @property
    def kept_frames(self) -> int:
        return sum(s.num_frames for s in self.kept)

    @property
    def keeps_nothing(self) -> bool:
        return self.kept_frames == 0

    @property
    def keeps_everything(self) -> bool:
        return self.kept_frames == self.grid.num_frames

    def output_starts_s(self) -> list[float]:
        """Where each kept segment starts in the edited video (record time)."""
        out, t = [], 0.0
        for seg in self.kept:
            out.append(t)
            t += seg.duration_s
        return out

    def to_dict(self) -> dict[str, Any]:
        grid = self.grid
        rate = grid.rate
        return {
            "video": str(self.video.path),
            "duration_s": self.video.duration_s,
            "num_frames": grid.num_frames,
            "rate": {
                "num": rate.numerator,
                "den": rate.denominator,
                "fps": float(rate),
                "drop_frame": grid.drop_frame,
            },
            "instruction": self.instruction,
            "parser": self.parser,
            "operations": [op.to_dict() for op in self.operations],
            "segments": [
                {
                    "action": s.action,
                    "start_frame": s.start_frame,
                    "end_frame": s.end_frame,
                    "start_s": round(s.start_s, 6),
                    "end_s": round(s.end_s, 6),
                    "start_tc": grid.timecode(s.start_frame),
                    "end_tc": grid.timecode(s.end_frame),
                    "reason": s.reason,
                    **({"operation": s.operation} if s.operation is not None else {}),
                    "evidence": [e.to_dict() for e in s.evidence],
                }
                for s in self.segments
            ],
            "kept_s": round(self.kept_s, 6),
            "kept_frames": self.kept_frames,
            "kept_segments": len(self.kept),
            "notes": list(self.notes),
        }

    def snapped_to_keyframes(self) -> tuple[EditPlan, list[dict[str, Any]]]:
        """The plan stream copy can cut: each kept segment starts at the keyframe at or before its start and
        ends at the keyframe at or after its end (so nothing asked for is lost); overlaps merge.

        Returns:
            (the snapped plan, one shift per kept segment: {"segment", "start_shift_s", "end_shift_s"},
            negative = earlier).
        """
        grid = self.grid
        spans, shifts = [], []
        for i, seg in enumerate(self.kept):
            a, b = grid.keyframe_at_or_before(seg.start_frame), grid.keyframe_at_or_after(seg.end_frame)
            shifts.append(
                {
                    "segment": i,
                    "start_shift_s": round(grid.time_s(a) - seg.start_s, 6),
                    "end_shift_s": round(grid.time_s(b) - seg.end_s, 6),
                    "start_shift_frames": a - seg.start_frame,
                    "end_shift_frames": b - seg.end_frame,
                }
            )
            if spans and a <= spans[-1][1]:
                spans[-1] = (spans[-1][0], max(b, spans[-1][1]), spans[-1][2] + [seg])
            else:
                spans.append((a, b, [seg]))
        segments: list[EditSegment] = []
        pos = 0
        for a, b, members in spans:
            if a > pos:
                segments.append(_segment(grid, "cut", pos, a, "between keyframe-aligned segments", None, ()))
            reason = "; ".join(dict.fromkeys(m.reason for m in members)) + " (moved to keyframes)"
            evidence = tuple(e for m in members for e in m.evidence)
            segments.append(_segment(grid, "keep", a, b, reason, members[0].operation, evidence))
            pos = b
        if pos < grid.num_frames:
            segments.append(
                _segment(grid, "cut", pos, grid.num_frames, "between keyframe-aligned segments", None, ())
            )
        moved = sum(1 for s in shifts if s["start_shift_frames"] or s["end_shift_frames"])
        note = f"stream copy: {moved} of {len(shifts)} kept segments moved to keyframes"
        return replace(self, segments=segments, notes=[*self.notes, note]), shifts


def _segment(
    grid: FrameGrid, action: Action, a: int, b: int, reason: str, op: int | None, evidence
) -> EditSegment:
    return EditSegment(action, a, b, grid.time_s(a), grid.time_s(b), reason, op, tuple(evidence))


# --- applying operations ------------------------------------------------------------------------------


Resolver = Callable[[Operation], Sequence[Span]]


def apply_operations(
    video: Video,
    grid: FrameGrid,
    instruction: str,
    operations: Sequence[Operation],
    resolve: Resolver,
    *,
    parser: str = "rule",
    notes: Sequence[str] = (),
) -> EditPlan:
    """Apply `operations` in order; `resolve` turns a non-head/tail operation into source spans."""
    n = grid.num_frames
    cut_by = np.full(n, -1, dtype=np.int64)  # operation that cut each frame; -1 = still kept
    kept_by = np.full(n, -1, dtype=np.int64)  # last keep operation whose target held the frame
    spans_of: list[list[Span]] = []
    out_notes = list(notes)
    for k, op in enumerate(operations):
        kept = cut_by < 0
        if op.target in ("head", "tail"):
            inside, spans = _head_tail(grid, kept, op)
        else:
            spans = list(resolve(op))
            inside = np.zeros(n, dtype=bool)
            for span in spans:
                a, b = grid.frames(span.start_s, span.end_s)
                inside[a:b] = True
        spans_of.append(spans)
        if not (inside & kept).any():
            out_notes.append(f"operation {k + 1} ({op.describe()}) matched nothing in what was left")
        if op.action == "cut":
            cut_by[kept & inside] = k
        else:
            cut_by[kept & ~inside] = k
            kept_by[kept & inside] = k
    segments = _segments(grid, operations, cut_by, kept_by, spans_of)
    return EditPlan(video, grid, instruction, list(operations), segments, parser, out_notes)


def _head_tail(grid: FrameGrid, kept: np.ndarray, op: Operation) -> tuple[np.ndarray, list[Span]]:
    """Frames of the first / last `op.seconds` of the edit so far (nearest frame boundary)."""
    idx = np.flatnonzero(kept)
    lengths = np.diff(grid.bounds_s)[idx]
    out = np.concatenate([[0.0], np.cumsum(lengths)])
    seconds = float(op.seconds or 0.0)
    inside = np.zeros(grid.num_frames, dtype=bool)
    if op.target == "head":
        j = int(np.argmin(np.abs(out - seconds)))
        inside[idx[:j]] = True
        chosen = idx[:j]
    else:
        j = int(np.argmin(np.abs(out - (out[-1] - seconds))))
        inside[idx[j:]] = True
        chosen = idx[j:]
    spans = [Span(grid.time_s(chosen[0]), grid.time_s(chosen[-1] + 1))] if len(chosen) else []
    return inside, spans


def _segments(grid, operations, cut_by, kept_by, spans_of) -> list[EditSegment]:
    """Runs of equal (cut_by, kept_by) labels -> segments with their reason and overlapping evidence."""
    key = np.where(cut_by >= 0, cut_by, -2 - kept_by)  # cut by k -> k; kept (by k or none) -> negative
    change = np.flatnonzero(np.diff(key)) + 1
    starts = np.concatenate([[0], change])
    ends = np.concatenate([change, [grid.num_frames]])
    segments = []
    for a, b in zip(starts.tolist(), ends.tolist(), strict=True):
        if cut_by[a] >= 0:
            op_index, action = int(cut_by[a]), "cut"
            op = operations[op_index]
            reason = op.describe() if op.action == "cut" else f"outside: {op.describe()}"
        else:
            op_index = int(kept_by[a]) if kept_by[a] >= 0 else None
            action = "keep"
            reason = operations[op_index].describe() if op_index is not None else "kept"
        evidence = ()
        if op_index is not None:
            t0, t1 = grid.time_s(a), grid.time_s(b)
            evidence = tuple(
                s.evidence
                for s in spans_of[op_index]
                if s.evidence is not None and s.start_s < t1 and s.end_s > t0
            )
        segments.append(_segment(grid, action, a, b, reason, op_index, evidence))
    return segments
