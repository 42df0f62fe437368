"""Untrusted text: queries that are not valid UTF-8, model answers with exponents, overflowing numbers and
degenerate tags. Typed errors or the right answer, linear work, and never invalid UTF-8 on stdout."""

from __future__ import annotations

import json
import math
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from grounding_agent.errors import ConfigError
from grounding_agent.grounders.parsing import parse_answer, parse_moments
from grounding_agent.grounders.qwen_inputs import check_query
from tests.test_hostile_options import CLIP, assert_one_line_error, run_cli

EXE = [sys.executable, "-c", "import sys; from grounding_agent.cli import main; sys.exit(main())"]


# --- numbers in answers --------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("2.5e1 - 3.0e1 seconds", (25.0, 30.0)),
        ("from 1e1 to 2E1 s", (10.0, 20.0)),
        ("<answer>1.25e+1 to 1.5e1</answer>", (12.5, 15.0)),
        ("12.3 - 20.1 seconds", (12.3, 20.1)),
    ],
)
def test_exponent_numbers_are_read_whole(text, expected) -> None:
    (moment,) = parse_moments(text, 60.0)
    assert (moment.start_s, moment.end_s) == pytest.approx(expected)


@pytest.mark.parametrize("text", ["1e308 - 1e309", "0 - 1e309", "1e309 - 1e310 seconds", "[0, 1e400]"])
def test_overflowing_numbers_are_a_parse_failure_not_a_moment(text) -> None:
    parsed = parse_answer(text, 6.0)
    assert parsed.moments == [] and parsed.failure is not None
    assert any("not a finite time" in n for n in parsed.notes) or "outside" in parsed.failure.reason


def test_absurd_finite_numbers_are_outside_the_video() -> None:
    parsed = parse_answer("1e300 - 2e300 seconds", 6.0)
    assert parsed.moments == [] and "outside the video" in parsed.failure.reason


# --- work grows linearly with the text ------------------------------------------------------------------------


def _best_time_s(text: str, repeats: int = 3) -> float:
    best = math.inf
    for _ in range(repeats):
        t0 = time.perf_counter()
        parse_answer(text, 30.0)
        best = min(best, time.perf_counter() - t0)
    return best


@pytest.mark.timeout(120)  # quadratic work would take many minutes here: fail, don't hang the suite
@pytest.mark.parametrize(
    "unit", ["<answer>", "<answer>1", "<think><answer>", "<answer> 1 - ", "<ANSWER>x</answer"]
)
def test_degenerate_tags_cost_linear_work(unit) -> None:
    """A scaling check, not a speed target: 16x the text costs ~16x when linear and 256x when quadratic;
    the bound sits between them, far from both, so a noisy shared machine cannot flip it."""
    small, large = unit * (32768 // len(unit)), unit * (16 * 32768 // len(unit))
    t_small, t_large = _best_time_s(small), _best_time_s(large)
    assert t_large < 64 * t_small + 0.1, (t_small, t_large)


@settings(max_examples=200, deadline=None)
@given(
    text=st.lists(
        st.sampled_from(
            [
                "<answer>",
                "</answer>",
                "<think>",
                "</think>",
                " - ",
                " to ",
                "1e309",
                "2.5e1",
                "12.5",
                "00:12",
                "seconds",
                "(0.8)",
                "[",
                "]",
                ",",
                "\udce9",
                "é",
                "\n",
            ]
        ),  # fmt: skip
        max_size=40,
    ).map("".join),
    duration=st.floats(min_value=0.5, max_value=1e5),
)
def test_any_answer_gives_finite_moments_inside_the_video(text, duration) -> None:
    parsed = parse_answer(text, duration)
    for m in parsed.moments:
        assert math.isfinite(m.start_s) and math.isfinite(m.end_s) and math.isfinite(m.score)
        assert 0.0 <= m.start_s <= m.end_s <= duration and 0.0 <= m.score <= 1.0
    assert parsed.moments or parsed.failure is not None


# --- queries that are not valid UTF-8 ---------------------------------------------------------------------------


def test_library_refuses_undecodable_query_with_a_config_error() -> None:
    for bad in ("caf\udce9", None, 42, "   "):
        with pytest.raises(ConfigError):
            check_query(bad)
    assert check_query("café, then 🍰") == "café, then 🍰"


@pytest.mark.parametrize("command", ["plan", "ground", "highlights"])
def test_cli_undecodable_query_from_argv_is_one_line_exit_2(tmp_path, command) -> None:
    """Real argv bytes (a Latin-1 terminal): Python decodes them to lone surrogates."""
    query = "café, then drinks".encode("latin-1")
    argv = {"plan": [b"plan", query, b"--json"],
            "ground": [b"ground", str(CLIP).encode(), query, b"--backend", b"uniform", b"--json"],
            "highlights": [b"highlights", str(CLIP).encode(), b"--query", query, b"--model", b"x"]}[command]  # fmt: skip
    env = {**os.environ, "LC_ALL": "C.UTF-8", "PYTHONIOENCODING": ""}
    res = subprocess.run(
        [*map(os.fsencode, EXE), *argv], capture_output=True, cwd=tmp_path, env=env, timeout=120
    )
    assert res.stdout == b""
    assert_one_line_error(res.returncode, res.stderr.decode("utf-8"), "not valid UTF-8")
    assert list(tmp_path.iterdir()) == []


def test_plan_json_is_valid_utf8_and_round_trips(capsys) -> None:
    query = "la persona abre la nevera, then drinks 🥤 «vite»"
    rc, out, _ = run_cli(capsys, "plan", query, "--json")
    assert rc == 0
    assert json.loads(out.encode("utf-8").decode("utf-8"))["query"] == query


def test_undecodable_file_name_never_reaches_stdout_as_invalid_utf8(tmp_path) -> None:
    """A video whose *name* is not UTF-8 is fine to read; what we print about it stays valid UTF-8."""
    name = os.path.join(os.fsencode(tmp_path), b"clip-\xff.mp4")
    os.symlink(os.fsencode(CLIP), name)
    res = subprocess.run([*map(os.fsencode, EXE), b"ground", name, b"person opens the door", b"--backend", b"uniform",
                          b"--json"], capture_output=True, timeout=120)  # fmt: skip
    assert res.returncode == 0, res.stderr
    prediction = json.loads(res.stdout.decode("utf-8"))  # strict: raises on invalid UTF-8
    assert prediction["vid"].startswith("clip-")


def test_ground_in_process_surrogate_query_is_refused(capsys) -> None:
    rc, out, err = run_cli(capsys, "ground", CLIP, "caf\udce9", "--backend", "uniform")
    assert_one_line_error(rc, err, "not valid UTF-8")
    assert out == ""
    assert Path(CLIP).exists()


def test_chat_reads_non_utf8_stdin_without_crashing(tmp_path) -> None:
    """A message typed in a Latin-1 terminal is read (U+FFFD in place of the bad byte), answered, not a crash."""
    res = subprocess.run([*EXE, "chat", str(CLIP), "--backend", "uniform"], input=b"caf\xe9 opens the door\n/quit\n",
                         capture_output=True, timeout=120, cwd=tmp_path)  # fmt: skip
    assert res.returncode == 0, res.stderr
    assert b"Traceback" not in res.stderr and "0.00-6.14 s" in res.stdout.decode("utf-8")
    assert list(tmp_path.iterdir()) == []


def test_json_output_is_strict_json_even_with_non_finite_numbers(capsys) -> None:
    from grounding_agent.cli._common import print_json

    print_json({"scores": [0.5, float("nan"), float("inf")], "name": "caf\udce9"})
    out = capsys.readouterr().out
    assert json.loads(out, parse_constant=lambda c: pytest.fail(f"non-JSON constant {c}")) == {
        "scores": [0.5, None, None], "name": "caf?"}  # fmt: skip
