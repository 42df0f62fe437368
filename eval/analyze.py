"""Recipe: break an eval run down per query.

    grounding-agent eval analyze runs/x [--worst 10] [--json]

Reads `samples.jsonl` of the run (written by `eval run --log-samples`), or rebuilds the same rows from
`run.json` + `predictions.jsonl` + the GT file. Prints the top-1 IoU histogram, R1@0.5 and mIoU by
query length, GT length (share of the video), video length and relation words, and the worst k queries
with their raw model text.
"""

from __future__ import annotations

import argparse
import json
import math
import re
import sys
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

if __package__ in (None, ""):  # run as a file: make `eval.runner` importable
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from eval import runner
from grounding_agent.benchmarks.datasets import GTPolicy, load_dataset
from grounding_agent.benchmarks.reading import loads_json, read_text
from grounding_agent.defaults import COMMANDS
from grounding_agent.errors import DatasetError, GroundingAgentError
from grounding_agent.io import dumps_json

R1_IOU = 0.5
# Words that make a query compositional or temporal: where grounders (and the agent) differ most.
RELATION_WORDS = ("then", "after", "before", "while", "again", "first", "second", "until", "during", "and")
# (label, lo, hi): lo <= value < hi.
QUERY_WORDS_BUCKETS = (
    ("1-5 words", 1, 6),
    ("6-8 words", 6, 9),
    ("9-12 words", 9, 13),
    ("13+ words", 13, 1e9),
)
GT_SHARE_BUCKETS = (
    ("GT < 10% of video", 0.0, 0.1),
    ("GT 10-30% of video", 0.1, 0.3),
    ("GT 30-60% of video", 0.3, 0.6),
    ("GT >= 60% of video", 0.6, 1e9),
)
VIDEO_S_BUCKETS = (("video < 30 s", 0.0, 30.0), ("video 30-60 s", 30.0, 60.0), ("video 60-180 s", 60.0, 180.0),
                   ("video >= 180 s", 180.0, 1e12))  # fmt: skip


# A samples row's keys and the types `breakdown` reads from them.
SAMPLE_KEYS = {"qid": (int, str), "query": str, "vid": str, "duration_s": (int, float), "gt_windows": list,
               "pred_windows": list, "ious": list, "raw_text": list, "parse_status": str}  # fmt: skip


def _sample(line: str, where: str) -> dict[str, Any]:
    try:
        row = loads_json(line, where)
    except json.JSONDecodeError as exc:
        raise DatasetError(
            f"{where}: not JSON ({exc.msg}); rerun `eval run --log-samples` to rewrite it"
        ) from None
    bad = [k for k, t in SAMPLE_KEYS.items() if not isinstance(row, dict) or not isinstance(row.get(k), t)]
    if not bad:
        bad = [k for k, ok in _values_ok(row).items() if not ok]
    if bad:
        raise DatasetError(
            f"{where}: not a samples row ({', '.join(bad)} missing or of the wrong kind); "
            "rerun `eval run --log-samples` to rewrite it"
        )
    return row


def _num(x: Any) -> bool:
    return isinstance(x, (int, float)) and not isinstance(x, bool) and math.isfinite(x)


def _values_ok(row: dict[str, Any]) -> dict[str, bool]:
    """What `breakdown` computes with: numbers, [start, end] windows, a positive duration, text."""
    return {
        "duration_s": _num(row["duration_s"]) and row["duration_s"] > 0,
        "ious": all(_num(x) for x in row["ious"]),
        "gt_windows": all(
            isinstance(w, list) and len(w) == 2 and all(map(_num, w)) for w in row["gt_windows"]
        ),
        "pred_windows": all(
            isinstance(w, list) and len(w) >= 2 and all(map(_num, w)) for w in row["pred_windows"]
        ),
        "raw_text": all(isinstance(t, str) for t in row["raw_text"]),
    }


def read_samples(path: Path) -> list[dict[str, Any]]:
    """samples.jsonl rows. A torn last line (a run killed while writing) is skipped with a warning on
    stderr; a broken line before it is an error naming the line. The file is never changed."""
    text = read_text(path, "samples file")
    lines = text.split("\n")
    torn = lines[-1].strip() != ""  # no newline after the last line: cut off mid-write
    if torn:
        print(f"warning: {path}:{len(lines)}: last line cut off (a killed run?); skipped", file=sys.stderr)
        lines = lines[:-1]
    return [_sample(line, f"{path}:{i}") for i, line in enumerate(lines, start=1) if line.strip()]


def _run_options(settings_path: Path) -> dict[str, Any]:
    try:
        opts = loads_json(read_text(settings_path, runner.RUN_JSON), str(settings_path), None)["options"]
    except (json.JSONDecodeError, KeyError, TypeError):
        opts = None
    ok = isinstance(opts, dict) and all(isinstance(opts.get(k), str) for k in ("dataset", "gt"))
    if ok and not (
        isinstance(opts.get("vids"), (str, type(None))) and type(opts.get("limit")) in (int, type(None))
    ):
        ok = False
    if not ok:
        raise DatasetError(f"{settings_path}: not the run.json of an `eval run`; pass its --out folder")
    return opts


def load_samples(run_dir: Path) -> list[dict[str, Any]]:
    """The run's per-query rows (samples.jsonl, or rebuilt from run.json + predictions.jsonl)."""
    path = run_dir / runner.SAMPLES
    if path.is_file():
        return read_samples(path)
    settings_path = run_dir / runner.RUN_JSON
    if not settings_path.is_file():
        raise DatasetError(f"{run_dir}: no {runner.RUN_JSON}; pass the --out folder of an `eval run`")
    opts = _run_options(settings_path)
    durations = Path(opts["durations"]) if opts.get("durations") else None
    policy = GTPolicy(clip_to_duration=not opts.get("raw_gt", False))
    dataset = load_dataset(opts["dataset"], Path(opts["gt"]), durations, policy)
    annotations = runner.select(dataset.annotations, opts.get("vids"), opts.get("limit"))
    rows = runner.read_done(run_dir / runner.PREDICTIONS, repair=False)  # a reader: never cut the file
    answered = [a for a in annotations if a.qid in rows]
    if not answered:
        raise DatasetError(f"{run_dir}: no answered queries in {runner.PREDICTIONS}")
    return runner.sample_rows(answered, rows)


def top1(s: dict[str, Any]) -> float:
    return s["ious"][0] if s["ious"] else 0.0


def _stats(samples: Sequence[dict[str, Any]]) -> dict[str, float]:
    n = len(samples)
    return {
        "n": n,
        f"R1@{R1_IOU}": 100.0 * sum(top1(s) >= R1_IOU for s in samples) / n if n else 0.0,
        "mIoU": 100.0 * sum(top1(s) for s in samples) / n if n else 0.0,
    }


def _by(samples, key: Callable[[dict[str, Any]], float], buckets) -> dict[str, dict[str, float]]:
    out = {}
    for label, lo, hi in buckets:
        part = [s for s in samples if lo <= key(s) < hi]
        if part:
            out[label] = _stats(part)
    return out


def _gt_share(s: dict[str, Any]) -> float:
    return sum(e - b for b, e in s["gt_windows"]) / s["duration_s"]


def breakdown(samples: Sequence[dict[str, Any]], worst: int = 10) -> dict[str, Any]:
    """Every table `analyze` prints, as data."""
    hist = [0] * 10
    for s in samples:
        hist[min(int(top1(s) * 10), 9)] += 1
    words = {}
    for w in RELATION_WORDS:
        has = [s for s in samples if re.search(rf"\b{w}\b", s["query"].lower())]
        if has:
            words[w] = _stats(has)
    ranked = sorted(samples, key=lambda s: (top1(s), str(s["qid"])))[:worst]
    return {
        "overall": _stats(samples),
        "parse_status": {
            k: sum(s["parse_status"] == k for s in samples)
            for k in ("ok", "parse_failure", "fallback", "error")
        },
        "iou_histogram": {f"{i / 10:.1f}-{(i + 1) / 10:.1f}": c for i, c in enumerate(hist)},
        "by_query_words": _by(samples, lambda s: len(s["query"].split()), QUERY_WORDS_BUCKETS),
        "by_gt_share": _by(samples, _gt_share, GT_SHARE_BUCKETS),
        "by_video_s": _by(samples, lambda s: s["duration_s"], VIDEO_S_BUCKETS),
        "by_relation_word": words,
        "worst": [
            {
                k: s[k]
                for k in ("qid", "vid", "query", "gt_windows", "pred_windows", "parse_status", "raw_text")
            }
            | {"iou": top1(s)}
            for s in ranked
        ],
    }


def _table(title: str, rows: dict[str, dict[str, float]]) -> list[str]:
    lines = [f"\n{title}", f"  {'':<28} {'n':>6} {'R1@0.5':>8} {'mIoU':>7}"]
    if not rows:
        lines.append("  (none)")
    for name, st in rows.items():
        lines.append(f"  {name:<28} {st['n']:>6} {st[f'R1@{R1_IOU}']:>8.2f} {st['mIoU']:>7.2f}")
    return lines


def render_text(b: dict[str, Any]) -> str:
    o = b["overall"]
    lines = [f"{o['n']} queries: R1@0.5 {o[f'R1@{R1_IOU}']:.2f}, mIoU {o['mIoU']:.2f}; answers: "
             + ", ".join(f"{v} {k}" for k, v in b["parse_status"].items())]  # fmt: skip
    lines.append("\ntop-1 IoU histogram")
    peak = max(b["iou_histogram"].values()) or 1
    for name, c in b["iou_histogram"].items():
        lines.append(f"  {name}  {c:>6}  {'#' * round(40 * c / peak)}")
    lines += _table("by query length", b["by_query_words"])
    lines += _table("by GT length", b["by_gt_share"])
    lines += _table("by video length", b["by_video_s"])
    lines += _table("queries with a relation word", b["by_relation_word"])
    lines.append(f"\nworst {len(b['worst'])} (lowest top-1 IoU)")
    for w in b["worst"]:
        pred = w["pred_windows"][0][:2] if w["pred_windows"] else None
        raw = " | ".join(w["raw_text"])[:160].replace("\n", " ")
        lines.append(f"  qid {w['qid']} {w['vid']} IoU {w['iou']:.2f} [{w['parse_status']}] {w['query']!r}")
        lines.append(f"      GT {w['gt_windows']} pred {pred} raw: {raw!r}")
    return "\n".join(lines)


def main(argv: Sequence[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="grounding-agent eval analyze", description=__doc__.splitlines()[0])
    p.add_argument("run", type=Path, help="the --out folder of an `eval run`")
    p.add_argument(
        "--worst",
        type=int,
        default=COMMANDS.worst,
        help=f"how many of the worst queries to show (default {COMMANDS.worst})",
    )
    p.add_argument("--json", action="store_true", help="print the breakdown as one JSON object")
    args = p.parse_args(argv)
    try:
        b = breakdown(load_samples(args.run), max(args.worst, 0))
    except GroundingAgentError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    print(dumps_json(b, indent=2) if args.json else render_text(b))
    return 0


if __name__ == "__main__":
    sys.exit(main())
