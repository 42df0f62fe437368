"""`Reel`: an edit across clips - kept frame ranges from several sources, in record order.

An `EditPlan` edits one video; a reel strings clips of many together ("a 30-second reel of every moment
where she laughs" over a library). Each `ReelClip` is frames [start_frame, end_frame) of one source on that
source's own `FrameGrid`; the reel's `rate` and `size` (default: the first source's) are what a render
normalises every clip to and the record rate of its timelines.

    reel = Reel.from_plans([plan_a, plan_b])           # the kept segments of each plan, plan after plan
    reel = Reel.from_hits(library.search("she laughs"), total_s=30)
    export_reel(reel, "reel.otio"); render_reel(reel, "reel.mp4")   # edit.reel_exports, edit.reel_render
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field, replace
from fractions import Fraction
from pathlib import Path
from typing import Any, Literal, Protocol

from grounding_agent.defaults import REELS
from grounding_agent.edit.plan import EditPlan, FrameSpan
from grounding_agent.edit.timeline import FrameGrid, clock, nominal_rate
from grounding_agent.errors import EditError
from grounding_agent.types import Evidence, Video


class Hit(Protocol):
    """What a reel takes from a search hit (`grounding_agent.library`'s `SearchHit` is one)."""

    @property
    def path(self) -> Path | str: ...

    @property
    def start_s(self) -> float: ...

    @property
    def end_s(self) -> float: ...

    @property
    def score(self) -> float: ...

    @property
    def evidence(self) -> Sequence[Evidence]: ...


@dataclass(frozen=True, eq=False)
class ReelClip(FrameSpan):
    """Frames [start_frame, end_frame) of `video` on its own grid, and why they are in the reel."""

    video: Video
    grid: FrameGrid
    start_frame: int
    end_frame: int
    reason: str = ""
    evidence: tuple[Evidence, ...] = ()

    def __post_init__(self) -> None:
        if not 0 <= self.start_frame < self.end_frame <= self.grid.num_frames:
            raise EditError(
                f"{self.video.path}: clip frames [{self.start_frame}, {self.end_frame}) are not inside the "
                f"video's {self.grid.num_frames} frames"
            )

    @property
    def start_s(self) -> float:
        return self.grid.time_s(self.start_frame)

    @property
    def end_s(self) -> float:
        return self.grid.time_s(self.end_frame)


@dataclass
class Reel:
    """Clips from one or more sources, in record order.

    Attributes:
        clips: what plays, in order.
        rate: the record frame rate (None: the first clip's source rate).
        size: (width, height) of the record (None: the first clip's source size).
        notes: what the reader should know (hits dropped or widened, the budget).
    """

    clips: list[ReelClip]
    rate: Fraction | None = None
    size: tuple[int, int] | None = None
    notes: list[str] = field(default_factory=list)

    def __post_init__(self) -> None:
        if not self.clips:
            raise EditError("the reel has no clips: nothing matched; try another query or more videos")
        if self.rate is not None and not self.rate > 0:
            raise EditError(f"the reel's frame rate must be > 0, got {self.rate}")
        if self.size is not None and not (self.size[0] > 0 and self.size[1] > 0):
            raise EditError(f"the reel's size must be WIDTHxHEIGHT > 0, got {self.size}")

    @property
    def record_rate(self) -> Fraction:
        return self.rate if self.rate is not None else self.clips[0].grid.rate

    @property
    def record_size(self) -> tuple[int, int]:
        first = self.clips[0].video
        return self.size if self.size is not None else (first.width, first.height)

    @property
    def sources(self) -> list[Path]:
        """Each source once, in order of first use."""
        return list(dict.fromkeys(Path(c.video.path).resolve() for c in self.clips))

    @property
    def duration_s(self) -> float:
        return float(sum(c.duration_s for c in self.clips))

    def record_frames(self) -> list[tuple[int, int]]:
        """Each clip's [start, end) on the record grid: boundaries rounded from the running total of source
        times, so rounding never adds up past half a frame over the whole reel."""
        rate, t, out = self.record_rate, Fraction(0), []
        for clip in self.clips:
            start = round(t * rate)
            t += Fraction(clip.duration_s)
            out.append((start, round(t * rate)))
        return out

    def to_dict(self) -> dict[str, Any]:
        rate = self.record_rate
        return {
            "rate": {"num": rate.numerator, "den": rate.denominator, "fps": float(rate)},
            "size": list(self.record_size),
            "duration_s": round(self.duration_s, 6),
            "sources": [str(s) for s in self.sources],
            "clips": [
                {
                    "video": str(c.video.path),
                    "start_frame": c.start_frame,
                    "end_frame": c.end_frame,
                    "start_s": round(c.start_s, 6),
                    "end_s": round(c.end_s, 6),
                    "record_start_frame": a,
                    "record_end_frame": b,
                    "reason": c.reason,
                    "evidence": [e.to_dict() for e in c.evidence],
                }
                for c, (a, b) in zip(self.clips, self.record_frames(), strict=True)
            ],
            "notes": list(self.notes),
        }

    @classmethod
    def from_plans(
        cls, plans: Iterable[EditPlan], *, rate: Fraction | None = None, size: tuple[int, int] | None = None
    ) -> Reel:
        """The kept segments of each plan, plan after plan."""
        clips = [
            ReelClip(p.video, p.grid, s.start_frame, s.end_frame, s.reason, s.evidence)
            for p in plans
            for s in p.kept
        ]
        return cls(clips, rate, size)

    @classmethod
    def from_hits(
        cls,
        hits: Iterable[Hit],
        *,
        total_s: float | None = REELS.total_s,
        max_clips: int = REELS.max_clips,
        min_clip_s: float = REELS.min_clip_s,
        order: Literal["score", "source"] = "source",
        rate: Fraction | None = None,
        size: tuple[int, int] | None = None,
    ) -> Reel:
        """The best hits, overlaps of one video merged, until `total_s` seconds (the last clip is cut short
        to fit) or `max_clips`; played in `order`: "source" (each video's hits in time, videos in order of
        their best hit) or "score" (best first).

        Raises:
            EditError: no hit, or every hit unreadable.
        """
        if total_s is not None and not total_s > 0:
            raise EditError(f"the reel's length must be > 0 s, got {total_s!r}")
        from grounding_agent.media.video import open_video

        ranked = sorted(hits, key=lambda h: -float(h.score))
        if not ranked:
            raise EditError("the search found nothing to put in a reel; try another query")
        chosen: list[_Span] = []
        notes: list[str] = []
        grids: dict[Path, tuple[Video, FrameGrid]] = {}
        budget = float("inf") if total_s is None else float(total_s)
        for rank, hit in enumerate(ranked):
            if budget <= 0 or len(chosen) >= max_clips:
                notes.append(f"{len(ranked) - rank} lower hits left out (reel length or clip count reached)")
                break
            path = Path(hit.path).resolve()
            if path not in grids:
                video = open_video(path)
                grids[path] = (video, FrameGrid.from_video(video))
            span = _widen(_Span(path, rank, float(hit.start_s), float(hit.end_s), tuple(hit.evidence)),
                          min_clip_s, grids[path][0].duration_s)  # fmt: skip
            gained = _merge(chosen, span)
            budget -= gained
        if budget < 0:  # the last one went over: cut its end
            chosen[-1] = replace(chosen[-1], end_s=chosen[-1].end_s + budget)
            notes.append(f"the last clip was cut short to keep the reel within {total_s:g} s")
        if order == "source":
            first = {}
            for s in chosen:
                first.setdefault(s.path, s.rank)
            chosen.sort(key=lambda s: (first[s.path], s.start_s))
        clips = []
        for s in chosen:
            video, grid = grids[s.path]
            a, b = grid.frames(s.start_s, s.end_s)
            if b > a:
                reason = f"hit {s.rank + 1}: {clock(s.start_s)}-{clock(s.end_s)} of {s.path.name}"
                clips.append(ReelClip(video, grid, a, b, reason, s.evidence))
        return cls(clips, rate, size, notes)


@dataclass(frozen=True)
class _Span:
    path: Path
    rank: int
    start_s: float
    end_s: float
    evidence: tuple[Evidence, ...]


def _widen(span: _Span, min_s: float, duration_s: float) -> _Span:
    """`span` clamped to the video and widened around its middle to at least `min_s` (when the video is)."""
    start, end = max(0.0, span.start_s), min(duration_s, span.end_s)
    if end - start < min_s:
        mid = (start + end) / 2
        start = max(0.0, min(mid - min_s / 2, duration_s - min_s))
        end = min(duration_s, start + min_s)
    return _Span(span.path, span.rank, start, end, span.evidence)


def _merge(chosen: list[_Span], span: _Span) -> float:
    """Add `span`, merged into an overlapping one of the same video; returns the seconds it added."""
    for i, other in enumerate(chosen):
        if other.path == span.path and span.start_s <= other.end_s and other.start_s <= span.end_s:
            start, end = min(other.start_s, span.start_s), max(other.end_s, span.end_s)
            gained = (end - start) - (other.end_s - other.start_s)
            chosen[i] = _Span(other.path, other.rank, start, end, other.evidence + span.evidence)
            return gained
    chosen.append(span)
    return span.end_s - span.start_s


def parse_size(text: str) -> tuple[int, int]:
    """'1280x720' -> (1280, 720); even numbers (yuv420p needs them)."""
    w, sep, h = text.lower().partition("x")
    if not (sep and w.isdigit() and h.isdigit() and int(w) > 0 and int(h) > 0):
        raise EditError(f"size {text!r}: use WIDTHxHEIGHT, e.g. 1280x720")
    if int(w) % 2 or int(h) % 2:
        raise EditError(f"size {text!r}: width and height must be even (yuv420p), e.g. 1280x720")
    return int(w), int(h)


def parse_rate(text: str) -> Fraction:
    """'25', '29.97', '30000/1001' -> the exact rate (29.97 reads as 30000/1001)."""
    try:
        value = Fraction(text.strip())
    except (ValueError, ZeroDivisionError):
        raise EditError(f"frame rate {text!r}: use a number or a fraction, e.g. 25 or 30000/1001") from None
    if not 0 < value <= 240:
        raise EditError(f"frame rate {text!r} must be > 0 and <= 240")
    return value if value.denominator in (1, 1001) else nominal_rate(float(value))
