"""Standing queries over a live stream: what is said (VAD + Whisper on short utterances), what is on screen
(OCR on changed frames) and what is seen (a grounder over the last seconds, on a call budget).

    alert = read_alert("when someone says 'discount code'")     # Alert(channel="speech", target=...)
    speech = SpeechAlerts([alert], whisper)                     # whisper: faster-whisper's WhisperModel
    hits = speech.feed(samples_16k, t0_s)                       # -> [Hit(...)] as utterances complete

Speech: audio is buffered; the VAD runs every half second of new audio; an utterance is transcribed once
`silence_s` of silence follows it (or once it reaches `max_s`), in a worker thread (the watch goes on
decoding), so the delay is the silence plus one Whisper call on a few seconds of audio. When Whisper falls
`MAX_PENDING` utterances behind, further ones are skipped and counted (`skipped_s`). Each alert's phrase is searched with the fuzzy phrase matcher of
`media.transcript.search_words` over the last `context_s` of words, and fires once per place it is said.
The alerts' phrases are passed to Whisper as `hotwords` (its decoder prompt): the standing queries are
known in advance, and without them Whisper base hears a rarer phrase as a likelier one, on every call
("copper kettle" as "Copper Catalyst", "purple meadow" as "purple metal"; tests/test_live_speech.py).
The prompt holds at most ~220 tokens (faster-whisper truncates it): ~40 two-word phrases.
On-screen text: a sampled frame that looks like the last one read is not read again; an alert fires when
its text appears (it fires again only after it was gone).
"""

from __future__ import annotations

import logging
import threading
from collections import deque
from collections.abc import Iterable, Iterator, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal, Protocol

import numpy as np

from grounding_agent.defaults import LIVE
from grounding_agent.errors import ConfigError
from grounding_agent.media.ocr import CHANGED_LEVEL, SAME_FRACTION, SAME_FRAME, ocr_query, read_lines
from grounding_agent.media.speech_query import speech_query
from grounding_agent.media.text_match import normalize
from grounding_agent.media.transcript import Word, search_words
from grounding_agent.media.vad import SAMPLE_RATE, clamp_word, voice_regions, whisper_clips
from grounding_agent.types import Evidence, Moment

__all__ = ["Alert", "Hit", "ScreenAlerts", "SpeechAlerts", "VisualAlerts", "WindowGrounder", "read_alert"]

log = logging.getLogger(__name__)

Channel = Literal["speech", "ocr", "visual"]
VAD_EVERY_S = 0.5
MAX_PENDING = 3  # utterances waiting for Whisper at most; beyond, new ones are skipped (and counted)
KEEP_SILENCE_S = 0.5
QUIET_RMS = 1e-3  # -60 dBFS
QUIET_RATIO = 0.25  # -12 dB  # leading silence kept before speech (the VAD needs some context)
WINDOWS_KEPT = 64  # visual windows remembered for the report (bounded)
SPEECH_END_SLACK_S = 0.5  # a Whisper segment ending this close to the VAD's end of speech ends the utterance


@dataclass(frozen=True)
class Alert:
    """A standing query: as typed, the channel it is watched on and what is looked for."""

    query: str
    channel: Channel
    target: str


@dataclass(frozen=True)
class Hit:
    alert: Alert
    start_s: float
    end_s: float
    score: float
    text: str
    evidence: tuple[Evidence, ...] = field(default=())


def read_alert(text: str) -> Alert:
    """What an `--alert` asks: speech ("when she says 'X'"), on-screen text ("the slide titled X") or visual.

    Raises:
        ConfigError: it reads as nothing (no words).
    """
    said, shown = speech_query(text), ocr_query(text)
    alert = (
        Alert(text, "speech", said)
        if said
        else Alert(text, "ocr", shown)
        if shown
        else Alert(text, "visual", text)
    )
    if not normalize(alert.target):
        raise ConfigError(
            f"--alert {text[:60]!r} reads as nothing; say what to watch for, e.g. "
            '"when someone says \'discount code\'" or "the slide titled Results"'
        )
    return alert


class SpeechAlerts:
    """Speech alerts over streamed 16 kHz mono audio (see the module docstring)."""

    def __init__(
        self,
        alerts: Sequence[Alert],
        whisper: Any,
        *,
        language: str | None = None,
        beam_size: int = LIVE.asr_beam_size,
        min_score: float = LIVE.min_score,
        silence_s: float = LIVE.asr_silence_s,
        max_s: float = LIVE.asr_max_s,
        context_s: float = LIVE.asr_context_s,
        keep_s: float = LIVE.keep_s,
        hotwords: bool = LIVE.asr_hotwords,
        no_speech: float = LIVE.asr_no_speech,
        unsure_logprob: float = LIVE.asr_unsure_logprob,
        max_compression: float = LIVE.asr_max_compression,
        max_tokens: int = LIVE.asr_max_tokens,
    ):
        self.alerts, self.whisper, self.language = list(alerts), whisper, language
        # One prompt for every call: the phrases, each once, in the order the alerts were given.
        phrases = dict.fromkeys(a.target for a in self.alerts)
        self.hotwords = ", ".join(phrases) if hotwords and phrases else None
        self.no_speech, self.unsure_logprob, self.max_compression = no_speech, unsure_logprob, max_compression
        self.max_tokens = max_tokens
        self.dropped = 0  # segments dropped as Whisper's hallucinations (see `_heard`)
        self.beam_size, self.min_score = beam_size, min_score
        self.silence_s, self.max_s, self.context_s, self.keep_s = silence_s, max_s, context_s, keep_s
        self.buffer = np.zeros(0, np.float32)
        self.t0_s = 0.0
        self._vad_at = 0
        self.context: deque[Word] = deque()  # the last context_s of words, for matching
        # The last keep_s of words, for recall: filled by the Whisper worker as soon as an utterance is
        # transcribed (a question during a stall sees it); readers copy it with list() (atomic).
        self.words: deque[Word] = deque()
        self._fired: dict[Alert, float] = {}
        self.calls = 0
        self.audio_s = self.skipped_s = 0.0
        self._ready: list[Hit] = []
        self.wait_when_behind = False  # True for a file read as fast as it decodes: nothing is skipped
        self._pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix="asr")
        self._jobs: deque[Future[list[Word]]] = deque()

    def feed(self, samples: np.ndarray, t0_s: float) -> list[Hit]:
        """Add audio starting at stream time `t0_s`; the hits of the utterances transcribed since."""
        end_s = self.t0_s + self.buffer.size / SAMPLE_RATE
        if self.buffer.size and abs(t0_s - end_s) > VAD_EVERY_S:  # a gap (reconnect): finish what is held
            self._step(final=True)
            self.buffer = np.zeros(0, np.float32)
        if not self.buffer.size:
            self.t0_s, self._vad_at = t0_s, 0
        self.buffer = np.concatenate([self.buffer, samples.astype(np.float32, copy=False)])
        if self.buffer.size - self._vad_at >= VAD_EVERY_S * SAMPLE_RATE:
            self._step(final=False)
        return self._collect(wait=False)

    def flush(self) -> list[Hit]:
        """Transcribe whatever is held and wait for every transcription (the stream ended)."""
        if self.buffer.size:
            self._step(final=True)
        self.buffer = np.zeros(0, np.float32)
        hits = self._collect(wait=True)
        self._pool.shutdown(wait=True)
        return hits

    def _collect(self, wait: bool) -> list[Hit]:
        hits, self._ready = self._ready, []
        while self._jobs and (wait or self._jobs[0].done()):
            hits += self._match(self._jobs.popleft().result())
        return hits

    def _step(self, final: bool) -> None:
        self._vad_at = self.buffer.size
        n, keep = self.buffer.size, int(KEEP_SILENCE_S * SAMPLE_RATE)
        if not final and n < self.max_s * SAMPLE_RATE and not _may_have_ended(self.buffer, self.silence_s):
            return  # the VAD costs ~50 ms a second of audio: run it only when an utterance may have ended
        regions = voice_regions(self.buffer)
        if not regions:
            self._drop(max(0, n - keep))
            return
        silence = n - regions[-1][1]
        if final or silence >= self.silence_s * SAMPLE_RATE:
            cut = n if final else regions[-1][1] + (silence // 2)
        elif n - regions[0][0] >= self.max_s * SAMPLE_RATE:
            cut = (regions[-2][1] + regions[-1][0]) // 2 if len(regions) > 1 else n
        else:
            self._drop(max(0, regions[0][0] - keep))
            return
        done = [(a, min(b, cut)) for a, b in regions if a < cut]
        if len(self._jobs) >= MAX_PENDING and self.wait_when_behind:  # a file waits for us
            self._ready += self._match(self._jobs.popleft().result())
        if len(self._jobs) >= MAX_PENDING:  # Whisper is behind the stream: this utterance is skipped
            self.skipped_s += cut / SAMPLE_RATE
        else:
            self._jobs.append(self._pool.submit(self._transcribe, self.buffer[:cut].copy(), done, self.t0_s))
        self._drop(cut)

    def _drop(self, k: int) -> None:
        if k > 0:
            self.buffer = self.buffer[k:]
            self.t0_s += k / SAMPLE_RATE
            self._vad_at = max(0, self._vad_at - k)

    def _transcribe(self, audio: np.ndarray, regions: list[tuple[int, int]], t0_s: float) -> list[Word]:
        """Whisper on one utterance, in the worker thread (CTranslate2 releases the GIL)."""
        raw, info = self.whisper.transcribe(
            audio,
            language=self.language,
            beam_size=self.beam_size,
            word_timestamps=True,
            vad_filter=False,
            clip_timestamps=whisper_clips(regions, audio.size),
            condition_on_previous_text=False,
            hotwords=self.hotwords,
            # faster-whisper decodes the pause after an utterance's last word again (unless `_until_pause` stops
            # it first); with hotwords that pause can loop on them ("silver station, silver station, ...") up to
            # 448 tokens and through every temperature fallback: 10-20 s of CPU instead of ~2 s. One greedy
            # pass, a bounded number of tokens (a loop is then dropped by `_heard`).
            temperature=0.0,
            max_new_tokens=self.max_tokens,
        )
        regions_s = [(t0_s + a / SAMPLE_RATE, t0_s + b / SAMPLE_RATE) for a, b in regions]
        words = [
            clamp_word(Word(w.word.strip(), t0_s + w.start, t0_s + w.end, float(w.probability)), regions_s)
            for seg in _until_pause(
                raw, regions[-1][1] / SAMPLE_RATE if regions else audio.size / SAMPLE_RATE
            )
            if self._heard(seg)
            for w in (seg.words or [])
            if w.word.strip()
        ]
        self.language = self.language or info.language  # detected once, then fixed
        if words:  # one worker: the only writer of `words`
            self.words.extend(words)
            while self.words and self.words[0].end_s < words[-1].end_s - self.keep_s:
                self.words.popleft()
        self.calls += 1
        self.audio_s += audio.size / SAMPLE_RATE
        return words

    def _heard(self, segment: Any) -> bool:
        """False for a segment Whisper likely made up: a loop (its text compresses like a repetition), or one it
        thinks has no speech and is unsure of. Such segments come from pauses, and with hotwords they may
        quote the alerts' phrases ("blue harbour, silver station," after "use the discount code"): false
        alerts. Whisper's own no-speech rule (0.6 and -1.0) keeps them: measured ones scored 0.52-0.57 and
        -0.7 to -2.7, speech 0.00-0.09."""
        unsure = segment.no_speech_prob >= self.no_speech and segment.avg_logprob < self.unsure_logprob
        made_up = unsure or segment.compression_ratio > self.max_compression
        self.dropped += made_up
        return not made_up

    def _match(self, words: list[Word]) -> list[Hit]:
        if not words:
            return []
        self.context.extend(words)
        while self.context and self.context[0].end_s < words[-1].end_s - self.context_s:
            self.context.popleft()
        hits = []
        for alert in self.alerts:
            for m in sorted(
                search_words(list(self.context), alert.target, min_score=self.min_score),
                key=lambda m: m.start_s,
            ):
                if m.start_s >= self._fired.get(alert, -1.0):
                    self._fired[alert] = m.end_s
                    ev = m.to_evidence("whisper")
                    hits.append(Hit(alert, m.start_s, m.end_s, m.score, m.text, (ev,)))
        return hits


def _until_pause(segments: Iterable[Any], speech_end_s: float) -> Iterator[Any]:
    """Whisper's segments (a lazy generator) until one reaches the end of the speech: what is left of the clip
    is the pause padded after it, which faster-whisper would decode once more (an encoder pass, and with
    hotwords often a loop on them) for nothing. Whisper's last word ends up to ~0.3 s before the VAD's end."""
    for seg in segments:
        yield seg
        if seg.words and seg.words[-1].end >= speech_end_s - SPEECH_END_SLACK_S:
            return


def _rms(x: np.ndarray) -> float:
    return float(np.sqrt(np.mean(np.square(x)))) if x.size else 0.0


def _may_have_ended(audio: np.ndarray, silence_s: float) -> bool:
    """Cheap gate before the VAD: the last `silence_s` is quiet, absolutely or 12 dB under the loudest
    stretch held (speech over background noise), or everything held is near silence (to drop it)."""
    tail = int(silence_s * SAMPLE_RATE)
    if audio.size < 2 * tail:
        return False
    windows = audio[: audio.size // tail * tail].reshape(-1, tail)
    loudest = float(np.sqrt(np.square(windows).mean(axis=1)).max())
    last = _rms(audio[-tail:])
    return last < QUIET_RMS or last < QUIET_RATIO * loudest


def changed(a: np.ndarray | None, b: np.ndarray) -> bool:
    """Whether frame b shows something else than frame a (the test `media.ocr` uses between coarse reads)."""
    if a is None or a.shape != b.shape:
        return True
    diff = np.abs(a.astype(np.int16) - b.astype(np.int16)).max(axis=-1)
    return not (float(diff.mean()) < SAME_FRAME and float((diff > CHANGED_LEVEL).mean()) < SAME_FRACTION)


def _fuzzy(needle: str, text: str) -> float:
    from rapidfuzz import fuzz

    q, t = " ".join(normalize(needle)), " ".join(normalize(text))
    return fuzz.partial_ratio(q, t) / 100.0 if q and t else 0.0


class ScreenAlerts:
    """On-screen text alerts over sampled RGB frames (see the module docstring)."""

    def __init__(self, alerts: Sequence[Alert], *, min_score: float = LIVE.min_score, keep: int = 4096):
        self.alerts, self.min_score = list(alerts), min_score
        self._last: np.ndarray | None = None
        self._shown: dict[Alert, bool] = {}
        self.read = self.skipped = 0
        self.stride = 1  # degradation: read one changed frame in `stride`
        self._changes = 0
        self.texts: deque[tuple[float, str]] = deque(maxlen=keep)  # (time, text) at each change, for recall

    def feed(self, pixels: np.ndarray, t_s: float) -> list[Hit]:
        if not changed(self._last, pixels):
            self.skipped += 1
            return []
        self._changes += 1
        if self._changes % self.stride:
            self.skipped += 1
            return []
        self._last = pixels
        self.read += 1
        text = " ".join(line.text for line in read_lines(pixels))
        if not self.texts or self.texts[-1][1] != text:
            self.texts.append((t_s, text))
        hits = []
        for alert in self.alerts:
            score = _fuzzy(alert.target, text)
            shown = score >= self.min_score
            if shown and not self._shown.get(alert, False):
                hits.append(
                    Hit(alert, t_s, t_s, score, text, (Evidence("ocr", t_s, t_s, score, text, "rapidocr"),))
                )
            self._shown[alert] = shown
        return hits


class WindowGrounder(Protocol):
    """A grounder (`grounders.base.Grounder`): only `ground` is used, on a clip cut from the ring."""

    name: str

    def ground(self, video: Any, query: str, *, top_k: int = 1) -> Any: ...


@dataclass
class _Pending:
    thread: threading.Thread
    hits: list[Hit]


class VisualAlerts:
    """Visual alerts: every 60/calls_per_min s of stream, the last `window_s` is cut from the ring and each
    alert is grounded in it (in a worker thread: the watch never waits for it); a best moment scoring at
    least `min_score` fires. `calls_per_min` is lowered when the watch lags (see `watcher`)."""

    def __init__(
        self,
        alerts: Sequence[Alert],
        grounder: WindowGrounder,
        cut: Any,
        workdir: str | Path,
        *,
        calls_per_min: float = LIVE.visual_calls_per_min,
        window_s: float = LIVE.visual_window_s,
        min_score: float = LIVE.min_score,
    ):
        self.alerts, self.grounder, self.cut = list(alerts), grounder, cut
        self.workdir = Path(workdir)
        self.calls_per_min, self.window_s, self.min_score = calls_per_min, window_s, min_score
        self._next_s = window_s
        self._pending: _Pending | None = None
        self.calls = self.skipped = self.malformed = self.failed = 0
        # (start_s, end_s) of the last windows grounded, for the report
        self.windows: deque[tuple[float, float]] = deque(maxlen=WINDOWS_KEPT)

    def flush(self) -> list[Hit]:
        """Wait for the call in flight (the stream ended) and return its hits."""
        if self._pending is None:
            return []
        self._pending.thread.join()
        hits, self._pending = self._pending.hits, None
        return hits

    def poll(self, closed_until_s: float) -> list[Hit]:
        """Hits of a finished call; starts the next call when one is due and the ring has the window."""
        hits: list[Hit] = []
        if self._pending is not None and not self._pending.thread.is_alive():
            hits, self._pending = self._pending.hits, None
        if closed_until_s >= self._next_s and self.calls_per_min > 0:
            if self._pending is not None:
                self.skipped += 1  # the last call is still running: this window is skipped
            else:
                out: list[Hit] = []
                thread = threading.Thread(target=self._run, args=(closed_until_s, out), daemon=True)
                self._pending = _Pending(thread, out)
                thread.start()
            self._next_s = closed_until_s + 60.0 / self.calls_per_min
        return hits

    def _run(self, end_s: float, out: list[Hit]) -> None:
        start_s = max(0.0, end_s - self.window_s)
        self.windows.append((start_s, end_s))  # end_s: the ring's closed part, already seen: no look-ahead
        clip = self.workdir / f"window-{int(end_s * 1000):012d}.mp4"
        try:
            self.cut(start_s, end_s, clip)
            for alert in self.alerts:
                self.calls += 1
                answer = self.grounder.ground(clip, alert.target, top_k=1)
                best: Moment | None = answer.best
                if answer.failures or best is None:
                    self.malformed += 1  # an answer with no usable span is expected: counted, not fatal
                if best is not None and best.score >= self.min_score:
                    a = min(end_s, start_s + best.start_s)
                    b = min(end_s, max(a, start_s + best.end_s))
                    ev = Evidence("grounder", a, b, best.score, alert.target, self.grounder.name)
                    out.append(Hit(alert, a, b, best.score, alert.target, (ev,)))
        except Exception as exc:  # noqa: BLE001 - a failed call is counted and logged, never fatal
            self.failed += 1
            log.warning("visual alert call failed: %s", exc)
        finally:
            clip.unlink(missing_ok=True)
