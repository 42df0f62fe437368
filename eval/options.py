"""`eval run`'s arguments: the benchmark and run options beside the shared backend spec of `ground`
(`grounding_agent.cli.options`), the query selection, and the defaults that depend on other options."""

from __future__ import annotations

import argparse
from pathlib import Path

from eval.files import SAMPLES
from eval.videos import VIDEO_EXTENSIONS
from grounding_agent.benchmarks.datasets import DATASETS, Annotation
from grounding_agent.cli import OneLineErrorParser
from grounding_agent.cli._common import positive_int
from grounding_agent.cli.options import add_backend_options, default_max_frames, default_server
from grounding_agent.defaults import COMMANDS
from grounding_agent.errors import ConfigError
from grounding_agent.grounders import GROUNDERS

DEFAULT_TOP_K = {"charades-sta": 5, "qvhighlights": 10, "activitynet-captions": 5, "tacos": 5}


def build_parser() -> argparse.ArgumentParser:
    # The CLI's parser class: a bad option is one `error:` line (exit 2), not 31 lines of usage.
    p = OneLineErrorParser(prog="grounding-agent eval run", description="Run a grounder over a benchmark.")
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
    d.add_argument(
        "--raw-gt", action="store_true", help="do not clip GT ends to the video duration (as eval score)"
    )
    d.add_argument("--limit", type=positive_int, help="only the first N queries (after --vids)")
    d.add_argument("--vids", help="comma-separated video ids to keep")
    add_backend_options(p, multi_server=True)
    p.add_argument("--grounder", dest="backend", choices=sorted(GROUNDERS), help="alias of --backend")
    p.set_defaults(top_k=None)  # per dataset (DEFAULT_TOP_K)
    r = p.add_argument_group("run")
    r.add_argument("--out", required=True, type=Path, help="run folder (created; resumed if it exists)")
    r.add_argument(
        "--concurrency",
        type=positive_int,
        default=COMMANDS.eval_concurrency,
        help="queries in flight at once",
    )
    r.add_argument("--retry-errors", action="store_true", help="re-run queries recorded with an error")
    r.add_argument("--force-resume", action="store_true", help="resume although settings differ (recorded)")
    r.add_argument(
        "--allow-missing", action="store_true", help="score queries whose video is missing as misses"
    )
    r.add_argument("--log-samples", action="store_true", help=f"write {SAMPLES}: one row per query")
    r.add_argument("--no-progress", action="store_true")
    r.add_argument(
        "--ray",
        metavar="ADDRESS",
        help="spread the queries over the Ray cluster at ADDRESS (host:port; eval/ray_workers.py)",
    )
    r.add_argument(
        "--delay-s",
        type=float,
        default=COMMANDS.eval_delay_s,
        help="baselines: simulated per-query latency (tests)",
    )
    return p


def select(annotations: list[Annotation], vids: str | None, limit: int | None) -> list[Annotation]:
    if vids:
        keep = {v.strip() for v in vids.split(",") if v.strip()}
        annotations = [a for a in annotations if a.vid in keep]
    if limit is not None:
        annotations = annotations[: max(limit, 0)]
    if not annotations:
        raise ConfigError("no queries selected; check --vids / --limit against the GT file")
    return annotations


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
