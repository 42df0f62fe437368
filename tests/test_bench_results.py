"""Every bench result shares one envelope (`bench/results.schema.json`): the bench, when, and the machine."""

from __future__ import annotations

import json
from pathlib import Path

import jsonschema
import pytest

ROOT = Path(__file__).resolve().parents[1]
SCHEMA = json.loads((ROOT / "bench" / "results.schema.json").read_text(encoding="utf-8"))
RESULTS = sorted((ROOT / "bench" / "results").glob("*.json"))


def test_there_are_results_and_the_schema_refuses_a_bare_file():
    assert RESULTS
    with pytest.raises(jsonschema.ValidationError):
        jsonschema.validate({"rows": []}, SCHEMA)


@pytest.mark.parametrize("path", RESULTS, ids=lambda p: p.name)
def test_result_has_the_shared_envelope(path: Path):
    jsonschema.validate(json.loads(path.read_text(encoding="utf-8")), SCHEMA)


@pytest.mark.parametrize("path", RESULTS, ids=lambda p: p.name)
def test_result_is_referenced_by_the_bench_readme(path: Path):
    assert path.name in (ROOT / "bench" / "README.md").read_text(encoding="utf-8")


def test_the_machine_block_the_benches_write_fits_the_schema():
    from bench._common import machine, now

    jsonschema.validate({"bench": "decode", "when": now(), "machine": machine(threads=2)}, SCHEMA)
