"""The run folder's files (`run.json`, `predictions.jsonl`, `samples.jsonl`) and reading the predictions
back to resume: a torn last line (a killed run) is cut, error lines are dropped with `--retry-errors`."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from grounding_agent.errors import DatasetError
from grounding_agent.io import dumps_json
from grounding_agent.io import write_text_atomic as write_atomic

PREDICTIONS, SAMPLES, RUN_JSON = "predictions.jsonl", "samples.jsonl", "run.json"


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
