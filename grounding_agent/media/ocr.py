"""What is written on screen: OCR on sampled frames (RapidOCR, PP-OCR ONNX models shipped in its wheel), cached.

    reader = ScreenReader(fps=0.5)
    screen = reader.read("lecture.mp4")               # cached by file content
    screen.search("Quarterly results")                # -> [TextMatch(start_s, end_s, score, text)]

`rapidocr` 3.x ships its detection, direction and recognition models (PP-OCRv6 det/rec small, PP-OCR
mobile cls) inside the wheel, so nothing is downloaded at first use. Frames are streamed in chunks
(`signals.iter_frame_chunks`); a frame that looks like the previous one read (a slide that stays up)
reuses its text instead of running OCR again. Between two coarse samples that read differently, the frames
are then sampled at `OCR_SPANS.refine_fps` (at most the video's own rate) and bisected, OCR running only
on the frames the bisection visits, so a text's span runs from the first to the last frame it is read on
within one refined interval (measured in docs/speech-and-text.md). Results are cached as JSON under
`~/.cache/grounding-agent/ocr`, keyed by the file's content hash, the sampling and the OCR version.
`ocr_query` tells whether a (sub-)query asks about on-screen text ("when does the slide titled X appear").
"""

from __future__ import annotations

import functools
import hashlib
import json
import logging
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from grounding_agent.defaults import MEDIA, OCR_SPANS
from grounding_agent.errors import ConfigError
from grounding_agent.io import write_json_atomic
from grounding_agent.types import Evidence, Moment, Video
from grounding_agent.utils.cache import cache_folder, file_fingerprint

log = logging.getLogger(__name__)

CACHE_VERSION = 3  # 2: times count from the first presented frame; 3: spans refined at their edges
# Mean absolute pixel difference (0-255) below which a frame shows the same text as the last one read.
SAME_FRAME = 3.0
# ... and at most this fraction of its pixels changed by more than CHANGED_LEVEL (0-255) in any channel.
SAME_FRACTION = 0.001
CHANGED_LEVEL = 48
MIN_LINE_SCORE = 0.5
# rapidfuzz ratio (0-100) at or above which two frames' texts are the same text read with OCR noise.
SAME_TEXT_RATIO = 90


@dataclass(frozen=True)
class TextLine:
    """One line of text read in a frame: its recognition score and box (x0, y0, x1, y1) in pixels."""

    text: str
    score: float
    box: tuple[float, float, float, float]


@dataclass(frozen=True)
class FrameText:
    time_s: float
    lines: tuple[TextLine, ...] = ()

    @property
    def text(self) -> str:
        return " ".join(line.text for line in self.lines)


@dataclass(frozen=True)
class TextMatch:
    """Where a text is on screen: from the first frame it is read on to the next frame read (where it is
    no longer read), so both ends are within one sampling interval of the truth."""

    start_s: float
    end_s: float
    score: float
    text: str
    query: str

    def to_moment(self) -> Moment:
        return Moment(self.start_s, self.end_s, self.score, {"on_screen": self.text, "query": self.query})

    def to_evidence(self, source: str = "rapidocr") -> Evidence:
        return Evidence("ocr", self.start_s, self.end_s, self.score, self.text, source)


def _norm(text: str) -> str:
    return " ".join(re.sub(r"[^\w\s]", " ", text.lower()).split())


@dataclass(frozen=True)
class ScreenText:
    """Text read on frames sampled every 1/fps seconds, plus the frames read around each change of text
    (sampled at `refine_fps`; 0: none), in time order."""

    frames: tuple[FrameText, ...] = ()
    fps: float = MEDIA.ocr_fps
    duration_s: float = 0.0
    model: str = ""
    refine_fps: float = 0.0
    from_cache: bool = field(default=False, compare=False)

    def text_between(self, start_s: float, end_s: float) -> list[str]:
        """The distinct lines shown in frames within [start_s, end_s], in order of appearance."""
        seen: dict[str, None] = {}
        for f in self.frames:
            if start_s <= f.time_s <= end_s:
                seen.update(dict.fromkeys(line.text for line in f.lines))
        return list(seen)

    def search(self, query: str, *, top_k: int = 3, min_score: float = 0.7) -> list[TextMatch]:
        """Runs of consecutive frames whose text contains `query` (fuzzy), best first: each from its first
        frame to the next frame read (the last frame's sampling step at the end of the video)."""
        from rapidfuzz import fuzz

        q = _norm(query)
        if not q:
            return []
        step = 1.0 / self.fps
        runs: list[TextMatch] = []
        extends = False  # the previous frame matched: this one may continue its run
        for i, f in enumerate(self.frames):
            text = _norm(f.text)
            score = fuzz.partial_ratio(q, text) / 100.0 if text else 0.0
            if score < min_score:
                extends = False
                continue
            if i + 1 < len(self.frames):
                end = self.frames[i + 1].time_s
            else:
                end = min(f.time_s + step, self.duration_s) if self.duration_s else f.time_s + step
            last = runs[-1] if runs else None
            if extends and last is not None and abs(score - last.score) < 0.15:
                runs[-1] = TextMatch(last.start_s, end, max(last.score, score), last.text, query)
            else:
                runs.append(TextMatch(f.time_s, end, score, f.text, query))
            extends = True
        return sorted(runs, key=lambda m: (-m.score, m.start_s))[:top_k]

    def to_dict(self) -> dict[str, Any]:
        return {
            "version": CACHE_VERSION,
            "fps": self.fps,
            "duration_s": self.duration_s,
            "model": self.model,
            "refine_fps": self.refine_fps,
            "frames": [
                {"time_s": f.time_s, "lines": [[line.text, line.score, list(line.box)] for line in f.lines]}
                for f in self.frames
            ],
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any], *, from_cache: bool = False) -> ScreenText:
        frames = tuple(
            FrameText(
                float(f["time_s"]),
                tuple(TextLine(str(t), float(s), tuple(map(float, b))) for t, s, b in f["lines"]),
            )
            for f in data["frames"]
        )
        return cls(
            frames,
            float(data["fps"]),
            float(data["duration_s"]),
            str(data.get("model", "")),
            float(data.get("refine_fps", 0.0)),
            from_cache,
        )


@functools.cache
def _engine() -> Any:
    from rapidocr import RapidOCR

    # Models ship in the wheel (rapidocr/models); "error" keeps its per-call info logs quiet.
    return RapidOCR(params={"Global.log_level": "error"})


def read_lines(pixels: np.ndarray, engine: Any = None) -> tuple[TextLine, ...]:
    """OCR one RGB frame (H, W, 3) uint8; lines under `MIN_LINE_SCORE` dropped. `engine`: a RapidOCR
    instance of the caller's (e.g. with its own thread count), else this process's shared one."""
    out = (engine or _engine())(np.ascontiguousarray(pixels[:, :, ::-1]))  # RapidOCR takes OpenCV's BGR order
    if out.txts is None:
        return ()
    lines = []
    for text, score, box in zip(out.txts, out.scores, out.boxes):
        if float(score) >= MIN_LINE_SCORE and text.strip():
            xs, ys = np.asarray(box)[:, 0], np.asarray(box)[:, 1]
            lines.append(
                TextLine(
                    text.strip(),
                    float(score),
                    (float(xs.min()), float(ys.min()), float(xs.max()), float(ys.max())),
                )
            )
    return tuple(lines)


@dataclass
class OcrStats:
    hits: int = 0
    misses: int = 0
    frames_read: int = 0  # coarse-pass frames OCR ran on (a frame like the previous one reuses its text)
    edge_frames_read: int = 0  # frames OCR ran on while bisecting the edges of a change of text


class ScreenReader:
    """OCR over frames sampled at `fps` (resized to at most `max_pixels`), each change of text then timed
    at `refine_fps` (see the module docstring; 0: coarse times only), cached by file content."""

    def __init__(
        self,
        *,
        fps: float = MEDIA.ocr_fps,
        max_pixels: int | None = MEDIA.ocr_max_pixels,
        cache_dir: str | Path | None = None,
        use_cache: bool = True,
        refine_fps: float = OCR_SPANS.refine_fps,
    ):
        if fps <= 0 or refine_fps < 0:
            raise ConfigError(f"OCR fps must be > 0 and refine_fps >= 0, got {fps} and {refine_fps}")
        self.fps, self.max_pixels, self.refine_fps = fps, max_pixels, refine_fps
        self.cache_dir = Path(cache_dir) if cache_dir is not None else cache_folder("ocr")
        self.use_cache = use_cache
        self.stats = OcrStats()

    @staticmethod
    def model_name() -> str:
        import rapidocr

        return f"rapidocr-{getattr(rapidocr, '__version__', 'unknown')}"

    def _key(self, path: Path) -> str:
        parts = [
            CACHE_VERSION,
            file_fingerprint(path),
            self.fps,
            self.max_pixels,
            self.model_name(),
            SAME_FRAME,
            SAME_FRACTION,
            CHANGED_LEVEL,
            self.refine_fps,
        ]
        return hashlib.sha256(json.dumps(parts).encode()).hexdigest()[:32]

    def read(self, video: Video | str | Path) -> ScreenText:
        from grounding_agent.media.decode import iter_frame_chunks
        from grounding_agent.media.video import open_video

        path = Path(video.path if isinstance(video, Video) else video)
        key = self._key(path)
        cache_file = self.cache_dir / f"{key}.json"
        if self.use_cache and cache_file.is_file():
            try:
                self.stats.hits += 1
                return ScreenText.from_dict(
                    json.loads(cache_file.read_text(encoding="utf-8")), from_cache=True
                )
            except (OSError, ValueError, KeyError, TypeError) as exc:
                self.stats.hits -= 1
                log.warning("ignoring unreadable OCR cache entry %s (%s)", cache_file, exc)
        self.stats.misses += 1
        frames: list[FrameText] = []
        previous: np.ndarray | None = None
        for chunk in iter_frame_chunks(path, fps=self.fps, max_pixels=self.max_pixels):
            for t, pixels in zip(chunk.timestamps_s, chunk.pixels):
                if previous is not None and frames and _same(previous, pixels):
                    lines = frames[-1].lines
                else:
                    lines = read_lines(pixels)
                    self.stats.frames_read += 1
                    previous = pixels
                frames.append(FrameText(float(t), lines))
        video = open_video(path)
        refine_fps = min(self.refine_fps, video.avg_fps or self.refine_fps)
        if refine_fps > self.fps:
            frames = self._refine(path, frames, refine_fps, video.duration_s)
        screen = ScreenText(
            tuple(frames), self.fps, video.duration_s, self.model_name(), max(refine_fps, 0.0)
        )
        if self.use_cache:
            write_json_atomic(cache_file, screen.to_dict())
        return screen

    def _refine(
        self, path: Path, frames: list[FrameText], refine_fps: float, duration_s: float
    ) -> list[FrameText]:
        """`frames` plus the frames resolved while bisecting each change of text between two coarse samples
        (and between the last sample and the video's last frame)."""
        edges: list[FrameText] = []
        for a, b in zip(frames, frames[1:]):
            if not _same_text(a.lines, b.lines):
                edges += self._bisect(path, a, b.time_s, b.lines, refine_fps)
        if frames and duration_s - frames[-1].time_s > 1.0 / refine_fps:  # the tail after the last sample
            edges += self._bisect(path, frames[-1], duration_s, None, refine_fps)
        return sorted([*frames, *edges], key=lambda f: f.time_s)

    def _bisect(
        self,
        path: Path,
        a: FrameText,
        end_s: float,
        end_lines: tuple[TextLine, ...] | None,
        refine_fps: float,
    ) -> list[FrameText]:
        """The frames from `a` to the one at `end_s` (`end_lines` read there; None: not read yet), sampled at
        `refine_fps` and resolved by bisection until every two neighbouring resolved frames that read
        differently are one refined interval apart. A frame that looks like a resolved neighbour (pixels)
        takes its text; OCR runs only on the others."""
        from grounding_agent.media.decode import sample_frames

        window = sample_frames(
            path, fps=refine_fps, start_s=a.time_s, end_s=end_s + 0.5 / refine_fps, max_pixels=self.max_pixels
        )
        times, pixels = window.timestamps_s, window.pixels
        first = int(np.argmin(np.abs(times - a.time_s)))
        last = len(times) - 1 if end_lines is None else int(np.argmin(np.abs(times - end_s)))
        if last - first < 1:
            return []
        known = {
            first: a.lines,
            last: end_lines if end_lines is not None else self._lines(pixels, last, first, a),
        }
        todo = [(first, last)] if not _same_text(known[first], known[last]) else []
        while todo:  # (i, j): known[i] and known[j] differ, the frames strictly between them unresolved
            i, j = todo.pop()
            if j - i <= 1:
                continue
            m = (i + j) // 2
            if _same(pixels[m], pixels[i]):
                known[m] = known[i]
            elif _same(pixels[m], pixels[j]):
                known[m] = known[j]
            else:
                known[m] = read_lines(pixels[m])
                self.stats.edge_frames_read += 1
            todo += [(i, m)] if not _same_text(known[m], known[i]) else []
            todo += [(m, j)] if not _same_text(known[m], known[j]) else []
        resolved = sorted(k for k in known if k != first and (k != last or end_lines is None))
        return [FrameText(float(times[k]), known[k]) for k in resolved]

    def _lines(self, pixels: np.ndarray, k: int, first: int, a: FrameText) -> tuple[TextLine, ...]:
        """The text of frame `k` (that of `a`, at index `first`, when it looks the same)."""
        if _same(pixels[k], pixels[first]):
            return a.lines
        self.stats.edge_frames_read += 1
        return read_lines(pixels[k])


def _same_text(a: tuple[TextLine, ...], b: tuple[TextLine, ...]) -> bool:
    """Two frames read the same text (up to OCR noise of a character or two)."""
    from rapidfuzz import fuzz

    x, y = _norm(" ".join(t.text for t in a)), _norm(" ".join(t.text for t in b))
    return x == y or (bool(x) and bool(y) and fuzz.ratio(x, y) >= SAME_TEXT_RATIO)


def _same(a: np.ndarray, b: np.ndarray) -> bool:
    """Two frames show the same thing: little change on average, and hardly a pixel changed much (a short
    word appearing on a still background moves the mean by less than SAME_FRAME)."""
    if a.shape != b.shape:
        return False
    diff = np.abs(a.astype(np.int16) - b.astype(np.int16)).max(axis=-1)
    return float(diff.mean()) < SAME_FRAME and float((diff > CHANGED_LEVEL).mean()) < SAME_FRACTION


# --- is a (sub-)query about on-screen text? -------------------------------------------------------------

_QUOTED = re.compile(r"[\"“”]([^\"“”]+)[\"“”]|(?<!\w)['‘]((?:[^'‘’]|(?<=\w)['’](?=\w))+)['’](?!\w)")
_TITLED = re.compile(
    r"\b(?:slide|title|caption|sign|banner|screen|text|heading|card|subtitle|label)s?\s+(?:titled|called|named|"
    r"reading|that\s+reads|which\s+reads|saying|that\s+says|with\s+(?:the\s+)?(?:text|words|title))\s+(.+?)\s*"
    r"(?:appears?|is\s+shown|shows?\s+up|comes?\s+up|is\s+on\s+screen)?[?.!]*$",
    re.IGNORECASE,
)
_ON_SCREEN = re.compile(
    r"\b(?:on\s+screen|on\s+the\s+screen|written|displayed|shown|reads|titled)\b", re.IGNORECASE
)


def ocr_query(text: str) -> str | None:
    """The text to look for on screen if `text` asks about it, else None.

    "when does the slide titled Quarterly Results appear" -> "Quarterly Results"; "when is 'EXIT' shown on
    screen" -> "EXIT"; "the sign reads 'open'" -> "open"; "he says 'hi'" -> None.
    """
    quote = _QUOTED.search(text)
    if quote and _ON_SCREEN.search(text):
        return (quote.group(1) or quote.group(2)).strip()
    titled = _TITLED.search(text)
    if titled:
        return titled.group(1).strip(" \"'“”‘’") or None
    return None
