"""Where an operation's spans come from: the user's times, a grounder / the agent, highlights, the audio's
loudness, a transcript's words. Each span carries the `Evidence` that found it.

Transcripts are `grounding_agent.media.transcript.Transcript`s; a hand-made one (a mapping or object with
`segments` whose items have `words`, or bare `words`, each with `start_s`, `end_s`, `text`) is converted
by `as_transcript`. Either is checked (times finite, start <= end: else a one-line error naming the word)
and fitted to the video (one of another, longer video is refused; see `media.transcript.fit_to_video`).
Phrases are found by the one fuzzy phrase matcher (`find_phrases`: numbers, currency, spelling variants,
punctuation, contractions and case aside), the same as `ground`'s and `transcribe --search`'s.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import numpy as np

from grounding_agent.defaults import EDIT, PHRASE_MATCH, SPEECH_EDIT
from grounding_agent.edit.plan import Operation, Span
from grounding_agent.edit.speech_spans import (
    floor_level,
    hit_ranges,
    merged,
    padded_silences,
    quiet_core,
    sentences_with,
    word_spans,
)
from grounding_agent.errors import EditError
from grounding_agent.media.text_match import normalize
from grounding_agent.media.transcript import (
    Segment,
    Transcript,
    Word,
    check_times,
    fit_to_video,
    search_words,
)
from grounding_agent.media.vad import fit_to_energy
from grounding_agent.types import Evidence, Moment, Video

if TYPE_CHECKING:
    from grounding_agent.grounders.base import Grounder

# Loudness windows for silence detection and word tails: a boundary lands within a quarter frame at 25 fps.
SILENCE_HOP_S = SPEECH_EDIT.energy_hop_s


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
        pad_ms, min_gap_s: kept audio beside wanted speech, and the shortest silence or word cut made
            (see `defaults.SpeechEditDefaults`; spans come from the words, never from segment ends).
    """

    grounder: Grounder | None = None
    agent: Any = None
    use_agent: Callable[[str], bool] | None = None
    # Built on first use, so an instruction that needs no model never loads or contacts one.
    grounder_factory: Callable[[], Any] | None = None
    agent_factory: Callable[[Any], Any] | None = None
    transcript_factory: Callable[[], Any] | None = None
    saliency_factory: Callable[[], Any] | None = None
    saliency: Any = None
    transcript: Any = None
    threshold_db: float = EDIT.silence_db
    min_silence_s: float = EDIT.min_silence_s
    pad_ms: float = SPEECH_EDIT.pad_ms
    min_gap_s: float = SPEECH_EDIT.min_gap_s
    notes: list[str] = field(default_factory=list)
    _curve: Any = field(default=None, init=False, repr=False)  # (video path, loudness), decoded once

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
            self.notes.append(
                f"{op.describe()}: no {op.until!r} after {op.query!r}; kept to the end of the first"
            )
            return [Span(first.start_s, first.end_s, ev)]
        last = max(later, key=lambda m: m.score)
        ev_end = Evidence("grounder", last.start_s, last.end_s, _unit(last.score), op.until, source)
        span_ev = Evidence(
            "composition", first.start_s, last.end_s, None, f"from {op.query!r} until {op.until!r}", source
        )
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
            self.notes.append(
                f"the grounder's answer for {query!r} was unreadable: it fell back to the whole video"
            )
        return list(grounding.moments), self.grounder.name

    def _highlights(self, video: Video, op: Operation) -> list[Span]:
        from grounding_agent.highlights.windows import WindowSearch, generic_highlights

        if self.saliency is None and self.saliency_factory is not None:
            self.saliency = self.saliency_factory()
        top_k = op.count or min(20, max(3, math.ceil((op.total_s or 6.0) / 2.0)))
        if self.transcript is None and self.transcript_factory is not None and op.total_s is not None:
            self.transcript = self.transcript_factory()  # a teaser snaps to sentences when there are some
        words = self._transcript(video, op) if self.transcript is not None and op.total_s else None
        result = generic_highlights(video.path, saliency=self.saliency, search=WindowSearch(top_k=top_k))
        used = ", ".join(sorted(result.weights)) or "no signal"
        if not result.weights:
            self.notes.append("highlights: every signal is flat on this video; the windows are arbitrary")
        windows = result.windows
        if op.total_s is None:  # a window scoring <= 0 is mostly below the video's own threshold
            windows = [w for w in windows if w.score > 0] or windows[:1]
            if len(windows) < (op.count or 0):
                self.notes.append(f"highlights: only {len(windows)} of the {op.count} asked stand out")
        if op.total_s is not None:
            return self._teaser(video, op, result, words, used)
        spans = []
        for rank, window in enumerate(windows[: op.count or len(windows)], 1):
            ev = Evidence("saliency", window.start_s, window.end_s, _unit(window.score),
                          f"highlight #{rank}", f"generic highlights ({used})")  # fmt: skip
            spans.append(Span(window.start_s, window.end_s, ev))
        return spans

    def _teaser(self, video: Video, op: Operation, result: Any, words: Any, used: str) -> list[Span]:
        """`op.total_s` of highlights: whole sentences when the transcript has them, else grown windows."""
        from grounding_agent.edit import teaser

        total, fused = float(op.total_s or 0.0), result.clip_scores.get("fused", np.zeros(0))
        sentences = teaser.sentence_spans(words, video.duration_s) if words is not None else []
        scores = [teaser.span_score(fused, a, b) for a, b in sentences]
        picked = teaser.pick_sentences(sentences, scores, min(total, video.duration_s)) if sentences else None
        if picked is not None:
            return [Span(sentences[i][0], sentences[i][1], Evidence("speech", sentences[i][0], sentences[i][1],
                         _unit(scores[i]), "whole sentence", f"teaser of {total:g} s ({used}, transcript)"))
                    for i in picked]  # fmt: skip
        if not op.count:  # the summary's keyshots: whole shots by importance, knapsack to the length
            from grounding_agent.edit.timeline import FrameGrid
            from grounding_agent.summaries.keyshots import keyshot_spans

            if sentences:
                self.notes.append(f"teaser: no set of whole sentences lasts {total:g} s; the best shots used")
            length = min(total, video.duration_s)
            spans, notes = keyshot_spans(video, FrameGrid.from_video(video), length, result, transcript=words)
            self.notes.extend(notes)
            return spans
        if sentences:
            self.notes.append(f"teaser: no set of whole sentences lasts {total:g} s; highlight windows used")
        windows = [(w.start_s, w.end_s) for w in (op.count and result.windows[: op.count] or result.windows)]
        spans = teaser.fit_windows(windows, min(total, video.duration_s), video.duration_s)
        return [Span(a, b, Evidence("saliency", a, b, None, "highlight", f"generic highlights ({used})"))
                for a, b in spans]  # fmt: skip

    def _silence(self, video: Video, op: Operation) -> list[Span]:
        threshold = self.threshold_db if op.threshold_db is None else op.threshold_db
        minimum = self.min_silence_s if op.min_silence_s is None else op.min_silence_s
        curve = self._energy(video)
        if curve is None:
            self.notes.append("silences: the video has no audio stream, so nothing is silent")
            return []
        level = floor_level(curve.values, threshold, SPEECH_EDIT.floor_margin_db)
        runs = [
            core
            for run in silent_runs(curve.times_s, curve.values, SILENCE_HOP_S, threshold, minimum)
            if (core := quiet_core(curve.times_s, curve.values, SILENCE_HOP_S, run, level))
        ]
        cuts, short = padded_silences(runs, self.pad_ms / 1000.0, self.min_gap_s, video.duration_s)
        if short:
            self.notes.append(
                f"silences: {short} pause(s) left in: shorter than {self.min_gap_s:g} s once "
                f"{self.pad_ms:g} ms is kept beside the sound (--min-gap-s, --pad-ms)"
            )
        spans = []
        for (start, end), (run_start, run_end) in cuts:
            said = f"below {threshold:g} dBFS for {run_end - run_start:.2f} s"
            ev = Evidence("audio", start, end, None, said, "audio energy")
            spans.append(Span(start, end, ev))
        return spans

    def _energy(self, video: Video) -> Any:
        """The audio's loudness every SILENCE_HOP_S (decoded once per video), or None without audio."""
        from grounding_agent.media.audio import audio_energy

        if self._curve is None or self._curve[0] != video.path:
            self._curve = (video.path, audio_energy(video.path, hop_s=SILENCE_HOP_S))
        return self._curve[1]

    def _transcript(self, video: Video, op: Operation) -> Transcript:
        if self.transcript is None and self.transcript_factory is not None:
            self.transcript = self.transcript_factory()
        if self.transcript is None:
            raise EditError(
                f"{op.describe()!r} needs a transcript of the speech: pass --asr-model DIR or --transcript FILE.json"
                " (Python: transcript=...)"
            )
        fitted, notes = fit_to_video(as_transcript(self.transcript), video.duration_s)
        self.notes.extend(n for n in notes if n not in self.notes)  # once, however many operations use it
        curve = self._energy(video)
        if curve is None:
            return fitted
        # Whisper's word ends clip fading tails: each word reaches to where its sound falls.
        level = floor_level(curve.values, self.threshold_db, SPEECH_EDIT.floor_margin_db)
        return fit_to_energy(fitted, curve, level, SPEECH_EDIT.tail_max_s)

    def _speech(self, video: Video, op: Operation) -> list[Span]:
        transcript = self._transcript(video, op)
        gap = self.min_silence_s if op.min_silence_s is None else op.min_silence_s
        pad = self.pad_ms / 1000.0
        # From the words (first start to last end, padded) and any voice activity the words miss; a
        # pause shorter than `gap` stays inside the speech.
        words = [(w.start_s - pad, w.end_s + pad) for w in _sorted_words(transcript)]
        source = " and ".join(
            name for name, found in (("transcript words", words), ("voice activity", transcript.speech_regions))
            if found
        )  # fmt: skip
        spans = merged([*words, *transcript.speech_regions], gap, video.duration_s)
        if not spans:
            self.notes.append("speech: nothing is said in this video")
        return [Span(a, b, Evidence("speech", a, b, None, "speech", source)) for a, b in spans]

    def _words(self, video: Video, op: Operation) -> list[Span]:
        transcript = self._transcript(video, op)
        words = _sorted_words(transcript)
        hits = find_phrases(words, op.phrases)
        if op.action == "keep":  # keep what was said around the words: the whole sentence, padded
            found = word_spans(words, sentences_with(words, transcript, hits), self.pad_ms / 1000.0)
        else:
            found = word_spans(words, hit_ranges(words, hits), 0.0)
            short = [f for f in found if f[1] - f[0] < self.min_gap_s]
            if short:
                self.notes.append(
                    f"{op.describe()}: {len(short)} match(es) left in: shorter than {self.min_gap_s:g} s "
                    "(--min-gap-s)"
                )
            found = [f for f in found if f not in short]
        return [Span(a, b, Evidence("speech", a, b, None, text, "transcript words")) for a, b, text in found]


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


def as_transcript(transcript: Any) -> Transcript:
    """`transcript` as a `Transcript`: as is, or converted from a hand-made mapping or object with
    `segments` (each with `words`) or bare `words` (then each word is its own segment: no sentences known),
    and optionally `speech_regions`. Words carry no confidence there: their probability is 1.
    """
    if isinstance(transcript, Transcript):
        return check_times(transcript)
    segments = tuple(_as_segment(s) for s in _field(transcript, "segments") or ())
    if not segments:
        segments = tuple(
            Segment(w.text, w.start_s, w.end_s, 1.0, (w,)) for w in _as_words(_field(transcript, "words"))
        )
    regions = tuple((float(a), float(b)) for a, b in _field(transcript, "speech_regions") or ())
    duration = float(_field(transcript, "duration_s") or 0.0)
    return check_times(Transcript(segments=segments, duration_s=duration, speech_regions=regions))


def _field(item: Any, name: str) -> Any:
    # Hand-made input only (dicts, a caller's own objects): our own types never come through here.
    return item.get(name) if isinstance(item, Mapping) else getattr(item, name, None)


def _as_words(items: Iterable[Any] | None) -> tuple[Word, ...]:
    return tuple(
        Word(str(_field(w, "text") or ""), float(_field(w, "start_s")), float(_field(w, "end_s")), 1.0)
        for w in items or ()
    )


def _as_segment(item: Any) -> Segment:
    words = _as_words(_field(item, "words"))
    text = str(_field(item, "text") or " ".join(w.text for w in words))
    return Segment(text, float(_field(item, "start_s")), float(_field(item, "end_s")), 1.0, words)


def _sorted_words(transcript: Transcript) -> list[Word]:
    """Every word of a transcript, in time order."""
    return sorted(transcript.words, key=lambda w: w.start_s)


def _tokens(text: str) -> list[str]:
    """The phrase matcher's tokens (`media.text_match.normalize`: case, punctuation, numbers, amounts,
    contractions and British / American spellings made comparable)."""
    return normalize(text)


def find_phrases(words: list[Word], phrases: Iterable[str]) -> list[Segment]:
    """Every place each phrase is said, in time order, found by the phrase matcher `ground`, `chat` and
    `transcribe --search` use (`media.transcript.search_words`): "$49" is "forty nine dollars", "colour" is
    "color", "it's" is "it is", case and punctuation aside; a match scores at least
    `PHRASE_MATCH.edit_min_score` (a loose paraphrase is not cut) and never spans a pause of a second."""
    hits = []
    for phrase in phrases:
        found = search_words(words, phrase, top_k=max(1, len(words)), min_score=PHRASE_MATCH.edit_min_score)
        hits.extend(_phrase(list(match.words)) for match in found)
    return sorted(hits, key=lambda h: h.start_s)


def _phrase(words: list[Word]) -> Segment:
    probability = sum(w.probability for w in words) / len(words)
    return Segment(
        " ".join(w.text for w in words), words[0].start_s, words[-1].end_s, probability, tuple(words)
    )
