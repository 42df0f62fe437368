"""What is written on screen: OCR on sampled frames (RapidOCR, PP-OCR ONNX models shipped in its wheel), cached.

    reader = ScreenReader(fps=0.5)
    screen = reader.read("lecture.mp4")               # cached by file content
    screen.search("Quarterly results")                # -> [TextMatch(start_s, end_s, score, text)]

`rapidocr` 3.x ships its detection, direction and recognition models (PP-OCRv6 det/rec small, PP-OCR
mobile cls) inside the wheel, so nothing is downloaded at first use. Frames are streamed in chunks
(`signals.iter_frame_chunks`); a frame that looks like the previous one read (a slide that stays up)
reuses its text instead of running OCR again. Results are cached as JSON under
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

from grounding_agent.defaults import MEDIA
from grounding_agent.errors import ConfigError
from grounding_agent.io import write_json_atomic
from grounding_agent.types import Evidence, Moment, Video
from grounding_agent.utils.cache import cache_folder, file_fingerprint

log = logging.getLogger(__name__)

CACHE_VERSION = 2  # 2: times count from the first presented frame (edit lists, negative offsets)
# Mean absolute pixel difference (0-255) below which a frame shows the same text as the last one read.
SAME_FRAME = 3.0
MIN_LINE_SCORE = 0.5


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
    """Where a text is on screen: from the first to the end of the last sampled frame showing it."""

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
    """Text read on frames sampled every 1/fps seconds."""

    frames: tuple[FrameText, ...] = ()
    fps: float = MEDIA.ocr_fps
    duration_s: float = 0.0
    model: str = ""
    from_cache: bool = field(default=False, compare=False)

    def text_between(self, start_s: float, end_s: float) -> list[str]:
        """The distinct lines shown in frames within [start_s, end_s], in order of appearance."""
        seen: dict[str, None] = {}
        for f in self.frames:
            if start_s <= f.time_s <= end_s:
                seen.update(dict.fromkeys(line.text for line in f.lines))
        return list(seen)

    def search(self, query: str, *, top_k: int = 3, min_score: float = 0.7) -> list[TextMatch]:
        """Runs of consecutive frames whose text contains `query` (fuzzy), best first."""
        from rapidfuzz import fuzz

        q = _norm(query)
        if not q:
            return []
        step = 1.0 / self.fps
        runs: list[TextMatch] = []
        for f in self.frames:
            text = _norm(f.text)
            score = fuzz.partial_ratio(q, text) / 100.0 if text else 0.0
            if score < min_score:
                continue
            end = min(f.time_s + step, self.duration_s) if self.duration_s else f.time_s + step
            last = runs[-1] if runs else None
            if last is not None and f.time_s - last.end_s < 0.5 * step and abs(score - last.score) < 0.15:
                runs[-1] = TextMatch(last.start_s, end, max(last.score, score), last.text, query)
            else:
                runs.append(TextMatch(f.time_s, end, score, f.text, query))
        return sorted(runs, key=lambda m: (-m.score, m.start_s))[:top_k]

    def to_dict(self) -> dict[str, Any]:
        return {
            "version": CACHE_VERSION,
            "fps": self.fps,
            "duration_s": self.duration_s,
            "model": self.model,
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
            frames, float(data["fps"]), float(data["duration_s"]), str(data.get("model", "")), from_cache
        )


@functools.cache
def _engine() -> Any:
    from rapidocr import RapidOCR

    # Models ship in the wheel (rapidocr/models); "error" keeps its per-call info logs quiet.
    return RapidOCR(params={"Global.log_level": "error"})


def read_lines(pixels: np.ndarray) -> tuple[TextLine, ...]:
    """OCR one RGB frame (H, W, 3) uint8."""
    out = _engine()(np.ascontiguousarray(pixels[:, :, ::-1]))  # RapidOCR takes OpenCV's BGR order
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
    frames_read: int = 0  # frames OCR actually ran on (a frame like the previous one reuses its text)


class ScreenReader:
    """OCR over frames sampled at `fps` (resized to at most `max_pixels`), cached by file content."""

    def __init__(
        self,
        *,
        fps: float = MEDIA.ocr_fps,
        max_pixels: int | None = MEDIA.ocr_max_pixels,
        cache_dir: str | Path | None = None,
        use_cache: bool = True,
    ):
        if fps <= 0:
            raise ConfigError(f"OCR fps must be > 0, got {fps}")
        self.fps, self.max_pixels = fps, max_pixels
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
        screen = ScreenText(tuple(frames), self.fps, open_video(path).duration_s, self.model_name())
        if self.use_cache:
            write_json_atomic(cache_file, screen.to_dict())
        return screen


def _same(a: np.ndarray, b: np.ndarray) -> bool:
    return a.shape == b.shape and float(np.abs(a.astype(np.int16) - b.astype(np.int16)).mean()) < SAME_FRAME


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
