"""Markdown report: our numbers beside the published anchors (eval/anchors.yaml), each with its source."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

import yaml

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


def _cell(value: float | None) -> str:
    return "–" if value is None else f"{value:.2f}"


def render(
    dataset: str,
    ours: Mapping[str, float],
    label: str,
    info: Mapping[str, Any],
    anchors: Mapping,
    parsed: tuple[Mapping[str, float], int] | None = None,
) -> str:
    """A markdown table: our row first (bold), our parsed-only row, then every anchor row for `dataset`.

    `info` lines (counts, warnings) are listed above the table so no number is read without them.
    """
    cols = COLUMNS[dataset]
    lines = [f"# {label} on {dataset}", ""]
    lines += [f"- **{k}**: {v}" if k == "WARNING" else f"- {k}: {v}" for k, v in info.items()]
    lines += ["", "| system | setting | " + " | ".join(cols) + " | source |", "|---" * (len(cols) + 3) + "|"]
    lines.append(
        f"| **{label}** | ours | " + " | ".join(f"**{_cell(ours.get(c))}**" for c in cols) + " | this run |"
    )
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
