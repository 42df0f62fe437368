"""Unbounded input: a huge fps, frame count, top-k, query or number is one `error:` line (exit 2) on the CLI
and a typed `ConfigError` from Python, refused before any work starts, with nothing written or changed."""

from __future__ import annotations

import hashlib
import resource
import subprocess
import sys
from dataclasses import replace
from pathlib import Path

import pytest

from grounding_agent.defaults import LIMITS
from grounding_agent.errors import ConfigError, EditError
from tests.test_hostile_options import CLIP, assert_one_line_error, run_cli

DIGITS = "9" * 300
HUGE_QUERY = "the person opens the door " * 5000  # 130,000 characters


def digest(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


@pytest.fixture
def empty_cwd(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """An empty working folder: it must still be empty afterwards (nothing written beside)."""
    monkeypatch.chdir(tmp_path)
    return tmp_path


@pytest.fixture(scope="module")
def clip_hash() -> str:
    return digest(CLIP)


CLI_CASES = [
    (["probe", CLIP, "--fps", "1000000"], "--fps"),
    (["probe", CLIP, "--max-frames", "1000000"], "--max-frames"),
    (["probe", CLIP, "--fps", "1000000", "--decode"], "--fps"),
    (["ground", CLIP, "door", "--backend", "uniform", "--top-k", "1000000000"], "--top-k"),
    (["ground", CLIP, "door", "--backend", "uniform", "--top-k", DIGITS], "--top-k"),
    (["ground", CLIP, "door", "--backend", "uniform", "--fps", "1000000"], "--fps"),
    (["ground", CLIP, "door", "--backend", "uniform", "--max-frames", "1000000"], "--max-frames"),
    (["ground", CLIP, "door", "--backend", "uniform", "--step-top-k", "1000000000"], "--step-top-k"),
    (["ground", CLIP, HUGE_QUERY, "--backend", "uniform"], "characters"),
    (["plan", HUGE_QUERY], "characters"),
    (["highlights", CLIP, "--fps", "1000000"], "--fps"),
    (["highlights", CLIP, "--top-k", "1000000000"], "--top-k"),
    (["chat", CLIP, "--backend", "uniform", "--top-k", "1000000000"], "--top-k"),
    (["edit", CLIP, f"cut 0:05 to {DIGITS}", "--backend", "uniform"], "days"),
    (["edit", CLIP, f"keep the best {DIGITS} moments", "--backend", "uniform"], "at most 1000"),
    (["edit", CLIP, f"shorten it to {DIGITS} seconds", "--backend", "uniform"], "days"),
    (["edit", CLIP, f"cut the first {DIGITS} minutes", "--backend", "uniform"], "days"),
    (["edit", CLIP, "keep the best 10^300 moments", "--backend", "uniform"], "could not read"),
    (["edit", CLIP, "shorten it to 1e400 seconds", "--backend", "uniform"], "could not read"),
    (["edit", CLIP, "cut the silences " * 8000, "--backend", "uniform"], "characters"),
]


@pytest.mark.parametrize(
    ("argv", "fragment"), CLI_CASES, ids=[" ".join(map(str, a))[:60] for a, _ in CLI_CASES]
)
def test_cli_refuses_unbounded_input_in_one_line(capsys, empty_cwd, clip_hash, argv, fragment) -> None:
    rc, out, err = run_cli(capsys, *argv)
    line = assert_one_line_error(rc, err, fragment)
    assert "inf" not in line.split() and DIGITS not in line and len(line) < 600  # never echoed whole
    assert out == "" and list(empty_cwd.iterdir()) == [] and digest(CLIP) == clip_hash


def test_cli_limits_leave_sane_values_alone(capsys, empty_cwd) -> None:
    rc, out, err = run_cli(capsys, "probe", CLIP, "--fps", str(LIMITS.max_fps), "--max-frames", "4", "--json")
    assert rc == 0, err
    assert '"num_frames": 4' in out


# --- Python: the library's entry points -----------------------------------------------------------------


def _session(**kwargs):
    from grounding_agent.conversation.session import Session

    return Session(CLIP, "uniform", **kwargs)


PYTHON_CASES = {
    "Session top_k": lambda: _session(top_k=10**9),
    "Session fps": lambda: _session(fps=1e6),
    "Session max_frames": lambda: _session(max_frames=10**9),
    "Session.ask huge message": lambda: _session().ask(HUGE_QUERY),
    "Session.ground top_k": lambda: _session().ground("door", top_k=10**9),
    "Session.ground huge query": lambda: _session().ground(HUGE_QUERY),
    "ground() top_k": lambda: __import__("grounding_agent").ground(
        CLIP, "door", grounder="uniform", top_k=10**9
    ),
    "grounder.ground top_k": lambda: _uniform().ground(CLIP, "door", top_k=10**9),
    "grounder.ground huge query": lambda: _uniform().ground(CLIP, HUGE_QUERY),
    "plan_frames fps": lambda: _media("plan_frames")(CLIP, fps=1e6),
    "plan_frames max_frames": lambda: _media("plan_frames")(CLIP, max_frames=10**9),
    "plan_frames count": lambda: _count(),
    "sample_frames fps": lambda: _media("sample_frames")(CLIP, fps=1e6),
    "iter_frame_chunks fps": lambda: next(_media("iter_frame_chunks")(CLIP, fps=1e6)),
    "generic_highlights fps": lambda: _highlights().generic_highlights(CLIP, fps=1e6),
    "WindowSearch top_k": lambda: _highlights().WindowSearch(top_k=10**9),
    "edit.parse number": lambda: _rule_parse(f"cut 0:05 to {DIGITS}"),
    "edit.parse count": lambda: _rule_parse(f"keep the best {DIGITS} moments"),
    "edit.parse huge": lambda: _rule_parse("cut the silences " * 8000),
}


def _uniform():
    from grounding_agent.grounders.registry import make_grounder

    return make_grounder("uniform")


def _media(name: str):
    from grounding_agent.media import decode, frame_plan

    return getattr(frame_plan, name, None) or getattr(decode, name)


def _count():
    """fps within its limit, but so many frames over the window that the plan itself is refused."""
    from grounding_agent.media import frame_plan

    limits = replace(LIMITS, max_frames=100)
    old, frame_plan.LIMITS = frame_plan.LIMITS, limits
    try:
        return frame_plan.plan_frames(CLIP, fps=30.0)
    finally:
        frame_plan.LIMITS = old


def _highlights():
    from grounding_agent.highlights import windows

    return windows


def _rule_parse(text: str):
    from grounding_agent.edit.parse import RuleEditParser

    return RuleEditParser().parse(text)


@pytest.mark.parametrize("case", sorted(PYTHON_CASES))
def test_python_refuses_unbounded_input_with_config_error(clip_hash, case) -> None:
    with pytest.raises(ConfigError) as info:
        PYTHON_CASES[case]()
    message = str(info.value)
    assert len(message.splitlines()) == 1 and DIGITS not in message and len(message) < 600
    assert digest(CLIP) == clip_hash


def test_edit_numbers_are_edit_errors() -> None:
    with pytest.raises(EditError, match="days"):
        _rule_parse(f"shorten it to {DIGITS} seconds")
    assert _rule_parse("cut 0:05 to 0:10").operations  # a sane one still reads


def test_sample_frames_refuses_pixels_past_the_byte_limit(monkeypatch) -> None:
    from grounding_agent.media import decode

    monkeypatch.setattr(decode, "LIMITS", replace(LIMITS, max_sample_bytes=1 << 20))
    with pytest.raises(ConfigError, match="GiB of pixels"):
        decode.sample_frames(CLIP, fps=2.0)


# --- memory guard: a regression fails fast instead of eating the machine --------------------------------

GUARD = """
import resource, sys
resource.setrlimit(resource.RLIMIT_AS, (2 << 30, 2 << 30))
from grounding_agent.cli import main
sys.exit(main(sys.argv[1:]))
"""


@pytest.mark.parametrize(
    "argv",
    [
        ["probe", CLIP, "--fps", "1000000"],
        ["ground", CLIP, "door", "--backend", "uniform", "--top-k", "1000000000"],
        ["highlights", CLIP, "--fps", "1000000"],
    ],
    ids=["probe fps", "ground top-k", "highlights fps"],
)
def test_unbounded_cli_input_fails_fast_under_2gb(tmp_path, clip_hash, argv) -> None:
    assert resource.RLIMIT_AS  # the guard needs it (Linux)
    run = subprocess.run(
        [sys.executable, "-c", GUARD, *map(str, argv)],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert_one_line_error(run.returncode, run.stderr)
    assert "MemoryError" not in run.stderr and list(tmp_path.iterdir()) == [] and digest(CLIP) == clip_hash
