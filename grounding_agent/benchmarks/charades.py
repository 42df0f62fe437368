"""Charades-STA: TALL txt lines `VID start end##sentence` plus the Charades csv `length` column as the video
duration; `qid` is the 0-based line index in the txt (the convention of published prediction files). The
moment_detr-style jsonl (Lighthouse's `charades_test_release.jsonl`) is read by `qvhighlights`."""

from __future__ import annotations

import csv
import io
from pathlib import Path

from grounding_agent.benchmarks.annotations import Annotation, Dataset, GTPolicy
from grounding_agent.benchmarks.reading import (
    fix_window,
    positive_duration,
    read_text,
    report_changes,
    wrong_format_hint,
)
from grounding_agent.errors import DatasetError


def charades_durations(csv_path: Path) -> dict[str, float]:
    """Video id -> `length` (seconds) from a Charades_v1_*.csv."""
    text = read_text(csv_path, "Charades_v1_<split>.csv with video lengths (--durations)")
    try:
        reader = csv.DictReader(io.StringIO(text, newline=""))
        out: dict[str, float] = {}
        first_line: dict[str, int] = {}
        for row in reader:
            where = f"{csv_path}:{reader.line_num}"
            vid = row["id"]
            if vid in out:  # which length is right cannot be known: picking one would change the GT
                raise DatasetError(
                    f"{where}: video {vid} appears twice (first on line {first_line[vid]}); "
                    "keep one row per video"
                )
            out[vid] = positive_duration(row["length"], f"{where}: video {vid}")
            first_line[vid] = reader.line_num
        return out
    except (KeyError, ValueError, csv.Error) as exc:
        raise DatasetError(f"{csv_path}: not a Charades csv with 'id' and 'length' columns ({exc})") from None


def default_charades_csv(txt_path: Path) -> Path:
    """charades_sta_test.txt -> Charades_v1_test.csv beside it."""
    split = "train" if "train" in Path(txt_path).name else "test"
    return Path(txt_path).with_name(f"Charades_v1_{split}.csv")


def load_charades_sta(
    txt_path: str | Path, durations: str | Path | None = None, policy: GTPolicy = GTPolicy()
) -> Dataset:
    """Charades-STA annotations.

    Args:
        txt_path: `charades_sta_{train,test}.txt` (TALL format).
        durations: Charades_v1_{split}.csv; default: the one beside `txt_path`.
        policy: GT handling.

    Raises:
        DatasetError: a missing file, a malformed line, or a video without a length.
    """
    txt_path = Path(txt_path)
    lines = read_text(txt_path, "Charades-STA txt (--gt)").splitlines()  # first: a missing --gt is named
    lengths = charades_durations(Path(durations) if durations else default_charades_csv(txt_path))
    stats: dict[str, int] = {}
    out: list[Annotation] = []
    for qid, line in enumerate(lines):
        where = f"{txt_path}:{qid + 1}"
        try:
            head, sentence = line.split("##", 1)
            vid, start, end = head.split()
        except ValueError:
            raise DatasetError(
                f"{where}: expected 'VID start end##sentence', got {line[:80]!r}"
                + wrong_format_hint(txt_path, "charades-sta")
            ) from None
        if vid not in lengths:
            raise DatasetError(f"{where}: video {vid} has no length in the durations csv; wrong split csv?")
        window = fix_window(start, end, lengths[vid], policy, stats, where)
        if window is not None:
            out.append(Annotation(qid, vid, sentence.strip(), lengths[vid], (window,)))
    report_changes(txt_path.name, stats)
    return Dataset("charades-sta", out, stats)
