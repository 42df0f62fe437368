"""Recipe: run a grounder over a benchmark, resumably, and score it.

    grounding-agent eval run --dataset charades-sta --gt charades_sta_test.txt --videos DIR \
        --grounder vllm --server http://127.0.0.1:8000/v1 --server http://127.0.0.1:8001/v1 --out runs/x

Writes to --out:
- `predictions.jsonl`: one line per query, flushed as soon as it is answered (QVHighlights submission
  shape plus raw text, parse failures and timings). A killed run restarts where it stopped: qids already
  there are skipped and a torn last line is cut off.
- `run.json`: the settings; a resume with different settings is refused.
- `metrics.json` (written atomically) and `report.md` (our numbers beside eval/anchors.yaml).

Error policy: a query whose video is missing under --videos, or whose grounder raised a
`GroundingAgentError` (server down after retries, undecodable video), gets a line with empty windows and
`"error": {"kind", "message"}`. It counts as a miss in the metrics and per kind under `errors` in
metrics.json; `--retry-errors` re-runs those queries on the next resume. Any other exception is a bug:
the run stops, and the next run resumes.
"""

from __future__ import annotations

import argparse
import asyncio
import itertools
import json
import sys
import time
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from tqdm import tqdm

if __package__ in (None, ""):  # run as a file (runpy / python eval/runner.py): make `eval.report` importable
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from eval.report import load_anchors, render  # noqa: E402
from grounding_agent.datasets import DATASETS, Annotation, load_dataset  # noqa: E402
from grounding_agent.errors import ConfigError, DatasetError, GroundingAgentError  # noqa: E402
from grounding_agent.grounders.baselines import BASELINES  # noqa: E402
from grounding_agent.io import write_text_atomic as write_atomic  # noqa: E402
from grounding_agent.metrics import METRICS, brief  # noqa: E402
from grounding_agent.types import Prediction, Video  # noqa: E402

VIDEO_EXTENSIONS = (".mp4", ".mkv", ".webm", ".avi", ".mov")
DEFAULT_TOP_K = {"charades-sta": 5, "qvhighlights": 10}
PREDICTIONS = "predictions.jsonl"


def grounder_registry() -> dict[str, Any]:
    """name -> factory: the library's GROUNDERS (when present) plus the model-free baselines."""
    try:
        from grounding_agent.grounders import GROUNDERS
    except ImportError:
        GROUNDERS = {}
    return {**BASELINES, **GROUNDERS}


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="grounding-agent eval run", description="Run a grounder over a benchmark."
    )
    p.add_argument("--dataset", required=True, choices=sorted(DATASETS))
    p.add_argument(
        "--gt", required=True, type=Path, help="annotation file (charades_sta_test.txt / QVHighlights jsonl)"
    )
    p.add_argument("--durations", type=Path, help="Charades_v1_<split>.csv (default: beside --gt)")
    p.add_argument("--videos", type=Path, help="folder with <vid>.mp4 (not needed by model-free baselines)")
    p.add_argument("--grounder", required=True, choices=sorted(grounder_registry()))
    p.add_argument(
        "--server", action="append", default=[], metavar="URL", help="vLLM base URL; repeat to round-robin"
    )
    p.add_argument("--model", help="served model or LoRA adapter name (vLLM grounders)")
    p.add_argument("--out", required=True, type=Path, help="run folder (created; resumed if it exists)")
    p.add_argument("--concurrency", type=int, default=4, help="queries in flight at once")
    p.add_argument("--top-k", type=int, help="windows per query (default 5 Charades-STA, 10 QVHighlights)")
    p.add_argument("--limit", type=int, help="only the first N queries (after --vids)")
    p.add_argument("--vids", help="comma-separated video ids to keep")
    p.add_argument("--retry-errors", action="store_true", help="re-run queries recorded with an error")
    p.add_argument("--no-progress", action="store_true")
    base = p.add_argument_group("model-free baselines")
    base.add_argument(
        "--prior-train", type=Path, help="training annotations for 'prior' (default: *train* beside --gt)"
    )
    base.add_argument("--seed", type=int, default=0, help="seed of 'random'")
    base.add_argument(
        "--delay-s", type=float, default=0.0, help="simulated per-query latency (resume/throughput tests)"
    )
    return p


# --- inputs ----------------------------------------------------------------------------------------


def select(annotations: list[Annotation], vids: str | None, limit: int | None) -> list[Annotation]:
    if vids:
        keep = {v.strip() for v in vids.split(",") if v.strip()}
        annotations = [a for a in annotations if a.vid in keep]
    if limit is not None:
        annotations = annotations[: max(limit, 0)]
    if not annotations:
        raise ConfigError("no queries selected; check --vids / --limit against the GT file")
    return annotations


def find_video(videos_dir: Path | None, vid: str) -> Path | None:
    if videos_dir is None:
        return None
    for ext in VIDEO_EXTENSIONS:
        path = videos_dir / f"{vid}{ext}"
        if path.is_file():
            return path
    return None


def default_prior_train(gt: Path) -> Path:
    name = gt.name.replace("test", "train").replace("val", "train")
    return gt.with_name(name)


def build_grounders(args: argparse.Namespace) -> list[Any]:
    """One grounder per --server (round-robin), or one when no server applies."""
    factory = grounder_registry()[args.grounder]
    if args.grounder in BASELINES:
        opts: dict[str, Any] = {"delay_s": args.delay_s}
        if args.grounder == "prior":
            train_gt = args.prior_train or default_prior_train(args.gt)
            if not train_gt.is_file():
                raise ConfigError(
                    f"'prior' fits on training annotations: {train_gt} not found; pass --prior-train"
                )
            opts |= {"train_gt": train_gt, "dataset": args.dataset}
        if args.grounder == "random":
            opts["seed"] = args.seed
        return [factory(**opts)]
    model_opts: dict[str, Any] = {"model": args.model} if args.model else {}
    if args.grounder == "vllm":
        if not args.server:
            raise ConfigError("--grounder vllm needs --server URL (start one with `grounding-agent serve`)")
        model_opts["concurrency"] = args.concurrency  # its own in-flight cap must not undercut the runner's
    if args.grounder == "hf" and not args.model:
        raise ConfigError("--grounder hf needs --model (a hub id or a local model folder)")
    if not args.server:
        return [factory(**model_opts)]
    return [factory(base_url=url, **model_opts) for url in args.server]


# --- the predictions file --------------------------------------------------------------------------


def read_done(path: Path, retry_errors: bool = False) -> dict[Any, dict[str, Any]]:
    """qid -> line already written. Cuts a torn last line; `retry_errors` drops error lines from the file.

    Raises:
        DatasetError: a broken line that is not the last one (the file was edited, not interrupted).
    """
    if not path.exists():
        return {}
    data = path.read_bytes()
    end = data.rfind(b"\n") + 1
    if end < len(data):  # killed mid-write: the tail after the last newline is a partial line
        with open(path, "r+b") as f:
            f.truncate(end)
    done: dict[Any, dict[str, Any]] = {}
    for lineno, line in enumerate(data[:end].splitlines(), start=1):
        try:
            row = json.loads(line)
            done[row["qid"]] = row
        except (json.JSONDecodeError, KeyError, TypeError):
            raise DatasetError(
                f"{path}:{lineno}: broken line inside the file; move the file away to restart"
            ) from None
    if retry_errors and any("error" in r for r in done.values()):
        done = {q: r for q, r in done.items() if "error" not in r}
        write_atomic(path, "".join(json.dumps(r, ensure_ascii=False) + "\n" for r in done.values()))
    return done


def check_settings(out: Path, settings: dict[str, Any]) -> None:
    """Record the run's settings, or refuse to resume a run made with different ones."""
    path = out / "run.json"
    if path.exists():
        old = json.loads(path.read_text())
        diff = {k: (old.get(k), v) for k, v in settings.items() if old.get(k) != v}
        if diff:
            raise ConfigError(f"{out} holds a run with other settings {diff}; use a new --out")
    else:
        write_atomic(path, json.dumps(settings, indent=2) + "\n")


# --- running ---------------------------------------------------------------------------------------


def error_row(ann: Annotation, kind: str, message: str) -> dict[str, Any]:
    row = Prediction(ann.qid, ann.vid, ann.query, []).to_dict()
    row["error"] = {"kind": kind, "message": message}
    return row


def video_for(ann: Annotation, grounder: Any, videos_dir: Path | None) -> Video | str:
    """The Video to ground in, or an error message when its file is needed and missing."""
    path = find_video(videos_dir, ann.vid)
    if not grounder.needs_pixels:  # model-free: the annotation's duration is all it reads
        return Video(path or Path(f"{ann.vid}.mp4"), ann.duration_s, 0.0, 0, 0, 0)
    if path is None:
        return f"no video {ann.vid}.* under {videos_dir}"
    from grounding_agent.video import open_video  # lazy: decord only for pixel grounders

    return open_video(path)


async def ground_one(ann: Annotation, grounder: Any, videos_dir: Path | None, top_k: int) -> dict[str, Any]:
    try:
        if grounder.needs_pixels:  # opening a file blocks: keep it off the event loop
            video = await asyncio.to_thread(video_for, ann, grounder, videos_dir)
        else:
            video = video_for(ann, grounder, videos_dir)
        if isinstance(video, str):
            return error_row(ann, "video_missing", video)
        # The grounder samples frames itself through the shared frame cache: a video's queries decode it once.
        t0 = time.perf_counter()
        grounding = await grounder.aground(video, ann.query, top_k=top_k)
        row = grounding.to_prediction(ann.qid, ann.vid, ann.query).to_dict()
        row["timings_s"] = {**row.get("timings_s", {}), "total": time.perf_counter() - t0}
        return row
    except GroundingAgentError as exc:
        return error_row(ann, type(exc).__name__, str(exc))


async def run_queries(
    todo: Sequence[Annotation],
    grounders: Sequence[Any],
    pred_path: Path,
    *,
    top_k: int,
    concurrency: int,
    videos_dir: Path | None = None,
    progress: tqdm | None = None,
) -> None:
    """Ground every query with at most `concurrency` in flight, appending each answer as one flushed line."""
    if concurrency < 1:
        raise ConfigError(f"--concurrency must be >= 1, got {concurrency}")
    sem = asyncio.Semaphore(concurrency)
    servers = itertools.cycle(grounders)

    async def one(ann: Annotation) -> dict[str, Any]:
        async with sem:
            return await ground_one(ann, next(servers), videos_dir, top_k)

    with open(pred_path, "a", encoding="utf-8") as f:
        tasks = [asyncio.ensure_future(one(a)) for a in todo]
        try:
            for fut in asyncio.as_completed(tasks):
                row = await fut
                f.write(json.dumps(row, ensure_ascii=False) + "\n")
                f.flush()
                if progress is not None:
                    progress.update()
        finally:
            for t in tasks:
                t.cancel()
            for g in grounders:  # async clients belong to this event loop: close them before it ends
                if callable(close := getattr(g, "aclose", None)):
                    await close()


def score(dataset: str, annotations: list[Annotation], rows: dict[Any, dict[str, Any]]) -> dict[str, Any]:
    """Metrics of the selected queries plus counts of errors and parse failures."""
    preds = {a.qid: Prediction.from_dict(rows[a.qid]) for a in annotations}
    metrics = METRICS[dataset](annotations, preds)
    errors = Counter(r["error"]["kind"] for q, r in rows.items() if "error" in r and q in preds)
    stage_s: dict[str, list[float]] = {}
    for q in preds:
        for k, v in rows[q].get("timings_s", {}).items():
            stage_s.setdefault(k, []).append(v)
    return {
        "brief": brief(metrics, dataset),
        "metrics": metrics,
        "num_queries": len(annotations),
        "errors": dict(errors),
        "parse_failures": sum(len(rows[a.qid].get("parse_failures", [])) for a in annotations),
        "mean_timings_s": {k: sum(v) / len(v) for k, v in stage_s.items()},
    }


@dataclass
class RunResult:
    out: Path
    result: dict[str, Any]


def run(args: argparse.Namespace, grounders: Sequence[Any] | None = None) -> RunResult:
    """Everything after argument parsing; `grounders` overrides building them from the registry (tests)."""
    dataset = load_dataset(args.dataset, args.gt, args.durations)
    annotations = select(dataset.annotations, args.vids, args.limit)
    top_k = args.top_k or DEFAULT_TOP_K[args.dataset]
    settings = {
        "dataset": args.dataset,
        "gt": str(args.gt.resolve()),
        "grounder": args.grounder,
        "model": args.model,
        "top_k": top_k,
    }
    pred_path = args.out / PREDICTIONS
    done = read_done(pred_path, args.retry_errors)
    todo = [a for a in annotations if a.qid not in done]
    if todo:  # build before touching --out, so a bad grounder option leaves nothing behind
        grounders = list(grounders) if grounders is not None else build_grounders(args)
    args.out.mkdir(parents=True, exist_ok=True)
    check_settings(args.out, settings)
    if todo:
        bar = tqdm(
            total=len(annotations), initial=len(annotations) - len(todo), unit="q", disable=args.no_progress
        )
        with bar:
            asyncio.run(
                run_queries(
                    todo,
                    grounders,
                    pred_path,
                    top_k=top_k,
                    concurrency=args.concurrency,
                    videos_dir=args.videos,
                    progress=bar,
                )
            )
    rows = read_done(pred_path)
    result = {"dataset": args.dataset, "gt": str(args.gt), "grounder": args.grounder, "top_k": top_k}
    result |= score(args.dataset, annotations, rows)
    write_atomic(args.out / "metrics.json", json.dumps(result, indent=2) + "\n")
    info = {"queries": result["num_queries"], "errors": result["errors"] or "none", "top_k": top_k}
    write_atomic(
        args.out / "report.md", render(args.dataset, result["brief"], args.grounder, info, load_anchors())
    )
    return RunResult(args.out, result)


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        res = run(args)
    except GroundingAgentError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    print((res.out / "report.md").read_text())
    return 0


if __name__ == "__main__":
    sys.exit(main())
