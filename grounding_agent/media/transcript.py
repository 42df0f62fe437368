"""What is said in a video: `Word`, `Segment`, `Transcript` (times in seconds of the video), their JSON
form, subtitles, and finding where a quote was said (`Transcript.search`, `said_in`).

    transcript = Transcript.from_dict(json.loads(Path("talk.json").read_text()))
    transcript.search("my favorite color is blue")      # -> [SpeechMatch(start_s, end_s, score, ...)]

A match never spans a pause of PAUSE_S or more; the token matching itself is `text_match`'s.

A transcript read from a file is checked (`check_times`: finite, non-negative, start <= end, or a one-line
error naming the word) and, once the video is known, fitted to it (`fit_to_video`: a transcript reaching
past the video's end is of another video and refused; a word just past the end is clamped, with a note).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from typing import Any

import numpy as np

from grounding_agent.defaults import TRANSCRIPT_LIMITS
from grounding_agent.errors import ConfigError
from grounding_agent.media.text_match import best_alignments, normalize
from grounding_agent.types import Curve, Evidence, Moment

__all__ = [
    "CACHE_VERSION",
    "Segment",
    "SpeechMatch",
    "Transcript",
    "Word",
    "check_times",
    "fit_to_video",
    "said_in",
    "search_words",
]

CACHE_VERSION = (
    2  # bump when the stored layout or the meaning of a key changes (2: time zero = first presented frame)
)
PAUSE_S = 1.0  # a silence this long between two words ends a run: a quote is not matched across it


@dataclass(frozen=True)
class Word:
    text: str
    start_s: float
    end_s: float
    probability: float


@dataclass(frozen=True)
class Segment:
    """One stretch of speech as Whisper decoded it; `probability` is the mean of its words'."""

    text: str
    start_s: float
    end_s: float
    probability: float
    words: tuple[Word, ...] = ()


@dataclass(frozen=True)
class SpeechMatch:
    """Where a quote was said: the span of the matched words, the match quality in [0, 1], what was said."""

    start_s: float
    end_s: float
    score: float
    text: str
    query: str
    words: tuple[Word, ...] = ()

    def to_moment(self) -> Moment:
        return Moment(self.start_s, self.end_s, self.score, {"speech": self.text, "query": self.query})

    def to_evidence(self, source: str = "") -> Evidence:
        return Evidence("speech", self.start_s, self.end_s, self.score, f'"{self.text}"', source)


@dataclass(frozen=True)
class Transcript:
    """Segments and words spoken in a video, with times in seconds of the video.

    Attributes:
        segments: in time order.
        duration_s: audio duration that was transcribed (0 without an audio track).
        language: detected or given language code ("" when nothing was transcribed).
        speech_regions: (start_s, end_s) of voice activity found by the VAD.
        has_audio: False when the file has no audio stream (the transcript is then empty).
        model: which ASR model produced it.
        notes: what happened that a reader should know ("no audio track", ...).
        from_cache: whether it was read from the disk cache.
    """

    segments: tuple[Segment, ...] = ()
    duration_s: float = 0.0
    language: str = ""
    speech_regions: tuple[tuple[float, float], ...] = ()
    has_audio: bool = True
    model: str = ""
    notes: tuple[str, ...] = ()
    from_cache: bool = field(default=False, compare=False)

    @property
    def words(self) -> list[Word]:
        return [w for s in self.segments for w in s.words]

    @property
    def text(self) -> str:
        return " ".join(s.text for s in self.segments)

    def __bool__(self) -> bool:
        return bool(self.segments)

    def words_between(self, start_s: float, end_s: float) -> list[Word]:
        """Words whose middle lies in [start_s, end_s]."""
        return [w for w in self.words if start_s <= (w.start_s + w.end_s) / 2 <= end_s]

    def text_between(self, start_s: float, end_s: float) -> str:
        return " ".join(w.text for w in self.words_between(start_s, end_s))

    def speech_fraction(self, start_s: float, end_s: float) -> float:
        """Fraction of [start_s, end_s] covered by voice activity."""
        if end_s <= start_s:
            return 0.0
        covered = sum(max(0.0, min(e, end_s) - max(s, start_s)) for s, e in self.speech_regions)
        return min(1.0, covered / (end_s - start_s))

    def speech_activity(self, times_s: np.ndarray, hop_s: float) -> np.ndarray:
        """Per time (window centre, `hop_s` wide): the fraction of it that is speech, in [0, 1]."""
        times_s = np.asarray(times_s, dtype=float)
        return np.array([self.speech_fraction(t - hop_s / 2, t + hop_s / 2) for t in times_s])

    def activity_curve(self, hop_s: float = 0.5) -> Curve:
        """Voice activity as a `Curve` named "speech": the speech fraction per `hop_s` window."""
        n = max(1, int(np.ceil(self.duration_s / hop_s)))
        times = (np.arange(n) + 0.5) * hop_s
        return Curve("speech", times, self.speech_activity(times, hop_s))

    def search(self, query: str, *, top_k: int = 3, min_score: float = 0.35) -> list[SpeechMatch]:
        """Where `query` (a quote, or a topic's words) was said, best first; see `search_words`."""
        return search_words(self.words, query, top_k=top_k, min_score=min_score)

    def to_dict(self) -> dict[str, Any]:
        return {
            "version": CACHE_VERSION,
            "duration_s": self.duration_s,
            "language": self.language,
            "has_audio": self.has_audio,
            "model": self.model,
            "notes": list(self.notes),
            "speech_regions": [list(r) for r in self.speech_regions],
            "segments": [
                {
                    "text": s.text,
                    "start_s": s.start_s,
                    "end_s": s.end_s,
                    "probability": s.probability,
                    "words": [[w.text, w.start_s, w.end_s, w.probability] for w in s.words],
                }
                for s in self.segments
            ],
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any], *, from_cache: bool = False) -> Transcript:
        segments = tuple(
            Segment(
                str(s["text"]),
                float(s["start_s"]),
                float(s["end_s"]),
                float(s["probability"]),
                tuple(Word(str(t), float(a), float(b), float(p)) for t, a, b, p in s["words"]),
            )
            for s in data["segments"]
        )
        return check_times(
            cls(
                segments=segments,
                duration_s=float(data["duration_s"]),
                language=str(data.get("language", "")),
                speech_regions=tuple((float(a), float(b)) for a, b in data.get("speech_regions", [])),
                has_audio=bool(data.get("has_audio", True)),
                model=str(data.get("model", "")),
                notes=tuple(str(n) for n in data.get("notes", [])),
                from_cache=from_cache,
            )
        )

    def to_subtitles(self, fmt: str) -> str:
        """The segments as subtitles: fmt "srt" or "vtt" (written by pysubs2)."""
        import pysubs2

        if fmt not in ("srt", "vtt"):
            raise ConfigError(f"unknown subtitle format {fmt!r}; choose srt or vtt")
        subs = pysubs2.SSAFile()
        for s in self.segments:
            subs.append(
                pysubs2.SSAEvent(start=round(s.start_s * 1000), end=round(s.end_s * 1000), text=s.text)
            )
        return subs.to_string(fmt)


_REDO = (
    "fix or remove it, or transcribe this video: `grounding-agent transcribe VIDEO --asr-model DIR --json`"
)


def check_times(transcript: Transcript) -> Transcript:
    """`transcript` when every time in it is a finite number of seconds >= 0 and each start <= its end.

    Raises:
        ConfigError: one line naming the first bad word (counted from 1 over the whole transcript), segment
            or speech region, and how to fix it. Never dropped silently: a word at Infinity would cut to
            the end of the video, a NaN one would vanish from every search.
    """
    count = 0
    for number, segment in enumerate(transcript.segments, 1):
        for word in segment.words:
            count += 1
            _check_span(f"word {count}", word.text, word.start_s, word.end_s)
        _check_span(f"segment {number}", segment.text, segment.start_s, segment.end_s)
    for number, (start, end) in enumerate(transcript.speech_regions, 1):
        _check_span(f"speech region {number}", None, start, end)
    if not (math.isfinite(transcript.duration_s) and transcript.duration_s >= 0):
        raise ConfigError(
            f"the transcript's duration_s ({transcript.duration_s}) is not a finite number >= 0; {_REDO}"
        )
    return transcript


def _check_span(what: str, text: str | None, start_s: float, end_s: float) -> None:
    if not (math.isfinite(start_s) and math.isfinite(end_s)):
        problem = "has a time that is not a finite number of seconds"
    elif start_s < 0:
        problem = "starts before the video does (a negative time)"
    elif end_s < start_s:
        problem = "ends before it starts"
    else:
        return
    said = "" if text is None else f"{text[:40]!r}, "
    raise ConfigError(f"transcript {what} ({said}{start_s}..{end_s} s) {problem}; {_REDO}")


def fit_to_video(transcript: Transcript, duration_s: float) -> tuple[Transcript, list[str]]:
    """`transcript` fitted to a video `duration_s` long, and notes on what was changed or is missing.

    Words ending up to `TRANSCRIPT_LIMITS.foreign_slack_s` past the end are clamped to it (rounding,
    a last word held a little long); further, or a recorded duration that much longer, is the transcript
    of another video: refused. A recorded duration that much shorter gets a note (words after it are
    unknown).

    Raises:
        ConfigError: the transcript is of another (longer) video.
    """
    slack = TRANSCRIPT_LIMITS.foreign_slack_s
    words = transcript.words
    last_s = max([w.end_s for w in words] + [s.end_s for s in transcript.segments]
                 + [b for _, b in transcript.speech_regions] + [0.0])  # fmt: skip
    if last_s > duration_s + slack or transcript.duration_s > duration_s + slack:
        reach = max(last_s, transcript.duration_s)
        raise ConfigError(
            f"the transcript runs to {reach:.2f} s but the video is {duration_s:.2f} s long: it is the "
            f"transcript of another video; {_REDO.split(', or ', 1)[1]}"
        )
    notes = []
    if transcript.duration_s and transcript.duration_s < duration_s - slack:
        notes.append(
            f"the transcript covers {transcript.duration_s:.2f} s of this {duration_s:.2f} s video "
            "(made from another or a cut video?): nothing said after that is known"
        )
    if last_s <= duration_s:
        return transcript, notes
    late = sum(w.end_s > duration_s for w in words)
    notes.append(
        f"the transcript runs {last_s - duration_s:.2f} s past the video's end ({duration_s:.2f} s): "
        f"{late} word(s) clamped to it"
    )
    return _clamped(transcript, duration_s), notes


def _clamped(transcript: Transcript, end_s: float) -> Transcript:
    def word(w: Word) -> Word:
        return replace(w, start_s=min(w.start_s, end_s), end_s=min(w.end_s, end_s))

    segments = tuple(
        replace(s, start_s=min(s.start_s, end_s), end_s=min(s.end_s, end_s), words=tuple(map(word, s.words)))
        for s in transcript.segments
    )
    regions = tuple((min(a, end_s), min(b, end_s)) for a, b in transcript.speech_regions)
    return replace(transcript, segments=segments, speech_regions=regions)


def search_words(
    words: Sequence[Word], query: str, *, top_k: int = 3, min_score: float = 0.35
) -> list[SpeechMatch]:
    """The `top_k` best non-overlapping places where `query` was said, with scores >= `min_score`.

    The score is the alignment's score over the query's total weight (see `text_match.best_alignments`):
    1.0 when every query word was said in order (up to spelling), lower for missing, extra or different
    words. A match never spans a pause of PAUSE_S or more (two sentences sharing a word are not one quote).
    """
    q_tokens = normalize(query)
    if not q_tokens:
        return []
    found = [m for run in speech_runs(words) for m in _run_matches(run, q_tokens, query, top_k, min_score)]
    return sorted(found, key=lambda m: -m.score)[:top_k]


def speech_runs(words: Sequence[Word]) -> list[list[Word]]:
    """Words grouped into stretches of speech without a pause of PAUSE_S or more."""
    runs: list[list[Word]] = []
    for w in words:
        if runs and w.start_s - runs[-1][-1].end_s < PAUSE_S:
            runs[-1].append(w)
        else:
            runs.append([w])
    return runs


def _run_matches(
    words: Sequence[Word], q_tokens: list[str], query: str, top_k: int, min_score: float
) -> list[SpeechMatch]:
    """The best non-overlapping alignments of the query inside one run of words."""
    owner, s_tokens = [], []
    for k, w in enumerate(words):
        for t in normalize(w.text):
            owner.append(k)
            s_tokens.append(t)
    if not s_tokens:
        return []
    out = []
    for score, first, last in best_alignments(q_tokens, s_tokens, top_k, min_score):
        span = tuple(words[owner[first] : owner[last] + 1])
        text = " ".join(w.text for w in span)
        out.append(SpeechMatch(float(span[0].start_s), float(span[-1].end_s), score, text, query, span))
    return out


def said_in(
    transcript: Transcript, window_s: tuple[float, float], relation: str = "during"
) -> SpeechMatch | None:
    """What is said in a window, as whole stretches of speech (runs between pauses of PAUSE_S):

    "after": the first run that starts inside the window (all of it, even past the window's end);
    "before": the last run that ends inside it; otherwise: the words whose middle is inside. None if silent.
    """
    lo, hi = window_s
    runs = speech_runs(transcript.words)
    if relation == "after":
        chosen = next((r for r in runs if lo - 0.1 <= r[0].start_s < hi), None)
    elif relation == "before":
        chosen = next((r for r in reversed(runs) if lo < r[-1].end_s <= hi + 0.1), None)
    else:
        chosen = transcript.words_between(lo, hi) or None
    if not chosen:
        return None
    text = " ".join(w.text for w in chosen)
    return SpeechMatch(chosen[0].start_s, chosen[-1].end_s, 1.0, text, "", tuple(chosen))
