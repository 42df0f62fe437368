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

Error policy: a query whose video is missing, or whose grounder raised a `GroundingAgentError`, gets a
line with empty windows and `"error": {"kind", "message"}` and scores as a miss. Missing videos fail the
run (exit 2, listed) unless `--allow-missing`. `--retry-errors` re-runs error lines on the next resume.
Any other exception is a bug: the run stops, and the next run resumes.
"""

from __future__ import annotations

import argparse
import asyncio
import hashlib
import itertools
import json
import re
import sys
import time
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from tqdm import tqdm

if __package__ in (None, ""):  # run as a file (python eval/runner.py): make `eval.report` importable
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from eval.report import load_anchors, render
from grounding_agent.benchmarks.datasets import DATASETS, Annotation, default_charades_csv, load_dataset
from grounding_agent.benchmarks.metrics import METRICS, brief
from grounding_agent.cli._common import positive_int
from grounding_agent.cli.options import (
    MODEL_BACKENDS,
    add_backend_options,
    build_agent,
    build_grounder,
    default_max_frames,
    default_server,
    wants_agent,
)
from grounding_agent.errors import ConfigError, DatasetError, GroundingAgentError
from grounding_agent.grounders import GROUNDERS
from grounding_agent.io import check_output_dir, dumps_json, make_output_dir
from grounding_agent.io import write_text_atomic as write_atomic
from grounding_agent.types import Prediction, Video
from grounding_agent.utils.temporal import tiou_matrix

VIDEO_EXTENSIONS = (".mp4", ".mkv", ".webm", ".avi", ".mov")
DEFAULT_TOP_K = {"charades-sta": 5, "qvhighlights": 10, "activitynet-captions": 5, "tacos": 5}
PREDICTIONS, SAMPLES, RUN_JSON = "predictions.jsonl", "samples.jsonl", "run.json"
# Options that change speed, paths or reporting, not the answers: recorded in run.json, never compared.
# The GT files are compared by content (sha256), so a moved data folder still resumes.
RUNTIME_OPTIONS = {
    "out", "concurrency", "no_progress", "retry_errors", "force_resume", "allow_missing", "log_samples",
    "server", "timeout", "videos", "delay_s", "gt", "durations",
}  # fmt: skip


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="grounding-agent eval run", description="Run a grounder over a benchmark."
    )
    d = p.add_argument_group("benchmark")
    d.add_argument("--dataset", required=True, choices=sorted(DATASETS))
    d.add_argument("--gt", required=True, type=Path, help="annotation file (see eval/README.md)")
    d.add_argument("--durations", type=Path, help="Charades_v1_<split>.csv (default: beside --gt)")
    d.add_argument("--videos", type=Path, help="video folder (not needed by model-free baselines)")
    d.add_argument(
        "--video-pattern",
        help="a video's file name with {vid} for its id, * and ? allowed, e.g. '*_{vid}.mp4' "
        f"(default: {{vid}} plus one of {' '.join(VIDEO_EXTENSIONS)})",
    )
    d.add_argument("--limit", type=positive_int, help="only the first N queries (after --vids)")
    d.add_argument("--vids", help="comma-separated video ids to keep")
    add_backend_options(p, multi_server=True)
    p.add_argument("--grounder", dest="backend", choices=sorted(GROUNDERS), help="alias of --backend")
    p.set_defaults(top_k=None)  # per dataset (DEFAULT_TOP_K)
    r = p.add_argument_group("run")
    r.add_argument("--out", required=True, type=Path, help="run folder (created; resumed if it exists)")
    r.add_argument("--concurrency", type=positive_int, default=4, help="queries in flight at once")
    r.add_argument("--retry-errors", action="store_true", help="re-run queries recorded with an error")
    r.add_argument("--force-resume", action="store_true", help="resume although settings differ (recorded)")
    r.add_argument(
        "--allow-missing", action="store_true", help="score queries whose video is missing as misses"
    )
    r.add_argument("--log-samples", action="store_true", help=f"write {SAMPLES}: one row per query")
    r.add_argument("--no-progress", action="store_true")
    r.add_argument(
        "--delay-s", type=float, default=0.0, help="baselines: simulated per-query latency (tests)"
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


def _pattern_regex(pattern: str, vid: str) -> re.Pattern[str]:
    literal = [re.escape(part).replace(r"\*", ".*").replace(r"\?", ".") for part in pattern.split("{vid}")]
    return re.compile(re.escape(vid).join(literal))


class VideoFinder:
    """vid -> video file under a folder: `{vid}.<ext>` or a `--video-pattern` such as '*_{vid}.mp4'."""

    def __init__(self, folder: Path | None, pattern: str | None = None):
        if pattern is not None and (pattern.count("{vid}") != 1 or "/" in pattern):
            raise ConfigError(
                f"--video-pattern {pattern!r} must name a file with {{vid}} once, e.g. '*_{{vid}}.mp4'"
            )
        if folder is not None and not folder.is_dir():
            raise ConfigError(f"--videos {folder}: not a folder")
        self.folder, self.pattern = folder, pattern
        self._names: list[str] | None = None

    def find(self, vid: str) -> Path | None:
        """The one file for `vid`, None if there is none.

        Raises:
            ConfigError: several files match (the pattern is too loose).
        """
        if self.folder is None:
            return None
        if self.pattern is None:
            return next((p for ext in VIDEO_EXTENSIONS if (p := self.folder / f"{vid}{ext}").is_file()), None)
        if self._names is None:  # listed once: a pattern is matched against names, not globbed per query
            self._names = sorted(
                p.name for p in self.folder.iterdir() if p.suffix.lower() in VIDEO_EXTENSIONS and p.is_file()
            )
        regex = _pattern_regex(self.pattern, vid)
        hits = [n for n in self._names if vid in n and regex.fullmatch(n)]
        if len(hits) > 1:
            raise ConfigError(
                f"{len(hits)} files match video {vid} ({', '.join(hits[:3])}); make --video-pattern stricter"
            )
        return self.folder / hits[0] if hits else None


def default_prior_train(gt: Path) -> Path:
    name = gt.name.replace("test", "train").replace("val", "train")
    return gt.with_name(name)


def resolve_options(args: argparse.Namespace) -> argparse.Namespace:
    """Fill the defaults that depend on other options (top-k, prior training file, servers)."""
    args.top_k = args.top_k or DEFAULT_TOP_K[args.dataset]
    args.max_frames = args.max_frames or default_max_frames(args.backend)  # recorded as used
    if args.backend == "prior" and not args.prior_train:
        args.prior_train = str(default_prior_train(args.gt))
    if args.backend == "prior" and not Path(args.prior_train).is_file():
        raise ConfigError(
            f"'prior' fits on training annotations: {args.prior_train} not found; pass --prior-train"
        )
    if args.server is None:
        args.server = [default_server()] if args.backend == "vllm" else []
    return args


# --- what a run is: settings and model identity -----------------------------------------------------


def sha256_file(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def _local_sha(folder: str | None, names: Sequence[str]) -> str | None:
    """sha256 of the first of `names` inside a local folder (None for hub ids / served names)."""
    if not folder or not Path(folder).is_dir():
        return None
    return next((sha256_file(p) for n in names if (p := Path(folder) / n).is_file()), None)


ADAPTER_FILES = ("adapter_model.safetensors", "adapter_model.bin")


def model_identity(args: argparse.Namespace) -> dict[str, Any]:
    """Name or path, config.json sha256 and adapter weights sha256 (local folders only)."""
    if args.backend not in MODEL_BACKENDS:
        return {"name": args.backend}
    local = args.model and Path(args.model).is_dir()
    return {
        "name": str(Path(args.model).resolve()) if local else args.model,
        "config_sha256": _local_sha(args.model, ["config.json"]),
        "adapter": str(Path(args.adapter).resolve())
        if args.adapter and Path(args.adapter).is_dir()
        else args.adapter,
        "adapter_sha256": _local_sha(args.adapter, ADAPTER_FILES),
    }


def prompt_identity(args: argparse.Namespace) -> dict[str, Any] | None:
    if args.backend not in MODEL_BACKENDS:
        return None
    from grounding_agent.grounders.qwen_inputs import PROMPTS
    from grounding_agent.utils.prompts import load_prompt

    name = PROMPTS["multi"] if args.prompt == "grounding" and args.top_k > 1 else PROMPTS[args.prompt]
    prompt = load_prompt(name)
    text = json.dumps(prompt.templates, sort_keys=True).encode()
    return {"name": name, "version": prompt.version, "sha256": hashlib.sha256(text).hexdigest()}


def _package_version() -> str:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version("grounding-agent")
    except PackageNotFoundError:
        return "unknown"


def _jsonable(value: Any) -> Any:
    return str(value.resolve()) if isinstance(value, Path) else value


def settings_of(args: argparse.Namespace, n_dataset: int, n_selected: int) -> dict[str, Any]:
    files = {"gt": {"path": str(args.gt.resolve()), "sha256": sha256_file(args.gt), "queries": n_dataset}}
    if args.dataset == "charades-sta" and args.gt.suffix != ".jsonl":
        csv = args.durations or default_charades_csv(args.gt)
        files["durations"] = {"path": str(Path(csv).resolve()), "sha256": sha256_file(Path(csv))}
    return {
        "options": {k: _jsonable(v) for k, v in sorted(vars(args).items())},
        "package_version": _package_version(),
        "model": model_identity(args),
        "prompt": prompt_identity(args),
        "dataset_files": files,
        "selected_queries": n_selected,
    }


def _flat(d: dict[str, Any], prefix: str = "") -> dict[str, Any]:
    out: dict[str, Any] = {}
    for k, v in d.items():
        if isinstance(v, dict):
            out |= _flat(v, f"{prefix}{k}.")
        else:
            out[f"{prefix}{k}"] = v
    return out


def compared(settings: dict[str, Any]) -> dict[str, Any]:
    """The settings a resume must match: all but runtime options, records of forced resumes, served identity."""
    flat = _flat({k: v for k, v in settings.items() if k not in ("forced_resumes", "served")})
    return {
        k: v
        for k, v in flat.items()
        if k.removeprefix("options.") not in RUNTIME_OPTIONS
        and not (k.startswith("dataset_files.") and k.endswith(".path"))
    }


def settings_diff(old: dict[str, Any], new: dict[str, Any]) -> dict[str, tuple[Any, Any]]:
    a, b = compared(old), compared(new)
    diff = {k: (a.get(k), b.get(k)) for k in sorted(a.keys() | b.keys()) if a.get(k) != b.get(k)}
    # A finished run resumed without a grounder has no served identity: compare it only when both have it.
    for k, v in _flat(new.get("served") or {}, "served.").items():
        if k in (olds := _flat(old.get("served") or {}, "served.")) and olds[k] != v:
            diff[k] = (olds[k], v)
    return diff


def check_settings(out: Path, settings: dict[str, Any], force: bool) -> dict[str, Any]:
    """The settings to write: new ones, or the old ones (a matching or forced resume, recorded).

    Raises:
        ConfigError: the run in `out` was made with other settings and `force` is off.
    """
    path = out / RUN_JSON
    if not path.exists():
        return settings
    try:
        old = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise ConfigError(f"{path}: unreadable ({exc}); move the run folder away to restart") from None
    diff = settings_diff(old, settings)
    if diff and not force:
        shown = "; ".join(f"{k}: {a!r} -> {b!r}" for k, (a, b) in list(diff.items())[:8])
        raise ConfigError(
            f"{out} holds a run with other settings ({len(diff)} differ: {shown}); "
            "use a new --out, or --force-resume to mix answers (recorded in run.json)"
        )
    if diff:
        stamp = datetime.now(timezone.utc).isoformat(timespec="seconds")
        forced = {"at": stamp, "changed": {k: list(v) for k, v in diff.items()}}
        old["forced_resumes"] = [*old.get("forced_resumes", []), forced]
    if settings.get("served") and not old.get("served"):
        old["served"] = settings["served"]
    return old


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
        write_atomic(path, "".join(dumps_json(r) + "\n" for r in done.values()))
    return done


# --- running ---------------------------------------------------------------------------------------


@dataclass
class Worker:
    """One grounder (one per server), its agent (None with --no-agent) and its options."""

    grounder: Any
    args: argparse.Namespace
    agent: Any = None
    label: str = ""


def build_workers(args: argparse.Namespace) -> list[Worker]:
    """One worker per --server (vllm), or one; grounders and agents from the shared option spec."""
    per_server = [argparse.Namespace(**{**vars(args), "server": url}) for url in args.server] or [
        argparse.Namespace(**{**vars(args), "server": None})
    ]
    workers = []
    for ns in per_server if args.backend == "vllm" else per_server[:1]:
        grounder = build_grounder(ns)
        if isinstance(getattr(grounder, "concurrency", None), int):  # vllm: its own in-flight cap (read
            grounder.concurrency = max(
                grounder.concurrency, args.concurrency
            )  # lazily) must not undercut ours
        # Baselines ignore the query: the agent only when asked for (--agent); models: per query (auto).
        use_agent = args.agent if args.backend not in MODEL_BACKENDS else args.agent is not False
        agent = build_agent(ns, grounder) if use_agent else None
        workers.append(Worker(grounder, ns, agent, ns.server or args.backend))
    return workers


def served_identity(workers: Sequence[Worker]) -> dict[str, Any] | None:
    """What the vLLM server says it serves under the grounder's name (path = `root`), with hashes."""
    grounder = workers[0].grounder
    cards, name = getattr(grounder, "model_cards", None), getattr(grounder, "model", None)
    if not callable(cards) or not isinstance(name, str):
        return None
    try:
        models = {m["id"]: m for m in cards()}
    except Exception:  # noqa: BLE001 - identity is best effort; the run itself reports server errors
        return {"model": name}
    m = models.get(name) or {}
    root, parent = m.get("root"), m.get("parent")
    out = {"model": name, "root": root, "parent": parent}
    if parent:  # a LoRA: root is the adapter folder, parent the base model's name
        out["adapter_sha256"] = _local_sha(root, ADAPTER_FILES)
        base = models.get(parent)
        out["config_sha256"] = _local_sha((base or {}).get("root"), ["config.json"])
    else:
        out["config_sha256"] = _local_sha(root, ["config.json"])
    return out


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


def _as_worker(g: Any) -> Worker:
    return (
        g
        if isinstance(g, Worker)
        else Worker(g, argparse.Namespace(agent=False), None, getattr(g, "name", ""))
    )


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
    workers = [_as_worker(g) for g in grounders]
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
                if callable(close := getattr(w.grounder, "aclose", None)):
                    await close()


# --- scoring ---------------------------------------------------------------------------------------


def _steps(row: dict[str, Any]) -> list[dict[str, Any]]:
    return [s for s in row.get("steps") or [] if isinstance(s, dict)]


def row_failures(row: dict[str, Any]) -> list[Any]:
    """Unreadable answers of the query (an agent row: of all its sub-event steps)."""
    return list(row.get("parse_failures") or []) + [
        f for s in _steps(row) for f in s.get("parse_failures", [])
    ]


def row_raw_text(row: dict[str, Any]) -> list[str]:
    return list(row.get("raw_text") or []) + [t for s in _steps(row) for t in s.get("raw_text", [])]


def parse_status(row: dict[str, Any]) -> str:
    """error | fallback (no answer could be read: whole video) | parse_failure (some sample unreadable) | ok.

    An agent row is a fallback when some step had no readable sample (every raw answer failed)."""
    if "error" in row:
        return "error"
    step_fell_back = any(
        s.get("raw_text") and len(s.get("parse_failures", [])) >= len(s["raw_text"]) for s in _steps(row)
    )
    if (row.get("grounder") or {}).get("fallback") or step_fell_back:
        return "fallback"
    return "parse_failure" if row_failures(row) else "ok"


def _metrics(dataset: str, annotations: list[Annotation], rows: dict[Any, dict[str, Any]]) -> dict[str, Any]:
    if not annotations:
        return {"num_queries": 0, "brief": {}, "metrics": {}}
    preds = {a.qid: Prediction.from_dict(rows[a.qid]) for a in annotations}
    metrics = METRICS[dataset](annotations, preds)
    return {"num_queries": len(annotations), "brief": brief(metrics, dataset), "metrics": metrics}


def score(
    dataset: str,
    annotations: list[Annotation],
    rows: dict[Any, dict[str, Any]],
    dataset_queries: int | None = None,
) -> dict[str, Any]:
    """Metrics of the selected queries and of their parsed-only subset, with every count beside them."""
    sel = [rows[a.qid] for a in annotations]
    status = Counter(parse_status(r) for r in sel)
    parsed = [a for a, r in zip(annotations, sel) if parse_status(r) in ("ok", "parse_failure")]
    stage_s: dict[str, list[float]] = {}
    for r in sel:
        for k, v in r.get("timings_s", {}).items():
            if isinstance(v, (int, float)):
                stage_s.setdefault(k, []).append(v)
    main = _metrics(dataset, annotations, rows)
    n_all = dataset_queries if dataset_queries is not None else len(annotations)
    return {
        **main,
        "dataset_queries": n_all,
        "subset": len(annotations) != n_all,
        "parsed_only": _metrics(dataset, parsed, rows),
        "status": {k: status.get(k, 0) for k in ("ok", "parse_failure", "fallback", "error")},
        "errors": dict(Counter(r["error"]["kind"] for r in sel if "error" in r)),
        "parse_failures": sum(len(row_failures(r)) for r in sel),
        "fallbacks": status.get("fallback", 0),
        "missing_videos": sorted(
            {r["vid"] for r in sel if r.get("error", {}).get("kind") == "video_missing"}
        ),
        "mean_timings_s": {k: sum(v) / len(v) for k, v in stage_s.items()},
    }


def sample_rows(
    annotations: list[Annotation], rows: dict[Any, dict[str, Any]], finder: VideoFinder | None = None
):
    """Per query: GT, predictions with their IoU, raw text, parse status, timings (`--log-samples`)."""
    out = []
    for a in annotations:
        r = rows[a.qid]
        windows = r.get("pred_relevant_windows", [])
        ious = tiou_matrix([w[:2] for w in windows], a.windows_s).max(axis=1).tolist() if windows else []
        path = finder.find(a.vid) if finder is not None else None
        out.append(
            {
                "qid": a.qid, "query": a.query, "vid": a.vid, "video": str(path) if path else None,
                "duration_s": a.duration_s, "gt_windows": [list(w) for w in a.windows_s],
                "pred_windows": windows, "ious": ious, "raw_text": row_raw_text(r),
                "parse_status": parse_status(r), "parse_failures": row_failures(r),
                "error": r.get("error"), "agent": bool(r.get("agent")), "timings_s": r.get("timings_s", {}),
            }
        )  # fmt: skip
    return out


# --- reporting -------------------------------------------------------------------------------------


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
        "missing videos": ", ".join(result["missing_videos"]) or "none",
        "top_k": args.top_k,
        "backend": args.backend,
    }
    if result["subset"]:
        info["WARNING"] = (
            f"subset: {result['num_queries']} of {result['dataset_queries']} queries; published numbers below "
            "are on the full set and not comparable"
        )
    if (tp := result.get("throughput")) is not None:
        info["throughput"] = f"{tp['queries_per_s']:.2f} queries/s over {len(tp['per_worker'])} worker(s)"
    return info


@dataclass
class RunResult:
    out: Path
    result: dict[str, Any]
    settings: dict[str, Any] = field(default_factory=dict)


def _execute(args, todo, workers, finder, n_selected) -> dict[str, Any]:
    bar = tqdm(total=n_selected, initial=n_selected - len(todo), unit="q", disable=args.no_progress)
    t0 = time.perf_counter()
    with bar:
        asyncio.run(
            run_queries(
                todo, workers, args.out / PREDICTIONS, top_k=args.top_k, concurrency=args.concurrency,
                finder=finder, progress=bar,
            )
        )  # fmt: skip
    wall_s = time.perf_counter() - t0
    return {"queries": len(todo), "wall_s": wall_s, "queries_per_s": len(todo) / wall_s if wall_s else 0.0}


def run(args: argparse.Namespace, grounders: Sequence[Any] | None = None) -> RunResult:
    """Everything after argument parsing; `grounders` overrides building them from the options (tests).

    Raises:
        DatasetError: videos were missing (after writing everything) and --allow-missing is off.
    """
    check_output_dir(args.out, "--out")  # a file, a device or an unwritable place: before any work
    dataset = load_dataset(args.dataset, args.gt, args.durations)
    annotations = select(dataset.annotations, args.vids, args.limit)
    args = resolve_options(args)
    finder = VideoFinder(args.videos, args.video_pattern)
    settings = settings_of(args, len(dataset), len(annotations))
    check_settings(args.out, settings, args.force_resume)  # refuse before building any model
    pred_path = args.out / PREDICTIONS
    done = read_done(pred_path, args.retry_errors)
    todo = [a for a in annotations if a.qid not in done]
    workers = None
    if todo:  # build before touching --out, so a bad grounder option leaves nothing behind
        workers = [_as_worker(g) for g in grounders] if grounders is not None else build_workers(args)
        settings["served"] = served_identity(workers) if grounders is None else None
    make_output_dir(args.out, "--out")
    settings = check_settings(args.out, settings, args.force_resume)
    write_atomic(args.out / RUN_JSON, dumps_json(settings, indent=2, default=str) + "\n")
    throughput = _execute(args, todo, workers, finder, len(annotations)) if todo else None
    rows = read_done(pred_path)
    label = model_label(args, workers, settings)
    result = {"dataset": args.dataset, "gt": str(args.gt), "model": label, "backend": args.backend,
              "adapter": args.adapter, "top_k": args.top_k}  # fmt: skip
    result |= score(args.dataset, annotations, rows, len(dataset))
    if throughput is not None:
        per_worker = Counter(rows[a.qid].get("worker", "") for a in todo)
        result["throughput"] = throughput | {"per_worker": dict(per_worker)}
    write_atomic(args.out / "metrics.json", dumps_json(result, indent=2) + "\n")
    parsed = result["parsed_only"]
    write_atomic(
        args.out / "report.md",
        render(args.dataset, result["brief"], label, report_info(result, args), load_anchors(),
               parsed=(parsed["brief"], parsed["num_queries"])),
    )  # fmt: skip
    if args.log_samples:
        samples = sample_rows(annotations, rows, finder)
        write_atomic(args.out / SAMPLES, "".join(dumps_json(s) + "\n" for s in samples))
    if result["missing_videos"] and not args.allow_missing:
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
