"""`index --ray ADDRESS`: the same index stages as a Ray Data job, the writes in this process.

    report = index_on_ray(Library(DIR, create=True), ["~/rushes"], address="10.0.0.5:6379",
                          models=ModelDirs(saliency=CLIP_DIR, asr=WHISPER_DIR))   # every channel

read (the files to do, found here exactly as `Library.index` finds them) -> decode (probe + fingerprint,
per file: unusable files are skipped there, with the reason a local run gives) -> embed / transcribe / OCR
(an actor pool, one actor a cluster CPU, each loading CLIP, Whisper and RapidOCR once with the options
`Library.models` uses; `frames.frame_pass` feeds CLIP and OCR from one decode, `pipeline.transcribe` the
speech, as `pipeline.index_one` does) -> write (here, in scan order: the store takes one writer for a
folder, and the rows, duplicates and skips come out as a one-process `index` makes them; the records, and
so the store, are the same: tests/test_ray.py). Every node needs this package and the model folders at
the same paths (a shared folder, or the same image); see docs/scale-out.md.
"""

from __future__ import annotations

import pickle
import time
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from grounding_agent.defaults import RAY
from grounding_agent.errors import LibraryError, VideoError
from grounding_agent.library.core import Library, Progress, is_unchanged
from grounding_agent.library.frames import frame_pass
from grounding_agent.library.pipeline import Models, decode, index_transcriber, shots, transcribe
from grounding_agent.library.records import CHANNELS, Channel, IndexReport, IndexRow, VideoRecord
from grounding_agent.library.scan import scan
from grounding_agent.types import Video


@dataclass(frozen=True)
class ModelDirs:
    """Where each node loads the channels' models from (the same path on every node)."""

    saliency: str | None = None
    asr: str | None = None
    visual_fps: float | None = None

    def check(self, channels: tuple[Channel, ...]) -> None:
        """`LibraryError` for an unknown channel or a wanted one without its model, before the cluster."""
        for channel in channels:
            if channel not in CHANNELS:
                raise LibraryError(f"unknown channel {channel!r}; choose from {', '.join(CHANNELS)}")
        for channel, option, folder in (("visual", "--saliency-model DIR", self.saliency),
                                        ("speech", "--asr-model DIR", self.asr)):  # fmt: skip
            if channel in channels and not folder:
                raise LibraryError(f"the {channel} channel needs a model: pass {option} or --no-{channel}")

    def load(self, channels: Sequence[Channel]) -> Models:
        """The models `Library.models` makes, once per actor (`index_transcriber`: the same Whisper). Each
        actor transcribes one file at a time and detects the language once for the files it gets, as one
        `index` run does for all of them."""
        from grounding_agent.highlights.clip import ClipSaliency

        transcriber = None
        if "speech" in channels and self.asr:
            transcriber = index_transcriber(self.asr, num_workers=1)
        models = Models(
            saliency=ClipSaliency.from_pretrained(self.saliency)
            if "visual" in channels and self.saliency
            else None,
            transcriber=transcriber,
        )
        if self.visual_fps is not None:
            models.visual_fps = self.visual_fps
        models.check(tuple(channels))
        return models


def index_on_ray(
    library: Library,
    paths: Iterable[str | Path],
    *,
    address: str,
    channels: Sequence[Channel] = CHANNELS,
    models: ModelDirs = ModelDirs(),
    on_progress: Progress | None = None,
) -> IndexReport:
    """Index new and changed videos under `paths` on the Ray cluster at `address`; write them here.

    Raises:
        LibraryError: a channel without its model, or a cluster that cannot be reached.
        LibraryStoreError: another process is writing the library.
    """
    channels = tuple(dict.fromkeys(channels))
    models.check(channels)
    started, rows, paths = time.perf_counter(), [], list(paths)
    with library.store.writer():  # a folder's one-writer lock; a database takes several writers
        known = {r["path"]: r for r in library.store.videos()}
        found = list(scan(paths))
        todo = [f.path for f in found if not f.skip and not is_unchanged(f.path, known, channels)]
        results = run_stages(todo, address=address, channels=channels, models=models)
        by_fingerprint = {r["fingerprint"]: r["path"] for r in known.values()}
        for item in found:
            row = _row(library, item, known, channels, results, by_fingerprint)
            rows.append(row)
            if on_progress is not None:
                on_progress(row)
        return library.finish_index(rows, known, paths, channels, started, on_progress)


def _row(library, item, known, channels, results, by_fingerprint) -> IndexRow:
    """The row `Library.index` would give this file, with its record computed on the cluster."""
    if item.skip:
        return IndexRow(str(item.path), "skipped", item.skip)
    real = str(item.path.resolve())
    if is_unchanged(item.path, known, channels):
        return IndexRow(real, "unchanged")
    done = results[real]
    if done["skip"]:
        return IndexRow(real, "skipped", done["skip"])
    record: VideoRecord = pickle.loads(done["record"])
    twin = by_fingerprint.get(record.fingerprint)
    if twin and twin != real and Path(twin).is_file():
        return IndexRow(real, "skipped", f"duplicate of {twin}")
    library.store.write(record)
    by_fingerprint[record.fingerprint] = real
    known[real] = {"fingerprint": record.fingerprint, "seen": True}
    return IndexRow(real, "indexed", seconds=done["seconds"])


# --- the Ray Data job ------------------------------------------------------------------------------------


def run_stages(
    paths: Sequence[Path], *, address: str, channels: tuple[Channel, ...], models: ModelDirs
) -> dict[str, dict[str, Any]]:
    """resolved path -> {"record": pickled VideoRecord, "skip": reason or "", "seconds"}, from the cluster."""
    if not paths:
        return {}
    import ray

    try:
        ray.init(address=address, ignore_reinit_error=True, log_to_driver=False, logging_level="ERROR")
    except (ConnectionError, RuntimeError, ValueError) as exc:
        raise LibraryError(
            f"cannot reach the Ray cluster at {address} ({exc}); start it with `ray start`"
        ) from None
    context = ray.data.DataContext.get_current()
    context.enable_progress_bars = False  # the caller reports per file; Ray's bars would bury it
    context.execution_options.preserve_order = True
    actors = max(1, min(len(paths), int(ray.cluster_resources().get("CPU", 1) // RAY.num_cpus)))
    ds = ray.data.from_items([{"path": str(p.resolve())} for p in paths])
    ds = ds.map(_decode_row, num_cpus=RAY.num_cpus)
    ds = ds.map(
        _ChannelStage,
        fn_constructor_kwargs={"channels": channels, "models": models},
        compute=ray.data.ActorPoolStrategy(size=actors),  # one actor a CPU, each loading the models once
        num_cpus=RAY.num_cpus,
    )
    return {row["path"]: row for row in ds.take_all()}


def _decode_row(row: dict[str, Any]) -> dict[str, Any]:
    """Probe and fingerprint one file (a Ray task); an unusable one carries its skip reason on."""
    path = Path(row["path"])
    started = time.perf_counter()
    try:
        video, fingerprint, st = decode(path)
    except VideoError as exc:
        return {**row, "decoded": b"", "skip": str(exc).removeprefix(f"{path}: "), "started": started}
    except OSError as exc:
        return {**row, "decoded": b"", "skip": f"unreadable ({exc.strerror or exc})", "started": started}
    video = Video(path, video.duration_s, video.avg_fps, video.num_frames, video.width, video.height)
    decoded = pickle.dumps((video, fingerprint, st.st_size, st.st_mtime_ns))
    return {**row, "decoded": decoded, "skip": "", "started": started}


class _ChannelStage:
    """Embed / transcribe / OCR one decoded file (a Ray actor: the models load once per actor)."""

    def __init__(self, channels: tuple[Channel, ...], models: ModelDirs):
        self.channels = channels
        self.models = models.load(channels)

    def __call__(self, row: dict[str, Any]) -> dict[str, Any]:
        out = {"path": row["path"], "skip": row["skip"], "record": b"", "seconds": 0.0}
        if row["skip"]:
            return out
        video, fingerprint, size, mtime = pickle.loads(row["decoded"])
        try:
            record = channel_record(video, fingerprint, size, mtime, self.channels, self.models)
        except VideoError as exc:
            return {**out, "skip": str(exc).removeprefix(f"{video.path}: ")}
        return {
            **out,
            "record": pickle.dumps(record),
            "seconds": round(time.perf_counter() - row["started"], 3),
        }


def channel_record(
    video: Video, fingerprint: str, size: int, mtime: int, channels: tuple[Channel, ...], models: Models
) -> VideoRecord:
    """The record `pipeline.index_one` makes, from a decoded file: one frame pass feeds the visual and OCR
    channels (as there; two stage calls would decode the file twice), then speech (`pipeline.transcribe`)."""
    import numpy as np

    visual, screen = frame_pass(
        video, fingerprint, channels, saliency=models.saliency, fps=models.visual_fps,
        ocr_fps=models.ocr_fps, ocr_threads=models.ocr_threads,
    )  # fmt: skip
    times = np.asarray(visual[0], dtype=np.float64) if visual is not None else np.zeros(0)
    vectors = np.asarray(visual[1], dtype=np.float32) if visual is not None else np.zeros((0, 0), np.float32)
    return VideoRecord(
        video=video,
        fingerprint=fingerprint,
        size_bytes=size,
        mtime_ns=mtime,
        channels=tuple(channels),
        frame_times_s=times,
        frame_vectors=vectors,
        shots=shots(times, vectors, video.duration_s) if visual is not None else (),
        transcript=transcribe(video, models) if "speech" in channels else None,
        screen=screen,
        model={c: n for c, n in models.names().items() if c in channels},
    )
