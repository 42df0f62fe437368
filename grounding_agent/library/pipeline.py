"""The index pipeline, one plain function a stage, over one video: decode -> embed / transcribe / ocr.

    models = Models(saliency=ClipSaliency.from_pretrained(DIR), transcriber=Transcriber(WHISPER))
    record = index_one("a.mp4", ("visual", "speech", "ocr"), models)   # then store.write(record)

Each stage takes the probed `Video` and the models and returns plain data, so a Ray Data job can run the
same stages as map steps (read -> decode -> embed / transcribe / OCR -> write). `index_one` runs them on
one machine with less waste: one decode feeds both frame channels (`frames.frame_pass`, OCR in a thread of
its own), and speech runs in other threads meanwhile (CTranslate2 and ONNX Runtime release the GIL, so both
cores work). Across files, `SpeechAhead` starts the speech of the next files while this one's frames are
read (on a folder of short files Whisper is the long pole: its 30-s window costs the same for 5 s of
audio). Models are loaded once per `Models` (one per `Library.index` run) and reused across files; every
channel keeps a content-keyed cache, so a file indexed before into another library costs nothing the
second time.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from grounding_agent.defaults import LIBRARY
from grounding_agent.errors import LibraryError
from grounding_agent.highlights.clip import ClipSaliency
from grounding_agent.library.frames import frame_pass
from grounding_agent.library.records import CHANNELS, Channel, VideoRecord
from grounding_agent.media.asr import Transcriber
from grounding_agent.media.ocr import ScreenReader, ScreenText
from grounding_agent.media.transcript import Transcript
from grounding_agent.media.video import open_video
from grounding_agent.types import Video
from grounding_agent.utils.cache import file_fingerprint

Embedded = tuple[np.ndarray, np.ndarray, tuple[tuple[float, float], ...]]


def index_transcriber(folder: str | Path, *, num_workers: int = LIBRARY.asr_workers) -> Transcriber:
    """The library's Whisper, the same on one machine and on every Ray worker (the beam and threads change
    what it hears: `tests/test_ray.py` compares the words): greedy, int8, `LIBRARY.asr_threads` CTranslate2
    threads (speech runs beside the frame channels), the language detected once per run, not once a file (a
    short file's detection cost as much as its ASR)."""
    return Transcriber(
        folder,
        beam_size=LIBRARY.asr_beam_size,
        cpu_threads=LIBRARY.asr_threads,
        num_workers=num_workers,
        language_once_at=LIBRARY.asr_language_once_at,
    )


@dataclass
class Models:
    """The models of the channels (None where a channel is not wanted) and the frame sampling rates (at
    equal rates, the default, the visual and OCR channels read the same decoded frames). `ocr_threads`:
    ONNX Runtime threads of the OCR (`LIBRARY.ocr_threads`)."""

    saliency: ClipSaliency | None = None
    transcriber: Transcriber | None = None
    reader: ScreenReader | None = field(default=None)
    visual_fps: float = LIBRARY.visual_fps
    ocr_fps: float = LIBRARY.ocr_fps
    ocr_threads: int = LIBRARY.ocr_threads

    def names(self) -> dict[str, str]:
        out = {}
        if self.saliency is not None:
            out["visual"] = self.saliency.model_id
        if self.transcriber is not None:
            out["speech"] = self.transcriber.model_name
        if self.reader is not None:
            out["ocr"] = self.reader.model_name()
        return out

    def check(self, channels: tuple[Channel, ...]) -> None:
        """Raise `LibraryError` when a wanted channel has no model (before any file is touched)."""
        for channel in channels:
            if channel not in CHANNELS:
                raise LibraryError(f"unknown channel {channel!r}; choose from {', '.join(CHANNELS)}")
        missing = [
            (channel, option)
            for channel, option, model in (
                ("visual", "--saliency-model DIR", self.saliency),
                ("speech", "--asr-model DIR", self.transcriber),
            )
            if channel in channels and model is None
        ]
        for channel, option in missing:
            raise LibraryError(f"the {channel} channel needs a model: pass {option} or --no-{channel}")
        if "ocr" in channels and self.reader is None:
            self.reader = ScreenReader(fps=self.ocr_fps, refine_fps=0.0)  # spans to 1 / ocr_fps (the default)


def decode(path: str | Path) -> tuple[Video, str, os.stat_result]:
    """Probe a file: its metadata (typed `VideoError`s for a bad file), content fingerprint and stat."""
    video = open_video(path)
    return video, file_fingerprint(path), Path(path).stat()


def embed(video: Video, models: Models) -> Embedded:
    """Frame times, unit-norm frame vectors at `models.visual_fps`, and the shots they cut into."""
    assert models.saliency is not None
    visual, _ = _frames(video, file_fingerprint(video.path), models, ("visual",))
    assert visual is not None
    return _embedded(visual, video)


def _frames(video: Video, fingerprint: str, models: Models, channels: tuple[str, ...]):
    return frame_pass(
        video,
        fingerprint,
        channels,
        saliency=models.saliency,
        fps=models.visual_fps,
        ocr_fps=models.ocr_fps,
        ocr_threads=models.ocr_threads,
    )


def _embedded(visual: tuple[np.ndarray, np.ndarray], video: Video) -> Embedded:
    times = np.asarray(visual[0], dtype=np.float64)
    vectors = np.asarray(visual[1], dtype=np.float32)
    return times, vectors, shots(times, vectors, video.duration_s)


def shots(times_s: np.ndarray, vectors: np.ndarray, duration_s: float) -> tuple[tuple[float, float], ...]:
    """Spans between cuts, a cut being a cosine distance above `LIBRARY.shot_cut` between neighbours."""
    if not len(times_s):
        return ()
    distance = 1.0 - np.sum(vectors[1:] * vectors[:-1], axis=1)
    cuts = [float(times_s[i + 1]) for i in np.flatnonzero(distance > LIBRARY.shot_cut)]
    edges = [0.0, *cuts, float(duration_s)]
    return tuple((a, b) for a, b in zip(edges, edges[1:]) if b > a)


def transcribe(video: Video, models: Models) -> Transcript:
    assert models.transcriber is not None
    return models.transcriber.transcribe(video.path)


def read_text(video: Video, models: Models) -> ScreenText:
    """On-screen text of the frames sampled at `models.ocr_fps` (OCR on changed frames only)."""
    _, screen = _frames(video, file_fingerprint(video.path), models, ("ocr",))
    assert screen is not None
    return screen


class SpeechAhead:
    """Transcripts started before their file's turn, in the order the files will be indexed:

        with SpeechAhead(models, todo_paths) as ahead:
            for path in todo_paths:
                record = index_one(path, channels, models, speech=ahead.take(path))

    `take(path)` returns that file's future and starts the next ones, so `workers` files are transcribed at
    once (each Whisper call on one CTranslate2 thread; `Transcriber(num_workers=...)` lets them run in
    parallel). A file whose probe fails just leaves its future unread; its error is the probe's.
    """

    def __init__(self, models: Models, paths: Sequence[Path], workers: int = LIBRARY.asr_workers):
        self.models, self.paths, self.workers = models, list(paths), max(1, workers)
        self._pool = ThreadPoolExecutor(self.workers, thread_name_prefix="speech-ahead")
        self._order = {p: i for i, p in enumerate(self.paths)}
        self._started: dict[Path, Future[Transcript]] = {}
        self._next = 0

    def take(self, path: str | Path) -> Future[Transcript] | None:
        """`path`'s transcript (a future), the next files' started; None for a path not in the plan."""
        path = Path(path).resolve()
        at = self._order.get(path)
        if at is None:
            return None
        for passed in [p for p in self._started if self._order[p] < at]:  # not indexed after all (a twin)
            self._started.pop(passed).cancel()
        self._next = max(self._next, at)
        while len(self._started) < self.workers + 1 and self._next < len(self.paths):  # this + next ones
            ahead = self.paths[self._next]
            self._started[ahead] = self._pool.submit(self._transcribe, ahead)
            self._next += 1
        return self._started.pop(path, None)

    def _transcribe(self, path: Path) -> Transcript:
        assert self.models.transcriber is not None
        return self.models.transcriber.transcribe(path)

    def __enter__(self) -> SpeechAhead:
        return self

    def __exit__(self, *exc: object) -> None:
        for future in self._started.values():
            future.cancel()  # a stopped run does not transcribe files it will not index
        self._pool.shutdown(wait=True)


def index_one(
    path: str | Path,
    channels: tuple[Channel, ...],
    models: Models,
    *,
    speech: Future[Transcript] | None = None,
) -> VideoRecord:
    """Run every wanted stage on one file and return its record (nothing is written here).

    Speech runs in a second thread while the frames are decoded, embedded and read (or was started
    earlier: `speech`, from `SpeechAhead`).

    Raises:
        VideoError: the file is no usable video (the caller reports it as skipped).
    """
    video, fingerprint, st = decode(path)
    video = Video(
        Path(path).resolve(), video.duration_s, video.avg_fps, video.num_frames, video.width, video.height
    )
    with ThreadPoolExecutor(1, thread_name_prefix="speech") as pool:
        if speech is None and "speech" in channels:
            speech = pool.submit(transcribe, video, models)
        visual, screen = _frames(video, fingerprint, models, channels)
        transcript = speech.result() if speech is not None else None
    times, vectors, cuts = (
        _embedded(visual, video) if visual is not None else (np.zeros(0), np.zeros((0, 0)), ())
    )
    return VideoRecord(
        video=video,
        fingerprint=fingerprint,
        size_bytes=st.st_size,
        mtime_ns=st.st_mtime_ns,
        channels=tuple(channels),
        frame_times_s=times,
        frame_vectors=vectors.astype(np.float32),
        shots=cuts,
        transcript=transcript,
        screen=screen,
        model={c: n for c, n in models.names().items() if c in channels},
    )
