"""Recipe: run a grounder (or the agent) over a benchmark, resumably, record every setting, and score it.

    grounding-agent eval run --dataset charades-sta --gt charades_sta_test.txt --videos DIR \
        --backend vllm --server http://127.0.0.1:8000/v1 --server http://127.0.0.1:8001/v1 --out runs/x

Every backend, sampling, prompt, agent and saliency option is the shared spec of `ground`
(`grounding_agent.cli.options`); `--server` repeats (one grounder per server, each video's queries on one).

Writes to --out:
- `run.json`: every option, the package version, the model identity (name or path, config sha256,
  adapter sha256), the prompt name and version, the GT file's sha256 and query count. A resume whose
  settings differ is refused naming the keys; `--force-resume` mixes them anyway and is recorded there.
- `predictions.jsonl`: one line per query, flushed as soon as it is answered (QVHighlights submission
  shape plus raw text, parse failures, timings). A killed run restarts where it stopped.
- `metrics.json` and `report.md` (atomically): the metrics, also on the parsed-only subset, beside the
  counts of parse failures, fallbacks, errors and missing videos, and "N of M queries".
- with `--log-samples`, `samples.jsonl`: per query GT, predictions, IoU of each, raw text, parse status.
- `run.lock`: held (flock) for the whole run, so a second run into the folder is refused.

The report's headline says when its numbers are not a result (a failed run, mostly errors or fallbacks)
or are on a subset; `run.json` records provenance (`eval.provenance`) and the GT policy (`--raw-gt`).

Error policy: a query whose video is missing, or whose grounder raised a `GroundingAgentError`, gets a
line with empty windows and `"error": {"kind", "message"}` and scores as a miss. Missing videos fail the
run (exit 2, listed) unless `--allow-missing`. `--retry-errors` re-runs error lines on the next resume.
Any other exception is a bug: the run stops, and the next run resumes.

This module runs a whole run (`run`, `main`) and writes its report; the steps live beside it: `options`
(arguments, query selection), `videos` (finding files), `settings` (run.json, resume checks), `workers`,
`loop` (dispatch and the async run loop), `files` (the run folder, resuming predictions) and `scoring`.
"""

from __future__ import annotations

import argparse
import asyncio
import sys
import time
from collections import Counter
from collections.abc import Sequence
from contextlib import ExitStack
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from tqdm import tqdm

if __package__ in (None, ""):  # run as a file (python eval/runner.py): make the `eval` package importable
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from eval.files import LOCK, PREDICTIONS, RUN_JSON, SAMPLES, read_done, run_lock
from eval.loop import as_worker, dispatch, run_queries
from eval.options import build_parser, resolve_options, select
from eval.report import load_anchors, render, verdict
from eval.scoring import sample_rows, score, video_counts
from eval.settings import check_settings, settings_of
from eval.videos import VideoFinder
from eval.workers import Worker, build_workers, served_identity
from grounding_agent.benchmarks.datasets import GTPolicy, load_dataset
from grounding_agent.cli.options import MODEL_BACKENDS
from grounding_agent.errors import DatasetError, GroundingAgentError
from grounding_agent.io import check_output_dir, dumps_json, make_output_dir, refuse_inputs
from grounding_agent.io import write_text_atomic as write_atomic

# The recipe's API, as `eval.analyze`, `bench/eval.py` and the tests use it.
__all__ = [
    "PREDICTIONS",
    "RUN_JSON",
    "SAMPLES",
    "RunResult",
    "VideoFinder",
    "build_parser",
    "build_workers",
    "dispatch",
    "main",
    "read_done",
    "resolve_options",
    "run",
    "run_queries",
    "sample_rows",
    "select",
]


def model_label(args: argparse.Namespace, workers: Sequence[Worker] | None, settings: dict[str, Any]) -> str:
    """What answered: the model (and adapter), never just the backend's name."""
    if args.backend not in MODEL_BACKENDS:
        return args.backend
    served = (settings.get("served") or {}).get("model")
    if args.backend == "vllm":
        parent = (settings.get("served") or {}).get("parent")
        base = args.model or parent or served or "vllm"
        return f"{base} + adapter {args.adapter}" if args.adapter else base
    name = args.model if not Path(args.model).is_dir() else Path(args.model).name
    return f"{name} + adapter {Path(args.adapter).name}" if args.adapter else name


def report_info(result: dict[str, Any], args: argparse.Namespace) -> dict[str, Any]:
    st = result["status"]
    info: dict[str, Any] = {
        "queries": f"{result['num_queries']} of {result['dataset_queries']} queries",
        "answers": f"{st['ok']} parsed, {st['parse_failure']} parsed after unreadable samples, "
        f"{st['fallback']} fallbacks (no readable answer: whole video, score 0), {st['error']} errors",
        "parse failures (samples)": result["parse_failures"],
        "errors": result["errors"] or "none",
        "missing videos": _videos_line(result),
        "top_k": args.top_k,
        "backend": args.backend,
    }
    if (no_answer := st["fallback"] + st["error"]) and result.get("verdict") is None:
        info["WARNING (answers)"] = (
            f"{no_answer} of {result['num_queries']} queries ({100 * no_answer / result['num_queries']:.1f}%) "
            "scored without a model answer (fallbacks and errors)"
        )
    if result["subset"]:
        info["WARNING"] = (
            f"subset: {result['num_queries']} of {result['dataset_queries']} queries; published numbers below "
            "are on the full set and not comparable"
        )
    if (tp := result.get("throughput")) is not None:
        info["throughput"] = f"{tp['queries_per_s']:.2f} queries/s over {len(tp['per_worker'])} worker(s)"
    return info


def _videos_line(result: dict[str, Any]) -> str:
    """Missing videos, counted also for model-free baselines (they do not need the files)."""
    v, missing = result["videos"], result["missing_videos"]
    if not v["needed"]:
        if v["absent"] is None:
            return f"not checked ({v['total']} videos; no --videos; the model-free baseline reads only durations)"
        return (
            f"{v['absent']} of {v['total']} absent under --videos "
            "(not needed: the model-free baseline reads only durations)"
        )
    if not missing:
        return f"none (all {v['total']} found)"
    return ", ".join(missing) + f" ({len(missing)} of {v['total']} videos)"


@dataclass
class RunResult:
    out: Path
    result: dict[str, Any]
    settings: dict[str, Any] = field(default_factory=dict)


def _execute(args, todo, workers, finder, n_selected) -> dict[str, Any]:
    bar = tqdm(total=n_selected, initial=n_selected - len(todo), unit="q", disable=args.no_progress)
    t0 = time.perf_counter()
    with bar:
        if getattr(args, "ray", None):  # the same rows, answered on the cluster's actors
            from eval.ray_workers import run_on_ray

            run_on_ray(args, todo, args.out / PREDICTIONS, bar)
            return _throughput(todo, t0)
        asyncio.run(
            run_queries(
                todo, workers, args.out / PREDICTIONS, top_k=args.top_k, concurrency=args.concurrency,
                finder=finder, progress=bar,
            )
        )  # fmt: skip
    return _throughput(todo, t0)


def _throughput(todo, t0: float) -> dict[str, Any]:
    wall_s = time.perf_counter() - t0
    return {"queries": len(todo), "wall_s": wall_s, "queries_per_s": len(todo) / wall_s if wall_s else 0.0}


def _refuse_inputs_in_out(args: argparse.Namespace) -> None:
    """No file the run writes in --out may be one it reads (--gt out/predictions.jsonl): one line, before work."""
    written = (PREDICTIONS, SAMPLES, RUN_JSON, LOCK, "metrics.json", "report.md")
    inputs = [("the --gt file", args.gt), ("the --durations file", args.durations)]
    inputs.append(("the --prior-train file", getattr(args, "prior_train", None)))
    refuse_inputs([("--out", args.out / name) for name in written], inputs)


def run(args: argparse.Namespace, grounders: Sequence[Any] | None = None) -> RunResult:
    """Everything after argument parsing; `grounders` overrides building them from the options (tests).

    Raises:
        OutputError: another `eval run` holds --out (its lock).
        DatasetError: videos were missing (after writing everything) and --allow-missing is off.
    """
    check_output_dir(args.out, "--out")  # a file, a device or an unwritable place: before any work
    policy = GTPolicy(clip_to_duration=not getattr(args, "raw_gt", False))
    dataset = load_dataset(args.dataset, args.gt, args.durations, policy)
    annotations = select(dataset.annotations, args.vids, args.limit)
    args = resolve_options(args)
    _refuse_inputs_in_out(args)
    finder = VideoFinder(args.videos, args.video_pattern)
    settings = settings_of(args, len(dataset), len(annotations), dataset.stats)
    with ExitStack() as held:
        locked = args.out.is_dir()
        if locked:  # held before reading: another run may be writing run.json and predictions.jsonl
            held.enter_context(run_lock(args.out))
        check_settings(args.out, settings, args.force_resume)  # refuse before building any model
        done = read_done(args.out / PREDICTIONS, args.retry_errors)
        todo = [a for a in annotations if a.qid not in done]
        workers = None
        if todo:  # build before touching --out, so a bad grounder option leaves nothing behind
            workers = [as_worker(g) for g in grounders] if grounders is not None else build_workers(args)
            settings["served"] = served_identity(workers) if grounders is None else None
        if not locked:  # a new folder (another run may have made it meanwhile: the lock tells)
            make_output_dir(args.out, "--out")
            held.enter_context(run_lock(args.out))
            todo = [a for a in todo if a.qid not in read_done(args.out / PREDICTIONS)]
        return _run_held(args, settings, annotations, todo, workers, finder, len(dataset))


def _run_held(args, settings, annotations, todo, workers, finder, n_dataset) -> RunResult:
    """The run, with --out locked: answer `todo`, then score and report every selected query."""
    settings = check_settings(args.out, settings, args.force_resume)
    write_atomic(args.out / RUN_JSON, dumps_json(settings, indent=2, default=str) + "\n")
    throughput = _execute(args, todo, workers, finder, len(annotations)) if todo else None
    rows = read_done(args.out / PREDICTIONS)
    label = model_label(args, workers, settings)
    result = {"dataset": args.dataset, "gt": str(args.gt), "model": label, "backend": args.backend,
              "adapter": args.adapter, "top_k": args.top_k}  # fmt: skip
    result |= score(args.dataset, annotations, rows, n_dataset)
    result["videos"] = video_counts(annotations, finder, args.backend in MODEL_BACKENDS, result)
    if throughput is not None:
        per_worker = Counter(rows[a.qid].get("worker", "") for a in todo)
        result["throughput"] = throughput | {"per_worker": dict(per_worker)}
    failed = bool(result["missing_videos"]) and not args.allow_missing
    result["verdict"] = verdict(result, f"{len(result['missing_videos'])} videos missing" if failed else None)
    write_atomic(args.out / "metrics.json", dumps_json(result, indent=2) + "\n")
    parsed = result["parsed_only"]
    write_atomic(
        args.out / "report.md",
        render(args.dataset, result["brief"], label, report_info(result, args), load_anchors(),
               parsed=(parsed["brief"], parsed["num_queries"]), verdict=result["verdict"],
               complete=not result["subset"]),
    )  # fmt: skip
    if args.log_samples:
        samples = sample_rows(annotations, rows, finder)
        write_atomic(args.out / SAMPLES, "".join(dumps_json(s) + "\n" for s in samples))
    if failed:
        vids = result["missing_videos"]
        raise DatasetError(
            f"{len(vids)} videos missing under {args.videos} ({', '.join(vids[:5])}{' ...' if len(vids) > 5 else ''}; "
            f"all in {args.out / 'report.md'}); fix --videos / --video-pattern, or --allow-missing to score them as misses"
        )
    return RunResult(args.out, result, settings)


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        res = run(args)
    except GroundingAgentError as exc:
        if (args.out / "report.md").is_file() and "videos missing" in str(exc):
            print((args.out / "report.md").read_text())
        print(f"error: {exc}", file=sys.stderr)
        return 2
    print((res.out / "report.md").read_text())
    return 0


if __name__ == "__main__":
    sys.exit(main())
