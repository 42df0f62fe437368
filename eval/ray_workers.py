"""`eval run --ray ADDRESS`: the queries spread over a Ray cluster, the answers written here.

One Ray actor a worker: with --server URLs, one actor a server (each builds its grounder against its own
vLLM server, as `workers.build_workers` does for one process); without, one actor a CPU of the cluster.
Queries go to actors as `loop.dispatch` assigns them (a video's queries stay on one actor, so its server's
prefix cache is reused) and each answer is appended to predictions.jsonl here, one flushed line as it
arrives: a killed run resumes like a local one, and the rows are the ones a local run writes (`worker`
names the actor's server or backend; `timings_s` are measured where the query ran).
"""

from __future__ import annotations

import argparse
import asyncio
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from eval.loop import dispatch, ground_one
from eval.videos import VideoFinder
from eval.workers import build_workers
from grounding_agent.benchmarks.datasets import Annotation
from grounding_agent.defaults import RAY
from grounding_agent.errors import ConfigError
from grounding_agent.io import dumps_json


class QueryActor:
    """One worker on a node: its grounder (and agent) built there from the run's options."""

    def __init__(self, args: argparse.Namespace):
        self.worker = build_workers(args)[0]
        self.finder = VideoFinder(args.videos, args.video_pattern)
        self.top_k = args.top_k

    def answer(self, ann: Annotation) -> dict[str, Any]:
        return asyncio.run(ground_one(ann, self.worker, self.finder, self.top_k))


def actor_options(args: argparse.Namespace, n_cpus: int) -> list[argparse.Namespace]:
    """The options of each actor: one a --server (vllm), else one a cluster CPU."""
    if args.backend == "vllm" and args.server:
        return [argparse.Namespace(**{**vars(args), "server": [url]}) for url in args.server]
    return [args] * max(1, n_cpus)


def run_on_ray(args: argparse.Namespace, todo: Sequence[Annotation], pred_path: Path, progress: Any) -> None:
    """Answer `todo` on the cluster at `args.ray`, appending each row to `pred_path` as it comes back."""
    import ray

    try:
        ray.init(address=args.ray, ignore_reinit_error=True, log_to_driver=False, logging_level="ERROR")
    except (ConnectionError, RuntimeError, ValueError) as exc:
        raise ConfigError(
            f"--ray {args.ray}: cannot reach the cluster ({exc}); start it with `ray start`"
        ) from None
    remote = ray.remote(num_cpus=RAY.num_cpus)(QueryActor)
    cpus = int(ray.cluster_resources().get("CPU", 1) // RAY.num_cpus)
    actors = [remote.remote(ns) for ns in actor_options(args, cpus)]
    pending = {actors[w].answer.remote(ann): ann for ann, w in dispatch(todo, len(actors))}
    with pred_path.open("a", encoding="utf-8") as out:
        while pending:
            done, _ = ray.wait(list(pending), num_returns=1)
            pending.pop(done[0])
            out.write(dumps_json(ray.get(done[0])) + "\n")
            out.flush()
            if progress is not None:
                progress.update(1)
    for actor in actors:
        ray.kill(actor)
