"""Markdown report: our numbers beside the published anchors (eval/anchors.yaml), each with its source."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

import yaml

from grounding_agent.defaults import EVAL
from grounding_agent.errors import ConfigError

ANCHORS_PATH = Path(__file__).with_name("anchors.yaml")

# Columns of each dataset's table, in order.
COLUMNS = {
    "charades-sta": ["R1@0.3", "R1@0.5", "R1@0.7", "R5@0.5", "R5@0.7", "mIoU"],
    "activitynet-captions": ["R1@0.3", "R1@0.5", "R1@0.7", "R5@0.5", "R5@0.7", "mIoU"],
    "tacos": ["R1@0.1", "R1@0.3", "R1@0.5", "R5@0.3", "R5@0.5", "mIoU"],
    "qvhighlights": [
        "MR-full-R1@0.5",
        "MR-full-R1@0.7",
        "MR-full-mAP",
        "MR-full-mAP@0.5",
        "MR-full-mAP@0.75",
        "HL-min-VeryGood-mAP",
        "HL-min-VeryGood-Hit1",
    ],
}


def load_anchors(path: Path = ANCHORS_PATH) -> dict[str, list[dict[str, Any]]]:
    """dataset -> rows {system, setting, source, metrics}."""
    try:
        data = yaml.safe_load(Path(path).read_text(encoding="utf-8"))
    except (OSError, yaml.YAMLError) as exc:
        raise ConfigError(f"{path}: cannot read the anchors file ({exc})") from None
    return data or {}


def verdict(result: Mapping[str, Any], failure: str | None = None) -> str | None:
    """'NOT A RESULT: ...' when the metrics do not measure the model: the run failed (`failure`), or
    errors and fallbacks (no readable answer: the whole video) make up `EVAL.not_a_result_share` of the
    queries or more; None for a result."""
    n, st = result["num_queries"], result["status"]
    errors, fallbacks = st["error"], st["fallback"]
    kinds = ", ".join(f"{k} {v}" for k, v in sorted(result.get("errors", {}).items()))
    failed = f"{errors} of {n} queries failed" + (f" ({kinds})" if kinds else "")
    if failure:
        return f"NOT A RESULT: the run failed ({failure}); {failed}"
    if not n:
        return "NOT A RESULT: no queries were scored"
    if errors and errors / n >= EVAL.not_a_result_share:
        return f"NOT A RESULT: {failed}"
    if fallbacks == n:
        return f"NOT A RESULT: all {n} answers were fallbacks (no readable answer: the whole video, score 0)"
    if (errors + fallbacks) / n >= EVAL.not_a_result_share:
        share = 100 * (errors + fallbacks) / n
        return (
            f"NOT A RESULT: {errors + fallbacks} of {n} queries ({share:.1f}%) have no model answer "
            f"({fallbacks} fallbacks, {errors} errors)"
        )
    return None


def _cell(value: float | None) -> str:
    return "–" if value is None else f"{value:.2f}"


def render(
    dataset: str,
    ours: Mapping[str, float],
    label: str,
    info: Mapping[str, Any],
    anchors: Mapping,
    parsed: tuple[Mapping[str, float], int] | None = None,
    verdict: str | None = None,
    complete: bool = True,
) -> str:
    """A markdown table: our row first, our parsed-only row, then every anchor row for `dataset`.

    Our row is bold only for a result on the full set: with a `verdict` ("NOT A RESULT: ...", shown under
    the title) or on a subset (`complete=False`, marked INCOMPLETE in the title) it is plain and labelled.
    `info` lines (counts, warnings) are listed above the table so no number is read without them.
    """
    cols = COLUMNS[dataset]
    title = f"# {label} on {dataset}" + ("" if complete else " (INCOMPLETE: a subset of the queries)")
    lines = [title, ""] + ([f"**{verdict}**", ""] if verdict else [])
    lines += [f"- **{k}**: {v}" if k.startswith("WARNING") else f"- {k}: {v}" for k, v in info.items()]
    lines += ["", "| system | setting | " + " | ".join(cols) + " | source |", "|---" * (len(cols) + 3) + "|"]
    if verdict is None and complete:
        cells, name = [f"**{_cell(ours.get(c))}**" for c in cols], f"**{label}**"
    else:
        cells = [_cell(ours.get(c)) for c in cols]
        name = f"{label} ({'not a result' if verdict else 'subset'})"
    lines.append(f"| {name} | ours | " + " | ".join(cells) + " | this run |")
    if parsed is not None:
        p_brief, n = parsed
        lines.append(
            f"| {label} (parsed only, {n} queries) | ours | "
            + " | ".join(_cell(p_brief.get(c)) for c in cols)
            + " | this run, queries with a readable answer |"
        )
    for row in anchors.get(dataset, []):
        m = row.get("metrics", {})
        cells = " | ".join(_cell(m.get(c)) for c in cols)
        lines.append(f"| {row['system']} | {row.get('setting', '')} | {cells} | {row['source']} |")
    return "\n".join(lines) + "\n"
