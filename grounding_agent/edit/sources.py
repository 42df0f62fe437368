"""Where an operation's spans come from: the user's times, a grounder / the agent, highlights, the audio's
loudness, a transcript's words. Each span carries the `Evidence` that found it.

The transcript seam: any object with `words` (each with `start_s`, `end_s`, `text`), or with `segments`
whose items have `words` (and `start_s`, `end_s`, `text`) — `grounding_agent.media.speech.Transcript` is one;
dicts with the same keys work too. Word matching ignores case and punctuation and matches whole words
(a phrase matches consecutive words).
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from grounding_agent.edit.plan import DEFAULT_MIN_SILENCE_S, DEFAULT_SILENCE_DB, Operation, Span
from grounding_agent.errors import EditError
from grounding_agent.types import Evidence, Moment, Video

# Loudness windows for silence detection: fine enough that a boundary lands within half a frame at 25 fps.
SILENCE_HOP_S = 0.02


@dataclass(frozen=True)
class Word:
    start_s: float
    end_s: float
    text: str


@dataclass
class EditSources:
    """What operations may draw on. Only the sources an instruction needs must be given.

    Attributes:
        grounder: grounds "the part where ..." (any `Grounder`; model-free baselines work).
        agent: an `Agent` for compositional descriptions; used when `use_agent(query)` says so (default:
            always, when given).
        saliency: a `ClipSaliency` for the highlight detector's CLIP signal (optional).
        transcript: words spoken (see the module docstring), for "remove every time he says 'um'".
        threshold_db, min_silence_s: defaults for silences the instruction does not size.
    """

    grounder: Any = None
    agent: Any = None
    use_agent: Callable[[str], bool] | None = None
    # Built on first use, so an instruction that needs no model never loads or contacts one.
    grounder_factory: Callable[[], Any] | None = None
    agent_factory: Callable[[Any], Any] | None = None
    transcript_factory: Callable[[], Any] | None = None
    saliency_factory: Callable[[], Any] | None = None
    saliency: Any = None
    transcript: Any = None
    threshold_db: float = DEFAULT_SILENCE_DB
    min_silence_s: float = DEFAULT_MIN_SILENCE_S
    notes: list[str] = field(default_factory=list)

    def resolve(self, video: Video, op: Operation) -> list[Span]:
        """The source spans `op` targets (head / tail are relative to the edit: see `plan`)."""
        handler = {
            "range": self._range,
            "moment": self._moment,
            "highlights": self._highlights,
            "silence": self._silence,
            "words": self._words,
            "speech": self._speech,
        }[op.target]
        return handler(video, op)

    # --- per target -------------------------------------------------------------------------------

    def _range(self, video: Video, op: Operation) -> list[Span]:
        start = float(op.start_s or 0.0)
        end = video.duration_s if op.end_s is None else min(float(op.end_s), video.duration_s)
        if start >= video.duration_s:
            self.notes.append(f"{op.describe()}: starts after the video ends ({video.duration_s:.2f} s)")
            return []
        return [Span(start, end)]

    def _moment(self, video: Video, op: Operation) -> list[Span]:
        found, source = self._ground(video, op.query or "")
        if not found:
            return []
        first = found[0]
        ev = Evidence("grounder", first.start_s, first.end_s, _unit(first.score), op.query or "", source)
        if not op.until:
            return [Span(first.start_s, first.end_s, ev)]
        candidates, _ = self._ground(video, op.until, top_k=5)
        later = [m for m in candidates if m.end_s > first.start_s]
        if not later:
            self.notes.append(f"{op.describe()}: no {op.until!r} after {op.query!r}; kept to the end of the first")
            return [Span(first.start_s, first.end_s, ev)]
        last = max(later, key=lambda m: m.score)
        ev_end = Evidence("grounder", last.start_s, last.end_s, _unit(last.score), op.until, source)
        span_ev = Evidence("composition", first.start_s, last.end_s, None, f"from {op.query!r} until {op.until!r}", source)
        # The span itself, plus each end's grounding as evidence (inside the span: the cut is the same).
        return [Span(first.start_s, last.end_s, span_ev), Span(first.start_s, first.end_s, ev),
                Span(last.start_s, last.end_s, ev_end)]  # fmt: skip

    def _ground(self, video: Video, query: str, *, top_k: int = 1) -> tuple[list[Moment], str]:
        """Moments for `query`, best first, and who found them: the agent (compositional) or the grounder."""
        if self.grounder is None and self.grounder_factory is not None:
            self.grounder = self.grounder_factory()
        wants = self.use_agent is None or self.use_agent(query)
        if self.agent is None and self.agent_factory is not None and self.use_agent is not None and wants:
            self.agent = self.agent_factory(self.grounder)
        if self.agent is not None and wants:
            result = self.agent.run(video, query)
            return sorted(result.moments, key=lambda m: -m.score)[:top_k], "agent"
        if self.grounder is None:
            raise EditError(
                f"finding {query!r} needs a grounder: pass --backend (e.g. hf, vllm; 'uniform' works without a model)"
            )
        grounding = self.grounder.ground(video, query, top_k=top_k)
        if grounding.info.get("fallback"):
            self.notes.append(f"the grounder's answer for {query!r} was unreadable: it fell back to the whole video")
        return list(grounding.moments), str(getattr(self.grounder, "name", type(self.grounder).__name__))

    def _highlights(self, video: Video, op: Operation) -> list[Span]:
        from grounding_agent.highlights.windows import WindowSearch, generic_highlights

        if self.saliency is None and self.saliency_factory is not None:
            self.saliency = self.saliency_factory()
        top_k = op.count or min(20, max(3, math.ceil((op.total_s or 6.0) / 2.0)))
        result = generic_highlights(video.path, saliency=self.saliency, search=WindowSearch(top_k=top_k))
        used = ", ".join(sorted(result.weights)) or "no signal"
        if not result.weights:
            self.notes.append("highlights: every signal is flat on this video; the windows are arbitrary")
        windows = result.windows
        if op.total_s is None:  # a window scoring <= 0 is mostly below the video's own threshold
            windows = [w for w in windows if w.score > 0] or windows[:1]
            if len(windows) < (op.count or 0):
                self.notes.append(f"highlights: only {len(windows)} of the {op.count} asked stand out")
        spans, budget = [], op.total_s
        for rank, window in enumerate(windows[: op.count or len(windows)], 1):
            length = window.length_s if budget is None else min(window.length_s, budget)
            if length <= 0:
                break
            ev = Evidence("saliency", window.start_s, window.start_s + length, _unit(window.score),
                          f"highlight #{rank}", f"generic highlights ({used})")  # fmt: skip
            spans.append(Span(window.start_s, window.start_s + length, ev))
            if budget is not None:
                budget -= length
        return spans

    def _silence(self, video: Video, op: Operation) -> list[Span]:
        from grounding_agent.media.audio import audio_energy

        threshold = self.threshold_db if op.threshold_db is None else op.threshold_db
        minimum = self.min_silence_s if op.min_silence_s is None else op.min_silence_s
        curve = audio_energy(video.path, hop_s=SILENCE_HOP_S)
        if curve is None:
            self.notes.append("silences: the video has no audio stream, so nothing is silent")
            return []
        spans = []
        for start, end in silent_runs(curve.times_s, curve.values, SILENCE_HOP_S, threshold, minimum):
            end = min(end, video.duration_s)
            ev = Evidence("audio", start, end, None, f"below {threshold:g} dBFS for {end - start:.2f} s", "audio energy")
            spans.append(Span(start, end, ev))
        return spans

    def _transcript(self, op: Operation) -> Any:
        if self.transcript is None and self.transcript_factory is not None:
            self.transcript = self.transcript_factory()
        if self.transcript is None:
            raise EditError(
                f"{op.describe()!r} needs a transcript of the speech: pass --asr-model DIR or --transcript FILE.json"
                " (Python: transcript=...)"
            )
        return self.transcript

    def _speech(self, video: Video, op: Operation) -> list[Span]:
        transcript = self._transcript(op)
        regions = [tuple(map(float, r)) for r in (_get(transcript, "speech_regions") or ())]
        source = "voice activity"
        if not regions:
            regions, source = [(w.start_s, w.end_s) for w in transcript_words(transcript)], "transcript words"
        gap = self.min_silence_s if op.min_silence_s is None else op.min_silence_s
        spans: list[list[float]] = []
        for start, end in sorted(regions):  # a pause shorter than `gap` stays inside the speech
            if spans and start - spans[-1][1] < gap:
                spans[-1][1] = max(spans[-1][1], end)
            else:
                spans.append([start, end])
        if not spans:
            self.notes.append("speech: nothing is said in this video")
        return [Span(a, b, Evidence("speech", a, b, None, "speech", source)) for a, b in spans]

    def _words(self, video: Video, op: Operation) -> list[Span]:
        transcript = self._transcript(op)
        words = transcript_words(transcript)
        hits = find_phrases(words, op.phrases)
        if op.action == "keep":
            sentences = transcript_segments(transcript)
            if sentences:  # keep what was said around the words: the whole sentence
                hits = [s for s in sentences if any(h.start_s < s.end_s and h.end_s > s.start_s for h in hits)]
        return [Span(h.start_s, h.end_s, Evidence("speech", h.start_s, h.end_s, None, h.text, "transcript")) for h in hits]


def _unit(score: float) -> float | None:
    """Evidence scores live in [0, 1]; a grounder's raw score outside it is not a probability."""
    return float(score) if 0.0 <= score <= 1.0 else None


def silent_runs(
    centres_s: np.ndarray, db: np.ndarray, hop_s: float, threshold_db: float, min_length_s: float
) -> list[tuple[float, float]]:
    """Runs of loudness windows (centred at `centres_s`, `hop_s` wide) below `threshold_db` lasting at
    least `min_length_s`, as (start_s, end_s) of the windows' edges."""
    quiet = np.asarray(db) < threshold_db
    edges = np.flatnonzero(np.diff(np.concatenate([[0], quiet.astype(np.int8), [0]])))
    runs = []
    for a, b in zip(edges[::2], edges[1::2], strict=True):
        start, end = float(centres_s[a] - hop_s / 2), float(centres_s[b - 1] + hop_s / 2)
        if end - start >= min_length_s - 1e-9:
            runs.append((max(0.0, start), end))
    return runs


# --- transcripts ------------------------------------------------------------------------------------


def _get(item: Any, name: str) -> Any:
    return item.get(name) if isinstance(item, dict) else getattr(item, name, None)


def _as_words(items: Iterable[Any]) -> list[Word]:
    return [Word(float(_get(w, "start_s")), float(_get(w, "end_s")), str(_get(w, "text") or "")) for w in items]


def transcript_words(transcript: Any) -> list[Word]:
    """Every word of a transcript, in time order."""
    words = _get(transcript, "words")
    if words is None:
        words = [w for seg in _get(transcript, "segments") or () for w in (_get(seg, "words") or ())]
    return sorted(_as_words(words), key=lambda w: w.start_s)


def transcript_segments(transcript: Any) -> list[Word]:
    """The transcript's segments (sentences) as spans with their text; [] if it has none."""
    return _as_words(_get(transcript, "segments") or ())


def _tokens(text: str) -> list[str]:
    """Lower-cased words without punctuation; with the speech extra, numbers spelled out as ASR writes them."""
    try:
        from grounding_agent.media.speech import normalize
    except ImportError:
        return re.sub(r"[^\w']+", " ", text.lower()).replace("'", "").split()
    return normalize(text)


def find_phrases(words: list[Word], phrases: Iterable[str]) -> list[Word]:
    """Every occurrence of each phrase (consecutive whole words, case and punctuation ignored)."""
    tokens = [" ".join(_tokens(w.text)) for w in words]
    hits = []
    for phrase in phrases:
        want = _tokens(phrase)
        if not want:
            continue
        k = len(want)
        for i in range(len(words) - k + 1):
            if tokens[i : i + k] == want:
                hits.append(Word(words[i].start_s, words[i + k - 1].end_s, " ".join(w.text for w in words[i : i + k])))
    return sorted(hits, key=lambda w: w.start_s)
