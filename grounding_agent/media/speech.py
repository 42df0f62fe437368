"""What is said in a video: a word-timed `Transcript` (faster-whisper ASR + Silero VAD), cached, searchable.

    asr = Transcriber("~/.cache/grounding-agent/whisper-base-1.0.0-1.0.0")   # a CTranslate2 Whisper folder
    transcript = asr.transcribe("talk.mp4")                                 # cached by file content
    transcript.search("my favorite color is blue")                          # -> [SpeechMatch(start_s, end_s, ...)]

Pipeline: the first audio stream is decoded with PyAV to 16 kHz mono and streamed in chunks of `chunk_s`
seconds, each cut in a pause found by the VAD, so memory is bounded by the chunk, not the video. Silero
VAD (faster-whisper's ONNX copy, no torch) finds the speech regions; Whisper transcribes only those
(`clip_timestamps`), with word timestamps; each word is then clamped into its VAD region (Whisper's first
word of an utterance tends to start early, the VAD onset is tighter). A file with no audio track gives an
empty transcript whose `notes` say so; it is not an error.

Transcripts are cached as JSON under `~/.cache/grounding-agent/transcripts` (or $GROUNDING_AGENT_CACHE),
keyed by the file's content hash, the model's fingerprint and the options, like the CLIP embedding cache.

`Transcript.search` matches a quote to the words spoken with a fuzzy word-level local alignment: tokens
are lower-cased, punctuation and apostrophes dropped, numbers spelled out ("7" = "seven"), and two tokens
match by character similarity (favourite/favorite, colour/color), so ASR spelling variants, a misspelled
or loosely paraphrased quote still land. `speech_query` tells whether a (sub-)query is about speech.
"""

from __future__ import annotations

import functools
import hashlib
import itertools
import json
import logging
import os
import re
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import numpy as np

from grounding_agent.defaults import cache_dir
from grounding_agent.errors import ConfigError, CorruptVideoError, ModelLoadError
from grounding_agent.io import write_json_atomic
from grounding_agent.types import Evidence, Moment, Video
from grounding_agent.utils.cache import file_fingerprint

log = logging.getLogger(__name__)

CACHE_VERSION = 1  # bump when the stored layout or the meaning of a key changes
VAD = "silero-vad-v6 (faster-whisper)"  # in the cache key: regions from another VAD are other transcripts
SAMPLE_RATE = 16_000
DEFAULT_CHUNK_S = 600.0
# A chunk is cut in a pause at least this far from its end (a word may be starting in the last bit).
CUT_MARGIN_S = 1.0
# VAD regions closer than this are sent to Whisper as one clip (it needs context), padded on both sides.
MERGE_GAP_S = 0.6
CLIP_PAD_S = 0.25
# Whisper encodes 30 s windows whatever the clip's length, so short pauses are kept inside one clip while
# it fits a window (7 sentences over 38 s: 2 encoder passes instead of 7).
PACK_GAP_S = 3.0
PACK_S = 28.0
ASR_HINT = "pass --asr-model DIR (a CTranslate2 Whisper folder, e.g. from tests/assets/whisper_base.py)"


def default_cache_dir() -> Path:
    return cache_dir("transcripts")


# --- the transcript --------------------------------------------------------------------------------


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

    def activity_curve(self, hop_s: float = 0.5) -> Any:
        """Voice activity as a `signals.Curve` named "speech": the speech fraction per `hop_s` window."""
        from grounding_agent.types import Curve

        n = max(1, int(np.ceil(self.duration_s / hop_s)))
        times = (np.arange(n) + 0.5) * hop_s
        return Curve("speech", times, self.speech_activity(times, hop_s))

    def search(self, query: str, *, top_k: int = 3, min_score: float = 0.35) -> list[SpeechMatch]:
        """Where `query` (a quote, or a topic's words) was said, best first; see `align`."""
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
        return cls(
            segments=segments,
            duration_s=float(data["duration_s"]),
            language=str(data.get("language", "")),
            speech_regions=tuple((float(a), float(b)) for a, b in data.get("speech_regions", [])),
            has_audio=bool(data.get("has_audio", True)),
            model=str(data.get("model", "")),
            notes=tuple(str(n) for n in data.get("notes", [])),
            from_cache=from_cache,
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


# --- words -> tokens (normalisation) -----------------------------------------------------------------

# Low-weight words: a quote still matches when these differ ("let us go" vs "let's go").
STOPWORDS = frozenset(
    [
        "a",
        "an",
        "the",
        "and",
        "or",
        "but",
        "of",
        "to",
        "in",
        "on",
        "at",
        "for",
        "with",
        "is",
        "are",
        "was",
        "were",
        "be",
        "been",
        "it",
        "its",
        "this",
        "that",
        "these",
        "those",
        "i",
        "you",
        "he",
        "she",
        "we",
        "they",
        "me",
        "him",
        "her",
        "us",
        "them",
        "my",
        "your",
        "his",
        "our",
        "their",
        "so",
        "do",
        "does",
        "did",
        "just",
        "um",
        "uh",
        "oh",
    ]
)
_NUMBER = re.compile(r"^\d+(?:[.,]\d+)*(?:st|nd|rd|th)?$")


@functools.lru_cache(maxsize=4096)
def _number_words(token: str) -> tuple[str, ...]:
    from num2words import num2words

    ordinal = token[-2:] in ("st", "nd", "rd", "th")
    digits = token[:-2] if ordinal else token
    try:
        value = float(digits.replace(",", "")) if "." in digits else int(digits.replace(",", ""))
        words = num2words(value, to="ordinal" if ordinal and isinstance(value, int) else "cardinal")
    except (ValueError, OverflowError, NotImplementedError):
        return (token,)
    return tuple(w for w in re.split(r"[\s,\-]+", words.lower()) if w and w != "and")


def normalize(text: str) -> list[str]:
    """Lower-cased tokens: punctuation and apostrophes dropped, hyphenated words split, numbers spelled out."""
    text = text.lower().replace("’", "'").replace("‘", "'")
    tokens: list[str] = []
    for raw in re.split(r"[\s\-–—/]+", text):
        token = re.sub(r"[^\w']", "", raw).replace("'", "").replace("_", "")
        if not token:
            continue
        number = re.sub(r"[^\w.,]", "", raw).strip(".,")
        if token[0].isdigit() and _NUMBER.match(number):
            tokens.extend(_number_words(number))
        else:
            tokens.append(token)
    return tokens


# --- fuzzy word-level local alignment -----------------------------------------------------------------

MATCH_SIMILARITY = 0.75  # character similarity at which two tokens count as the same word
MISMATCH = -0.5  # a query token aligned to a different word
SKIP_QUERY = 0.5  # a query token not said (times its weight)
SKIP_SPOKEN = 0.3  # a spoken token the query does not have
STOPWORD_WEIGHT = 0.35


def _similarity(query_tokens: Sequence[str], spoken_tokens: Sequence[str]) -> np.ndarray:
    """(len(query), len(spoken)) similarity in [0, 1]; one- and two-letter words must match exactly."""
    from rapidfuzz import fuzz, process

    q_vocab, s_vocab = sorted(set(query_tokens)), sorted(set(spoken_tokens))
    sim = process.cdist(q_vocab, s_vocab, scorer=fuzz.ratio, dtype=np.float32) / 100.0
    q_len = np.array([len(t) for t in q_vocab])[:, None]
    s_len = np.array([len(t) for t in s_vocab])[None, :]
    sim = np.where((np.minimum(q_len, s_len) <= 2) & (sim < 1.0), 0.0, sim)
    qi = {t: i for i, t in enumerate(q_vocab)}
    si = {t: i for i, t in enumerate(s_vocab)}
    return sim[np.ix_([qi[t] for t in query_tokens], [si[t] for t in spoken_tokens])]


def align(query_tokens: Sequence[str], spoken_tokens: Sequence[str]) -> tuple[np.ndarray, np.ndarray]:
    """Smith-Waterman local alignment of the query against the spoken tokens.

    Returns:
        H: (m+1, n+1) alignment scores (H[i, j]: best alignment of a suffix of query[:i] ending at
            spoken[j-1]); the best score is at most the sum of the query's weights.
        weights: (m,) the query tokens' weights (content words 1, stopwords STOPWORD_WEIGHT).
    """
    m, n = len(query_tokens), len(spoken_tokens)
    weights = np.array([STOPWORD_WEIGHT if t in STOPWORDS else 1.0 for t in query_tokens])
    gain = _similarity(query_tokens, spoken_tokens)
    gain = np.where(gain >= MATCH_SIMILARITY, gain, MISMATCH) * weights[:, None]
    H = np.zeros((m + 1, n + 1))
    steps = np.arange(n + 1) * SKIP_SPOKEN
    for i in range(1, m + 1):
        best = np.maximum(
            0.0, np.maximum(H[i - 1, :-1] + gain[i - 1], H[i - 1, 1:] - SKIP_QUERY * weights[i - 1])
        )
        row = np.concatenate([[0.0], best])
        # Skipping spoken tokens: H[i, j] = max_k<=j row[k] - SKIP_SPOKEN * (j - k), a running maximum.
        H[i] = np.maximum(0.0, np.maximum.accumulate(row + steps) - steps)
    return H, weights


def _traceback(H: np.ndarray, gain_of, weights: np.ndarray, i: int, j: int) -> list[tuple[int, int]]:
    """From cell (i, j) back to where the alignment starts: the matched (query token, spoken token) pairs."""
    matched = []
    while i > 0 and j > 0 and H[i, j] > 1e-9:
        h = H[i, j]
        g = gain_of(i - 1, j - 1)
        if g > 0 and abs(h - (H[i - 1, j - 1] + g)) < 1e-9:
            matched.append((i - 1, j - 1))
            i, j = i - 1, j - 1
        elif abs(h - (H[i, j - 1] - SKIP_SPOKEN)) < 1e-9:
            j -= 1
        elif abs(h - (H[i - 1, j] - SKIP_QUERY * weights[i - 1])) < 1e-9:
            i -= 1
        else:  # a mismatch step
            i, j = i - 1, j - 1
    matched.reverse()
    return matched


PAUSE_S = 1.0  # a silence this long between two words ends a run: a quote is not matched across it


def _runs(words: Sequence[Word]) -> list[list[Word]]:
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
    H, weights = align(q_tokens, s_tokens)
    sim = _similarity(q_tokens, s_tokens)
    total = float(weights.sum())

    def gain_of(qi: int, sj: int) -> float:
        s = sim[qi, sj]
        return float((s if s >= MATCH_SIMILARITY else MISMATCH) * weights[qi])

    best_i, column_best = H.argmax(axis=0), H.max(axis=0)
    out: list[SpeechMatch] = []
    used: list[tuple[int, int]] = []
    for j in np.argsort(-column_best, kind="stable"):
        score = float(column_best[j]) / total
        if score < min_score or len(out) >= top_k:
            break
        matched = _traceback(H, gain_of, weights, int(best_i[j]), int(j))
        if not matched:
            continue
        # Query words left unmatched at either end were most likely said but misheard ("that was fast"
        # heard as "that was it"): the span takes as many neighbouring spoken tokens, inside the run.
        (q_first, first), (q_last, last) = matched[0], matched[-1]
        first = max(0, first - q_first)
        last = min(len(s_tokens) - 1, last + len(q_tokens) - 1 - q_last)
        if any(first <= b and a <= last for a, b in used):
            continue
        used.append((first, last))
        span = tuple(words[owner[first] : owner[last] + 1])
        text = " ".join(w.text for w in span)
        out.append(
            SpeechMatch(float(span[0].start_s), float(span[-1].end_s), min(1.0, score), text, query, span)
        )
    return out


def search_words(
    words: Sequence[Word], query: str, *, top_k: int = 3, min_score: float = 0.35
) -> list[SpeechMatch]:
    """The `top_k` best non-overlapping places where `query` was said, with scores >= `min_score`.

    The score is the alignment's score over the query's total weight: 1.0 when every query word was said
    in order (up to spelling), lower for missing, extra or different words. A match never spans a pause
    of PAUSE_S or more (two sentences sharing a word or two are not one quote).
    """
    q_tokens = normalize(query)
    if not q_tokens:
        return []
    found = [m for run in _runs(words) for m in _run_matches(run, q_tokens, query, top_k, min_score)]
    return sorted(found, key=lambda m: -m.score)[:top_k]


# --- is a (sub-)query about speech? ------------------------------------------------------------------

# "double" or 'single' quotes; an apostrophe inside a word ("let's") does not end a single quote.
_QUOTE = re.compile(r"[\"“”]([^\"“”]+)[\"“”]|(?<!\w)['‘]((?:[^'‘’]|(?<=\w)['’](?=\w))+)['’](?!\w)")
_SPEECH_VERB = (
    r"(?:says?|said|saying|mentions?|mentioned|mentioning|asks?|asked|asking|talks?\s+about|talked\s+about"
    r"|talking\s+about|speaks?\s+about|spoke\s+about|speaking\s+about|tells?|told|telling|shouts?|shouted"
    r"|shouting|yells?|yelled|yelling|whispers?|whispered|announces?|announced|utters?|uttered"
    r"|pronounces?|pronounced|discuss(?:es|ed|ing)?|brings?\s+up|brought\s+up|refers?\s+to|referred\s+to)"
)
_VERB_TOPIC = re.compile(rf"\b{_SPEECH_VERB}\b\s*(?:that\s+|the\s+words?\s+|about\s+)?(.+)$", re.IGNORECASE)
_SAID = re.compile(rf"\b(?:{_SPEECH_VERB}|spoken|heard|quoted)\b", re.IGNORECASE)


def speech_query(text: str) -> str | None:
    """The words to search the transcript for if `text` is about what is said, else None.

    "he says 'let's go'" -> "let's go"; "when is \"blue\" said" -> "blue"; "when does she mention the
    price" -> "the price"; "the man runs" -> None. A quote alone counts only beside a speech verb or
    "said"/"mentioned" ("the sign reads 'exit'" is not speech).
    """
    quote = _QUOTE.search(text)
    verb = _VERB_TOPIC.search(text)
    if quote and (_SAID.search(text) or _QUOTE.fullmatch(text.strip(" .?!"))):
        return (quote.group(1) or quote.group(2)).strip()
    if verb:
        topic = re.sub(r"[?.!]+$", "", verb.group(1)).strip(" \"'“”‘’")
        return topic or None
    return None


_WHAT_IS_SAID = re.compile(
    r"\bwhat\b.{0,40}?\b(?:says?|said|saying|tells?|told|asks?|asked|mentions?|mentioned|shouts?|shouted"
    r"|whispers?|whispered|announces?|announced)\b|\bwhat\s+(?:is|was|gets)\s+(?:said|spoken)\b|\bwho\s+says\b",
    re.IGNORECASE,
)


def asks_what_is_said(message: str) -> bool:
    """Whether a chat message asks for words spoken ("what does she say after ...", "what is said ...")."""
    return bool(_WHAT_IS_SAID.search(message))


def said_in(
    transcript: Transcript, window_s: tuple[float, float], relation: str = "during"
) -> SpeechMatch | None:
    """What is said in a window, as whole stretches of speech (runs between pauses of PAUSE_S):

    "after": the first run that starts inside the window (all of it, even past the window's end);
    "before": the last run that ends inside it; otherwise: the words whose middle is inside. None if silent.
    """
    lo, hi = window_s
    runs = _runs(transcript.words)
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


class KnownTranscript:
    """A transcript already at hand, offered where a transcriber is expected (`.transcribe(video)`)."""

    def __init__(self, transcript: Transcript):
        self.transcript = transcript

    def transcribe(self, video: Any) -> Transcript:
        return self.transcript


# --- audio -------------------------------------------------------------------------------------------


def iter_audio(path: str | Path, block_s: float = 30.0) -> Iterator[np.ndarray]:
    """The first audio stream as 16 kHz mono float32 blocks of about `block_s` seconds (PyAV).

    Yields nothing if the file has no audio stream.

    Raises:
        VideoNotFoundError, NotAVideoError: the file is missing or not media.
        CorruptVideoError: the audio stream fails to decode.
    """
    import av

    from grounding_agent.media.audio import decoded_then_flushed, open_container

    block = int(block_s * SAMPLE_RATE)
    pending: list[np.ndarray] = []
    size = 0
    with open_container(path) as container:
        if not container.streams.audio:
            return
        resampler = av.AudioResampler(format="flt", layout="mono", rate=SAMPLE_RATE)
        try:
            for frame in decoded_then_flushed(container, container.streams.audio[0], resampler):
                pending.append(frame.to_ndarray().reshape(-1))
                size += pending[-1].size
                if size >= block:
                    yield np.concatenate(pending).astype(np.float32, copy=False)
                    pending, size = [], 0
        except av.error.FFmpegError as exc:
            raise CorruptVideoError(path, f"audio stream fails to decode ({exc.strerror or exc})") from exc
    if pending:
        yield np.concatenate(pending).astype(np.float32, copy=False)


def _cut_point(regions: Sequence[tuple[int, int]], n: int) -> int:
    """Where to end a chunk of n samples: the middle of its last pause that is CUT_MARGIN_S before the end."""
    margin = int(CUT_MARGIN_S * SAMPLE_RATE)
    if not regions:
        return n
    pauses = [(a_end + b_start) // 2 for (_, a_end), (b_start, _) in itertools.pairwise(regions)]
    if n - regions[-1][1] >= 2 * margin:
        pauses.append((regions[-1][1] + n) // 2)
    ok = [p for p in pauses if p <= n - margin]
    return max(ok) if ok else n  # one long stretch of speech: cut anyway, memory stays bounded


def voice_regions(audio: np.ndarray) -> list[tuple[int, int]]:
    """(start, end) sample indices of speech in 16 kHz mono audio.

    Silero VAD v6 as faster-whisper ships it: the ONNX model inside its wheel, run on NumPy arrays through
    ONNX Runtime. silero-vad's own `get_speech_timestamps` takes torch tensors, and importing torch for it
    cost more (~2 s, ~500 MB) than the VAD itself on a short clip. Options are silero's defaults but for
    shorter silences and padding: a sentence's pauses split it into the regions words are clamped to.
    """
    from faster_whisper.vad import VadOptions, get_speech_timestamps

    if audio.size < SAMPLE_RATE // 10:
        return []
    options = VadOptions(min_speech_duration_ms=250, min_silence_duration_ms=250, speech_pad_ms=40)
    found = get_speech_timestamps(np.ascontiguousarray(audio, dtype=np.float32), options, SAMPLE_RATE)
    return [(int(r["start"]), int(r["end"])) for r in found]


def _clips(regions: Sequence[tuple[int, int]], n: int) -> list[float]:
    """Whisper `clip_timestamps` (flat [start, end, ...] seconds): regions closer than MERGE_GAP_S merged,
    and those closer than PACK_GAP_S while the clip stays within PACK_S; then padded, without overlap."""
    merged: list[list[int]] = []
    for a, b in regions:
        gap = a - merged[-1][1] if merged else None
        if gap is not None and (
            gap < MERGE_GAP_S * SAMPLE_RATE
            or (gap < PACK_GAP_S * SAMPLE_RATE and b - merged[-1][0] <= PACK_S * SAMPLE_RATE)
        ):
            merged[-1][1] = b
        else:
            merged.append([a, b])
    pad = CLIP_PAD_S * SAMPLE_RATE
    flat: list[float] = []
    for a, b in merged:
        start = max(0.0, a - pad, flat[-1] * SAMPLE_RATE if flat else 0.0)
        flat += [start / SAMPLE_RATE, min(float(n), b + pad) / SAMPLE_RATE]
    return flat


def _tighten(word: Word, regions_s: Sequence[tuple[float, float]]) -> Word:
    """Clamp a word into the VAD region it overlaps most (or the nearest one)."""
    if not regions_s:
        return word

    def fit(r: tuple[float, float]) -> float:
        overlap = min(word.end_s, r[1]) - max(word.start_s, r[0])
        return overlap if overlap > 0 else -min(abs(word.start_s - r[1]), abs(word.end_s - r[0]))

    a, b = max(regions_s, key=fit)
    start = min(max(word.start_s, a), b)
    end = max(min(word.end_s, b), start)
    return replace(word, start_s=float(start), end_s=float(end))


# --- the transcriber ----------------------------------------------------------------------------------


def _looks_like_path(model: str) -> bool:
    return os.sep in model or model.startswith((".", "~")) or Path(model).exists()


def load_whisper(
    model: str | Path,
    *,
    device: str = "cpu",
    compute_type: str = "int8",
    cpu_threads: int = 0,
    download_root: str | Path | None = None,
    local_files_only: bool = False,
) -> Any:
    """A faster-whisper `WhisperModel` from a CTranslate2 folder, or by name ("base", "org/repo") from the hub.

    Raises:
        ModelLoadError: the folder is not a Whisper model, or the name cannot be fetched (offline).
    """
    from faster_whisper import WhisperModel

    name = str(model)
    path = Path(name).expanduser()
    if _looks_like_path(name):
        if not (path / "model.bin").is_file():
            what = (
                "no such folder"
                if not path.exists()
                else "no model.bin in it: not a CTranslate2 Whisper model"
            )
            raise ModelLoadError(f"ASR model {name!r}: {what}; {ASR_HINT}")
        name = str(path)
    try:
        return WhisperModel(
            name,
            device=device,
            compute_type=compute_type,
            cpu_threads=cpu_threads,
            download_root=None if download_root is None else str(download_root),
            local_files_only=local_files_only,
        )
    except Exception as exc:  # noqa: BLE001 - the hub client and CTranslate2 raise many unrelated types
        first = (str(exc).splitlines() or [type(exc).__name__])[0][:200]
        where = "cannot load" if path.is_dir() else "cannot fetch (offline?) or load"
        raise ModelLoadError(
            f"{where} ASR model {name!r} ({type(exc).__name__}: {first}); {ASR_HINT}"
        ) from None


def asr_model_fingerprint(model: str | Path) -> str:
    """A local folder: its path and files' size/mtime; a hub name: the name."""
    path = Path(str(model)).expanduser()
    if path.is_dir():
        files = sorted(p for p in path.iterdir() if p.is_file())
        parts = [str(path.resolve())] + [f"{p.name}:{p.stat().st_size}:{p.stat().st_mtime_ns}" for p in files]
    else:
        parts = [str(model)]
    return hashlib.sha256("\n".join(parts).encode()).hexdigest()[:16]


@dataclass
class TranscribeStats:
    """Counters a caller or test can read: cache hits/misses and seconds of audio actually run through ASR."""

    hits: int = 0
    misses: int = 0
    audio_s_transcribed: float = 0.0


class Transcriber:
    """ASR over a video's audio track with VAD, chunked streaming and a content-hash cache.

    Args:
        model: a CTranslate2 Whisper folder, or a faster-whisper name ("base") / hub id (needs network).
        language: a language code, or None to detect it on the first chunk with speech.
        compute_type: CTranslate2 compute type ("int8" on CPU).
        beam_size: Whisper beam size.
        vad: find speech with the VAD first (False: transcribe each chunk whole).
        chunk_s: seconds of audio held and transcribed at once.
        cache_dir: where transcripts go; None: `default_cache_dir()`. use_cache=False: never read or write.
        cpu_threads: CTranslate2 threads (0: its default).
        local_files_only: never reach the hub for a name.
    """

    def __init__(
        self,
        model: str | Path,
        *,
        language: str | None = None,
        device: str = "cpu",
        compute_type: str = "int8",
        beam_size: int = 5,
        vad: bool = True,
        chunk_s: float = DEFAULT_CHUNK_S,
        cache_dir: str | Path | None = None,
        use_cache: bool = True,
        cpu_threads: int = 0,
        download_root: str | Path | None = None,
        local_files_only: bool = False,
    ):
        if chunk_s < 4 * CUT_MARGIN_S:
            raise ConfigError(f"chunk_s must be >= {4 * CUT_MARGIN_S} s, got {chunk_s}")
        if beam_size < 1:
            raise ConfigError(f"beam_size must be >= 1, got {beam_size}")
        self.model_name = str(model)
        self.language = language
        self.device, self.compute_type, self.beam_size, self.vad = device, compute_type, beam_size, vad
        self.chunk_s = chunk_s
        self.cache_dir = Path(cache_dir) if cache_dir is not None else default_cache_dir()
        self.use_cache = use_cache
        self.stats = TranscribeStats()
        self._load_kwargs = {
            "device": device,
            "compute_type": compute_type,
            "cpu_threads": cpu_threads,
            "download_root": download_root,
            "local_files_only": local_files_only,
        }
        self._model: Any = None
        if (
            _looks_like_path(self.model_name)
            and not (Path(self.model_name).expanduser() / "model.bin").is_file()
        ):
            load_whisper(self.model_name, **self._load_kwargs)  # raises the one-line ModelLoadError now

    @property
    def whisper(self) -> Any:
        # Loaded on first use: a cache hit never pays for the model.
        if self._model is None:
            self._model = load_whisper(self.model_name, **self._load_kwargs)
        return self._model

    def _key(self, path: Path) -> str:
        parts = {
            "version": CACHE_VERSION,
            "file": file_fingerprint(path),
            "model": asr_model_fingerprint(self.model_name),
            "language": self.language,
            "compute_type": self.compute_type,
            "beam_size": self.beam_size,
            "vad": VAD if self.vad else None,
            "chunk_s": self.chunk_s,
        }
        return hashlib.sha256(json.dumps(parts, sort_keys=True).encode()).hexdigest()[:32]

    def _load_cached(self, key: str) -> Transcript | None:
        path = self.cache_dir / f"{key}.json"
        if not (self.use_cache and path.is_file()):
            return None
        try:
            return Transcript.from_dict(json.loads(path.read_text(encoding="utf-8")), from_cache=True)
        except (
            OSError,
            ValueError,
            KeyError,
            TypeError,
        ) as exc:  # a damaged entry is a miss and is rewritten
            log.warning("ignoring unreadable transcript cache entry %s (%s)", path, exc)
            return None

    def transcribe(self, video: Video | str | Path) -> Transcript:
        """The transcript of the first audio track (from the cache when this file was done before)."""
        path = Path(video.path if isinstance(video, Video) else video)
        key = self._key(path)
        cached = self._load_cached(key)
        if cached is not None:
            self.stats.hits += 1
            return cached
        self.stats.misses += 1
        transcript = self._run(path)
        if self.use_cache:
            write_json_atomic(self.cache_dir / f"{key}.json", transcript.to_dict())
        return transcript

    def _run(self, path: Path) -> Transcript:
        from grounding_agent.media.audio import has_audio

        if not has_audio(path):
            log.info("%s has no audio track: empty transcript", path)
            return Transcript(has_audio=False, model=self.model_name, notes=("no audio track",))
        segments: list[Segment] = []
        regions_s: list[tuple[float, float]] = []
        duration_s, language = 0.0, self.language
        for offset_s, audio, regions in self._chunks(iter_audio(path)):
            duration_s = offset_s + audio.size / SAMPLE_RATE
            chunk_regions = [(offset_s + a / SAMPLE_RATE, offset_s + b / SAMPLE_RATE) for a, b in regions]
            regions_s += chunk_regions
            if not regions:
                continue
            found, language = self._transcribe_chunk(audio, regions, offset_s, language, chunk_regions)
            segments += found
        notes = () if segments else ("no speech found",)
        return Transcript(
            tuple(segments), duration_s, language or "", tuple(regions_s), True, self.model_name, notes
        )

    def _chunks(
        self, blocks: Iterable[np.ndarray]
    ) -> Iterator[tuple[float, np.ndarray, list[tuple[int, int]]]]:
        """(offset_s, audio, speech regions in samples) per chunk, each cut in a pause (see `_cut_point`)."""
        limit = int(self.chunk_s * SAMPLE_RATE)
        buffer, offset = np.zeros(0, np.float32), 0
        for block in blocks:
            buffer = np.concatenate([buffer, block])
            while buffer.size >= limit:
                regions = self._regions(buffer)
                cut = _cut_point(regions, buffer.size) if self.vad else buffer.size
                yield offset / SAMPLE_RATE, buffer[:cut], [(a, min(b, cut)) for a, b in regions if a < cut]
                buffer, offset = buffer[cut:], offset + cut
        if buffer.size:
            yield offset / SAMPLE_RATE, buffer, self._regions(buffer)

    def _regions(self, audio: np.ndarray) -> list[tuple[int, int]]:
        return voice_regions(audio) if self.vad else [(0, audio.size)]

    def _transcribe_chunk(
        self,
        audio: np.ndarray,
        regions: list[tuple[int, int]],
        offset_s: float,
        language: str | None,
        regions_s: list[tuple[float, float]],
    ) -> tuple[list[Segment], str | None]:
        raw, info = self.whisper.transcribe(
            audio,
            language=language,
            beam_size=self.beam_size,
            word_timestamps=True,
            vad_filter=False,
            clip_timestamps=_clips(regions, audio.size),
            condition_on_previous_text=False,
        )
        out = []
        for seg in raw:  # a generator: decoding happens here
            words = tuple(
                _tighten(
                    Word(
                        w.word.strip(),
                        offset_s + float(w.start),
                        offset_s + float(w.end),
                        float(w.probability),
                    ),
                    regions_s,
                )
                for w in (seg.words or [])
                if w.word.strip()
            )
            if not words:
                continue
            prob = float(np.mean([w.probability for w in words]))
            out.append(Segment(seg.text.strip(), words[0].start_s, words[-1].end_s, prob, words))
        self.stats.audio_s_transcribed += audio.size / SAMPLE_RATE
        return out, language or info.language


def transcribe(video: Video | str | Path, model: str | Path, **options: Any) -> Transcript:
    """One-shot `Transcriber(model, **options).transcribe(video)`."""
    return Transcriber(model, **options).transcribe(video)
