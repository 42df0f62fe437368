"""`grounding-agent eval score|run`: score a predictions file, or run a grounder over a benchmark.

`score` uses only library code. `run` executes the recipe eval/runner.py from the source checkout
(as torchtune's `tune run` does), so the library never imports `eval/`.
"""

from __future__ import annotations

import argparse
import runpy
import sys
from pathlib import Path

import grounding_agent
from grounding_agent.cli._common import print_json
from grounding_agent.datasets import DATASETS, GTPolicy, load_dataset, load_predictions
from grounding_agent.errors import ConfigError
from grounding_agent.metrics import METRICS, brief


def add_arguments(p: argparse.ArgumentParser) -> None:
    sub = p.add_subparsers(dest="eval_command", required=True, metavar="{score,run}")
    s = sub.add_parser("score", help="score a predictions jsonl against ground truth")
    s.add_argument("--dataset", required=True, choices=sorted(DATASETS))
    s.add_argument(
        "--gt", required=True, type=Path, help="annotation file (charades_sta_test.txt / QVHighlights jsonl)"
    )
    s.add_argument(
        "--pred", required=True, type=Path, help="predictions jsonl (QVHighlights submission shape)"
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
    # Everything after `run` goes to the recipe's own parser (`eval run --help` shows it).
    r = sub.add_parser(
        "run",
        help="run a grounder over a benchmark (recipe eval/runner.py)",
        add_help=False,
        prefix_chars="\0",
    )
    r.add_argument("argv", nargs=argparse.REMAINDER)


def recipe_path(name: str = "runner.py") -> Path:
    """eval/<name> in the source checkout this package was imported from."""
    path = Path(grounding_agent.__file__).resolve().parents[1] / "eval" / name
    if not path.is_file():
        raise ConfigError(
            f"recipe {path} not found: recipes ship with the source checkout (git clone the repo)"
        )
    return path


def score(args: argparse.Namespace) -> int:
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


def run(args: argparse.Namespace) -> int:
    if args.eval_command == "score":
        return score(args)
    path = recipe_path()
    saved_argv, sys.argv = sys.argv, ["grounding-agent eval run", *args.argv]
    try:
        runpy.run_path(str(path), run_name="__main__")
    except SystemExit as exc:  # the recipe ends with sys.exit(main())
        return exc.code if isinstance(exc.code, int) else (0 if exc.code is None else 1)
    finally:
        sys.argv = saved_argv
    return 0
