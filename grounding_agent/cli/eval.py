"""`grounding-agent eval score|run|analyze`: score a predictions file, run a grounder over a benchmark,
break a run down per query. `score --dataset tvsum|summe` scores per-frame importance (video summaries):
rank correlation with the annotators and keyshot F1; `--human` adds the annotators' own agreement.

`score` uses only library code. `run` and `analyze` execute the recipes `eval.runner` / `eval.analyze`
(the top-level `eval/` folder, installed with the wheel beside the library), imported by module name
at run time as torchtune's `tune run` does, so the library never imports `eval/`.
"""

from __future__ import annotations

import argparse
import importlib
import importlib.util
from pathlib import Path

from grounding_agent.benchmarks.datasets import DATASETS, GTPolicy, load_dataset, load_predictions
from grounding_agent.benchmarks.metrics import METRICS, brief
from grounding_agent.benchmarks.summaries import SUMMARY_DATASETS
from grounding_agent.benchmarks.summary_metrics import human_agreement, random_row, score_summaries
from grounding_agent.benchmarks.summary_predictions import load_summary_predictions
from grounding_agent.cli._common import finite_float, print_json
from grounding_agent.defaults import SUMMARY
from grounding_agent.errors import ConfigError


def add_arguments(p: argparse.ArgumentParser) -> None:
    sub = p.add_subparsers(dest="eval_command", required=True, metavar="{score,run,analyze}")
    s = sub.add_parser("score", help="score a predictions jsonl against ground truth")
    s.add_argument("--dataset", required=True, choices=sorted([*DATASETS, *SUMMARY_DATASETS]))
    s.add_argument(
        "--gt",
        required=True,
        type=Path,
        help="annotation file (charades_sta_test.txt / QVHighlights jsonl / ydata-tvsum50.mat / SumMe GT/)",
    )
    s.add_argument(
        "--pred",
        type=Path,
        help="predictions jsonl (QVHighlights submission shape; tvsum/summe: {vid, frame_scores} per line)",
    )
    s.add_argument(
        "--human",
        action="store_true",
        help="tvsum/summe: also the annotators' own agreement and a random row (then --pred is optional)",
    )
    s.add_argument(
        "--ratio",
        type=budget_ratio,
        help=f"tvsum/summe: keyshot summary budget, a share of the video (default {SUMMARY.ratio})",
    )
    s.add_argument("--durations", type=Path, help="Charades_v1_<split>.csv (default: beside --gt)")
    s.add_argument("--raw-gt", action="store_true", help="do not clip GT ends to the video duration")
    s.add_argument(
        "--allow-missing", action="store_true", help="score GT queries without a prediction as misses"
    )
    s.add_argument(
        "--all", action="store_true", help="every metric (all buckets and thresholds), not just the headline"
    )
    s.add_argument("--json", action="store_true", help="print one JSON object (percent, unrounded)")
    # Everything after `run` / `analyze` goes to the recipe's own parser (`eval run --help` shows it).
    for name, text in (
        ("run", "run a grounder over a benchmark (recipe eval/runner.py)"),
        ("analyze", "IoU histogram, R1 by query/GT/video length and relation words, worst queries of a run"),
    ):
        r = sub.add_parser(name, help=text, add_help=False, prefix_chars="\0")
        r.add_argument("argv", nargs=argparse.REMAINDER)


def budget_ratio(text: str) -> float:
    """A summary budget: a share of the video in (0, 1]."""
    value = finite_float(text)
    if not 0 < value <= 1:
        raise argparse.ArgumentTypeError(f"must be a share of the video in (0, 1], e.g. 0.15, got {text!r}")
    return value


RECIPES = {"run": "eval.runner", "analyze": "eval.analyze"}


def recipe_module(command: str = "run") -> str:
    """The recipe's module name (`eval.runner`), checked importable (source checkout or installed wheel)."""
    name = RECIPES[command]
    try:
        found = importlib.util.find_spec(name) is not None
    except ImportError:  # no `eval` package at all
        found = False
    if not found:
        raise ConfigError(
            f"recipe module {name} not found: reinstall grounding-agent (its wheel ships eval/) "
            "or run from the source checkout"
        )
    return name


def score(args: argparse.Namespace) -> int:
    if args.dataset in SUMMARY_DATASETS:
        return score_summary(args)
    if args.pred is None or args.human or args.ratio is not None:
        wrong = "--pred is required" if args.pred is None else "--human and --ratio are for tvsum/summe"
        raise ConfigError(f"eval score --dataset {args.dataset}: {wrong}; see eval score --help")
    dataset = load_dataset(args.dataset, args.gt, args.durations, GTPolicy(clip_to_duration=not args.raw_gt))
    predictions = load_predictions(args.pred)
    metrics = METRICS[args.dataset](dataset.annotations, predictions, allow_missing=args.allow_missing)
    shown = metrics if args.all else brief(metrics, args.dataset)
    if args.json:
        print_json(shown)
        return 0
    missing = sum(a.qid not in predictions for a in dataset.annotations)
    print(
        f"{args.dataset}: {len(dataset)} queries, {len(predictions)} predictions"
        + (f", {missing} missing" if missing else "")
    )
    width = max(map(len, shown))
    for name, value in shown.items():
        print(f"  {name:<{width}}  {value:6.2f}")
    return 0


def score_summary(args: argparse.Namespace) -> int:
    """TVSum / SumMe: every row is computed before anything is printed (a bad input prints nothing)."""
    if args.pred is None and not args.human:
        raise ConfigError(
            f"eval score --dataset {args.dataset}: pass --pred (a predictions jsonl) or --human"
        )
    ratio = SUMMARY.ratio if args.ratio is None else args.ratio
    annotations = SUMMARY_DATASETS[args.dataset](args.gt)
    rows: dict[str, dict[str, float]] = {}
    if args.pred is not None:
        predictions = load_summary_predictions(args.pred, annotations)
        rows["prediction"] = score_summaries(annotations, predictions, ratio, args.allow_missing)
    if args.human:
        rows["human"] = human_agreement(annotations, ratio)
        rows["random"] = random_row(annotations, ratio)
    if args.json:
        print_json(rows if args.human else rows["prediction"])
        return 0
    predicted = f", {len(predictions)} predictions" if args.pred is not None else ""
    print(f"{args.dataset}: {len(annotations)} videos{predicted}, budget {100 * ratio:g} % of each video")
    print(f"  {'':<10}  {'kendall_tau':>11}  {'spearman_rho':>12}  {'f1_avg':>6}  {'f1_max':>6}")
    for name, m in rows.items():
        tau, rho = (round(m[k], 3) + 0.0 for k in ("kendall_tau", "spearman_rho"))  # no "-0.000"
        print(f"  {name:<10}  {tau:11.3f}  {rho:12.3f}  {m['f1_avg']:6.2f}  {m['f1_max']:6.2f}")
    return 0


def run(args: argparse.Namespace) -> int:
    if args.eval_command == "score":
        return score(args)
    # By module name, at run time: the library itself never imports the recipes.
    recipe = importlib.import_module(recipe_module(args.eval_command))
    try:
        return recipe.main(args.argv)
    except SystemExit as exc:  # the recipe's argparse: --help, or a usage error (exit 2)
        return exc.code if isinstance(exc.code, int) else (0 if exc.code is None else 2)
