"""Whisper ASR over a video's audio track: faster-whisper on the speech regions the VAD finds, with word
timestamps, streamed in chunks, and cached as JSON by file content.

    asr = Transcriber("~/.cache/grounding-agent/whisper-base-1.0.0-1.0.0")   # a CTranslate2 Whisper folder
    transcript = asr.transcribe("talk.mp4")                                 # cached by file content

Pipeline: the first audio stream is decoded with PyAV to 16 kHz mono and streamed in chunks of `chunk_s`
seconds, each cut in a pause found by the VAD, so memory is bounded by the chunk, not the video. Silero
VAD (faster-whisper's ONNX copy, no torch) finds the speech regions; Whisper transcribes only those
(`clip_timestamps`), with word timestamps; each word is then clamped into its VAD region (see `vad`).
A file with no audio track gives an empty transcript whose `notes` say so; it is not an error.

Transcripts are cached under `cache_folder("transcripts")` (~/.cache/grounding-agent/transcripts, or
$GROUNDING_AGENT_CACHE), keyed by the file's content hash, the model's fingerprint and the options.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import threading
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from grounding_agent.defaults import MEDIA
from grounding_agent.errors import ConfigError, ModelLoadError
from grounding_agent.io import write_json_atomic
from grounding_agent.media.audio import has_audio, iter_audio
from grounding_agent.media.transcript import CACHE_VERSION, Segment, Transcript, Word
from grounding_agent.media.vad import (
    CUT_MARGIN_S,
    SAMPLE_RATE,
    clamp_word,
    cut_point,
    voice_regions,
    whisper_clips,
)
from grounding_agent.types import Video
from grounding_agent.utils.cache import cache_folder, file_fingerprint

__all__ = [
    "KnownTranscript",
    "TranscribeStats",
    "Transcriber",
    "asr_model_fingerprint",
    "load_whisper",
    "transcribe",
]

log = logging.getLogger(__name__)

VAD = "silero-vad-v6 (faster-whisper)"  # in the cache key: regions from another VAD are other transcripts
ASR_HINT = "pass --asr-model DIR (a CTranslate2 Whisper folder, e.g. from tests/assets/whisper_base.py)"


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
    num_workers: int = 1,
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
            num_workers=num_workers,
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


def check_language(language: str | None) -> str | None:
    """`language` if Whisper knows the code (None: detect it), else a one-line `ConfigError` naming the codes.

    Checked here, not by faster-whisper: its ValueError comes only after the model is loaded.
    """
    if language is None:
        return None
    try:
        from faster_whisper.tokenizer import _LANGUAGE_CODES as codes  # the list faster-whisper checks
    except ImportError:  # the speech extra is missing: the Transcriber says so itself
        return language
    if language not in codes:
        raise ConfigError(
            f"--asr-language {str(language)[:40]!r} is not a language code Whisper knows; "
            f"give one of: {' '.join(sorted(codes))} (or leave it out to detect the language)"
        )
    return language


class Transcriber:
    """ASR over a video's audio track with VAD, chunked streaming and a content-hash cache.

    Args:
        model: a CTranslate2 Whisper folder, or a faster-whisper name ("base") / hub id (needs network).
        language: a language code, or None to detect it on the first chunk with speech.
        language_once_at: with no `language`, keep the first language detected with at least this
            probability for every later file (a library run: Whisper's detection is a second encoder pass,
            as dear as the whole transcription of a short file); a file in another language is then heard
            as that one. None: detect per file.
        compute_type: CTranslate2 compute type ("int8" on CPU).
        beam_size: Whisper beam size.
        vad: find speech with the VAD first (False: transcribe each chunk whole).
        chunk_s: seconds of audio held and transcribed at once.
        cache_dir: where transcripts go; None: `cache_folder("transcripts")`. use_cache=False: never read or write.
        cpu_threads: CTranslate2 threads (0: its default).
        num_workers: files transcribed at once from as many Python threads (CTranslate2 `inter_threads`).
        local_files_only: never reach the hub for a name.
    """

    def __init__(
        self,
        model: str | Path,
        *,
        language: str | None = None,
        language_once_at: float | None = None,
        device: str = "cpu",
        compute_type: str = "int8",
        beam_size: int = 5,
        vad: bool = True,
        chunk_s: float = MEDIA.asr_chunk_s,
        cache_dir: str | Path | None = None,
        use_cache: bool = True,
        cpu_threads: int = 0,
        num_workers: int = 1,
        download_root: str | Path | None = None,
        local_files_only: bool = False,
    ):
        if chunk_s < 4 * CUT_MARGIN_S:
            raise ConfigError(f"chunk_s must be >= {4 * CUT_MARGIN_S} s, got {chunk_s}")
        if beam_size < 1:
            raise ConfigError(f"beam_size must be >= 1, got {beam_size}")
        self.model_name = str(model)
        self.language = check_language(language)
        self.language_once_at = language_once_at
        self.run_language: str | None = None  # the language detected once (`language_once_at`)
        self.device, self.compute_type, self.beam_size, self.vad = device, compute_type, beam_size, vad
        self.chunk_s = chunk_s
        self.cache_dir = Path(cache_dir) if cache_dir is not None else cache_folder("transcripts")
        self.use_cache = use_cache
        self.stats = TranscribeStats()
        self._load_kwargs = {
            "device": device,
            "compute_type": compute_type,
            "cpu_threads": cpu_threads,
            "num_workers": num_workers,
            "download_root": download_root,
            "local_files_only": local_files_only,
        }
        self._model: Any = None
        self._loading = threading.Lock()  # files transcribed from several threads load it once
        if (
            _looks_like_path(self.model_name)
            and not (Path(self.model_name).expanduser() / "model.bin").is_file()
        ):
            load_whisper(self.model_name, **self._load_kwargs)  # raises the one-line ModelLoadError now

    @property
    def whisper(self) -> Any:
        # Loaded on first use: a cache hit never pays for the model.
        with self._loading:
            if self._model is None:
                self._model = load_whisper(self.model_name, **self._load_kwargs)
        return self._model

    def _key(self, path: Path) -> str:
        parts = {
            "version": CACHE_VERSION,
            "file": file_fingerprint(path),
            "model": asr_model_fingerprint(self.model_name),
            # Detected once per run is not detected per file: the two are cached apart.
            "language": self.language or (None if self.language_once_at is None else "once per run"),
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
        if not has_audio(path):
            log.info("%s has no audio track: empty transcript", path)
            return Transcript(has_audio=False, model=self.model_name, notes=("no audio track",))
        segments: list[Segment] = []
        regions_s: list[tuple[float, float]] = []
        duration_s, language = 0.0, self.language or self.run_language
        for offset_s, audio, regions in self._chunks(iter_audio(path, sample_rate=SAMPLE_RATE)):
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
        """(offset_s, audio, speech regions in samples) per chunk, each cut in a pause (see `vad.cut_point`)."""
        limit = int(self.chunk_s * SAMPLE_RATE)
        buffer, offset = np.zeros(0, np.float32), 0
        for block in blocks:
            buffer = np.concatenate([buffer, block])
            while buffer.size >= limit:
                regions = self._regions(buffer)
                cut = cut_point(regions, buffer.size) if self.vad else buffer.size
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
            clip_timestamps=whisper_clips(regions, audio.size),
            condition_on_previous_text=False,
        )
        out = []
        for seg in raw:  # a generator: decoding happens here
            words = tuple(
                clamp_word(
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
        sure = self.language_once_at is not None and info.language_probability >= self.language_once_at
        if language is None and out and sure:
            self.run_language = info.language
        return out, language or info.language


def transcribe(video: Video | str | Path, model: str | Path, **options: Any) -> Transcript:
    """One-shot `Transcriber(model, **options).transcribe(video)`."""
    return Transcriber(model, **options).transcribe(video)


class KnownTranscript:
    """A transcript already at hand, offered where a transcriber is expected (`.transcribe(video)`)."""

    def __init__(self, transcript: Transcript):
        self.transcript = transcript

    def transcribe(self, video: Any) -> Transcript:
        return self.transcript
