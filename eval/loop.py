"""The run loop: each video's queries dispatched to one worker, at most `--concurrency` in flight, every
answer (or typed error) appended to `predictions.jsonl` as one flushed line."""

from __future__ import annotations

import argparse
import asyncio
import itertools
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from tqdm import tqdm

from eval.videos import VideoFinder
from eval.workers import Worker
from grounding_agent.benchmarks.datasets import Annotation
from grounding_agent.cli.options import wants_agent
from grounding_agent.errors import ConfigError, GroundingAgentError
from grounding_agent.io import dumps_json
from grounding_agent.types import Prediction, Video


def error_row(ann: Annotation, kind: str, message: str) -> dict[str, Any]:
    row = Prediction(ann.qid, ann.vid, ann.query, []).to_dict()
    row["error"] = {"kind": kind, "message": message}
    return row


def video_for(ann: Annotation, grounder: Any, finder: VideoFinder) -> Video | str:
    """The Video to ground in, or an error message when its file is needed and missing."""
    path = finder.find(ann.vid)
    if not grounder.needs_pixels:  # model-free: the annotation's duration is all it reads
        return Video(path or Path(f"{ann.vid}.mp4"), ann.duration_s, 0.0, 0, 0, 0)
    if path is None:
        return f"no video for {ann.vid} under {finder.folder} ({finder.pattern or '{vid}.<ext>'})"
    from grounding_agent.media.video import open_video  # lazy: decord only for pixel grounders

    return open_video(path)


async def _answer(worker: Worker, ann: Annotation, video: Video, top_k: int) -> dict[str, Any]:
    if worker.agent is not None and wants_agent(worker.args, ann.query):
        result = await worker.agent.arun(video, ann.query)
        row = result.to_prediction(ann.qid, ann.vid).to_dict()
        row["pred_relevant_windows"] = row["pred_relevant_windows"][:top_k]
        row["agent"] = True
        return row
    grounding = await worker.grounder.aground(video, ann.query, top_k=top_k)
    return grounding.to_prediction(ann.qid, ann.vid, ann.query).to_dict()


async def ground_one(ann: Annotation, worker: Worker, finder: VideoFinder, top_k: int) -> dict[str, Any]:
    try:
        if worker.grounder.needs_pixels:  # opening a file blocks: keep it off the event loop
            video = await asyncio.to_thread(video_for, ann, worker.grounder, finder)
        else:
            video = video_for(ann, worker.grounder, finder)
        if isinstance(video, str):
            return error_row(ann, "video_missing", video)
        # The grounder samples frames itself through the shared frame cache: a video's queries decode it once.
        t0 = time.perf_counter()
        row = await _answer(worker, ann, video, top_k)
        row["timings_s"] = {**row.get("timings_s", {}), "total": time.perf_counter() - t0}
        row["worker"] = worker.label
        return row
    except GroundingAgentError as exc:
        row = error_row(ann, type(exc).__name__, str(exc))
        row["worker"] = worker.label
        return row


def as_worker(g: Any) -> Worker:
    return g if isinstance(g, Worker) else Worker(g, argparse.Namespace(agent=False), None, g.name)


def dispatch(todo: Sequence[Annotation], n_workers: int) -> list[tuple[Annotation, int]]:
    """(query, worker index) in the order to start them: a video's queries stay on one worker, so its
    server prefills the video's frames once and serves the later queries from its prefix cache (with
    round-robin every server prefilled every video). Videos go largest first to the least-loaded worker;
    one with more than a fair share of the queries is split into fair-share pieces, so no worker idles
    while another works through a long video. The order interleaves the workers, so the queries in
    flight are spread over all of them from the start."""
    if n_workers <= 1:
        return [(a, 0) for a in todo]
    fair = -(-len(todo) // n_workers)
    by_video: dict[str, list[Annotation]] = {}
    for a in todo:
        by_video.setdefault(a.vid, []).append(a)
    pieces = [qs[i : i + fair] for qs in by_video.values() for i in range(0, len(qs), fair)]
    queues: list[list[Annotation]] = [[] for _ in range(n_workers)]
    for piece in sorted(pieces, key=len, reverse=True):  # stable: ties keep the dataset's order
        min(queues, key=len).extend(piece)
    turns = itertools.zip_longest(*queues)
    return [(a, w) for turn in turns for w, a in enumerate(turn) if a is not None]


async def run_queries(
    todo: Sequence[Annotation],
    grounders: Sequence[Any],
    pred_path: Path,
    *,
    top_k: int,
    concurrency: int,
    videos_dir: Path | None = None,
    finder: VideoFinder | None = None,
    progress: tqdm | None = None,
) -> None:
    """Ground every query with at most `concurrency` in flight, appending each answer as one flushed line.

    `grounders`: `Worker`s or bare grounders; each video's queries go to one of them (`dispatch`)."""
    if concurrency < 1:
        raise ConfigError(f"--concurrency must be >= 1, got {concurrency}")
    workers = [as_worker(g) for g in grounders]
    finder = finder or VideoFinder(videos_dir)
    sem = asyncio.Semaphore(concurrency)

    async def one(ann: Annotation, worker: Worker) -> dict[str, Any]:
        async with sem:
            return await ground_one(ann, worker, finder, top_k)

    with open(pred_path, "a", encoding="utf-8") as f:
        tasks = [asyncio.ensure_future(one(a, workers[w])) for a, w in dispatch(todo, len(workers))]
        try:
            for fut in asyncio.as_completed(tasks):
                row = await fut
                f.write(dumps_json(row) + "\n")
                f.flush()
                if progress is not None:
                    progress.update()
        finally:
            for t in tasks:
                t.cancel()
            for w in workers:  # async clients belong to this event loop: close them before it ends
                await w.grounder.aclose()
