"""README as written: every `grounding-agent …` command line in the READMEs' code blocks parses against the
real argparse parser, names repository files that exist, and the cheap ones run and print what the README
says (JSON with `--json`); every `make` target and variable named exists. README cannot drift again."""

from __future__ import annotations

import json
import re
import shlex
from dataclasses import dataclass
from pathlib import Path

import pytest

from grounding_agent.cli import _command_in, build_parser
from tests.test_hostile_options import CLIP, run_cli

REPO = Path(__file__).resolve().parents[1]
READMES = [REPO / "README.md", REPO / "eval" / "README.md", REPO / "finetune" / "README.md"]
# Arguments naming files of this repository: they must exist (a config renamed, a script moved).
REPO_PREFIXES = ("finetune/", "eval/", "prompts/", "schemas/", "scripts/", "tests/", "bench/", "docs/")
# Placeholders for the user's own video: the cheap commands run on a real shared clip instead.
VIDEO_PLACEHOLDERS = {"video.mp4", "my_video.mp4", "clip.mp4"}


@dataclass(frozen=True)
class Command:
    where: str  # README.md:41
    argv: list[str]  # without the program name


def _code_lines(path: Path):
    """(line number, text) of the lines inside fenced code blocks, continuations (`\\`) joined."""
    inside, pending, start = False, "", 0
    for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
        if line.lstrip().startswith("```"):
            inside, pending = not inside, ""
            continue
        if not inside:
            continue
        if not pending:
            start = number
        if line.rstrip().endswith("\\"):
            pending += line.rstrip()[:-1] + " "
            continue
        yield start, pending + line
        pending = ""


def _commands(program: str) -> list[Command]:
    found = []
    for path in READMES:
        for number, text in _code_lines(path):
            words = shlex.split(text, comments=True)
            if words and Path(words[0]).name == program:
                # `[--json]` in a synopsis means "optional": check the form with it.
                argv = [w[1:-1] if w.startswith("[") and w.endswith("]") else w for w in words[1:]]
                found.append(Command(f"{path.relative_to(REPO)}:{number}", argv))
    return found


CLI_COMMANDS = _commands("grounding-agent")
MAKE_COMMANDS = _commands("make")


def test_the_readmes_hold_commands() -> None:
    """The extraction itself works (else every test below would pass on nothing)."""
    assert len(CLI_COMMANDS) >= 10 and len(MAKE_COMMANDS) >= 2
    assert any(c.argv[:1] == ["plan"] for c in CLI_COMMANDS)


def _parse(argv: list[str]):
    args = build_parser(_command_in(argv)).parse_args(argv)
    if argv[:2] == ["eval", "run"]:  # the recipe has its own parser: parse what README hands it too
        from eval.runner import build_parser as recipe_parser

        recipe_parser().parse_args(args.argv)
    return args


@pytest.mark.parametrize("command", CLI_COMMANDS, ids=[c.where for c in CLI_COMMANDS])
def test_readme_command_parses_and_names_existing_repo_files(command: Command) -> None:
    try:
        _parse(command.argv)
    except SystemExit as exc:
        pytest.fail(f"{command.where}: `grounding-agent {' '.join(command.argv)}` does not parse (exit {exc.code})")
    for word in command.argv:
        value = word.split("=", 1)[-1]
        if value.startswith(REPO_PREFIXES):
            assert (REPO / value).exists(), f"{command.where}: {value} does not exist in the repository"


def _cheap(command: Command) -> bool:
    """Runs in seconds with no model, server or user file: plan, probe on a placeholder video."""
    argv = command.argv
    return argv[0] == "plan" and "--server" not in argv or argv[0] == "probe" and argv[1] in VIDEO_PLACEHOLDERS


CHEAP = [c for c in CLI_COMMANDS if _cheap(c)]


@pytest.mark.parametrize("command", CHEAP, ids=[c.where for c in CHEAP])
def test_cheap_readme_command_runs_and_prints_what_it_says(command: Command, capsys, tmp_path, monkeypatch) -> None:
    monkeypatch.chdir(tmp_path)
    argv = [str(CLIP) if a in VIDEO_PLACEHOLDERS else a for a in command.argv]
    rc, out, err = run_cli(capsys, *argv)
    assert rc == 0, f"{command.where}: {err}"
    if "--json" in argv:
        json.loads(out)  # README promises JSON: it must be JSON
    assert list(tmp_path.iterdir()) == []


HUB_CLIP = "openai/clip-vit-base-patch32"
WITH_CLIP = [c for c in CLI_COMMANDS if c.argv[0] == "highlights" and HUB_CLIP in c.argv]


@pytest.mark.slow
@pytest.mark.parametrize("command", WITH_CLIP, ids=[c.where for c in WITH_CLIP])
def test_readme_highlights_command_runs_with_a_tiny_clip(command: Command, capsys, tmp_path, monkeypatch,
                                                         tiny_models) -> None:  # fmt: skip
    """As written, with the tiny random-weight CLIP in place of the hub id (no weights here)."""
    monkeypatch.chdir(tmp_path)
    swap = {HUB_CLIP: str(tiny_models["clip"]), **{p: str(CLIP) for p in VIDEO_PLACEHOLDERS}}
    argv = [swap.get(a, a) for a in command.argv] + ["--cache-dir", str(tmp_path / "cache")]
    rc, _, err = run_cli(capsys, *argv)
    assert rc == 0, f"{command.where}: {err}"
    if "--plot" in argv:
        assert (tmp_path / argv[argv.index("--plot") + 1]).stat().st_size > 0


def _make_targets() -> tuple[set[str], set[str]]:
    text = (REPO / "Makefile").read_text(encoding="utf-8")
    targets = set(re.findall(r"^([A-Za-z0-9_.-]+)\s*:(?!=)", text, re.MULTILINE))
    variables = set(re.findall(r"^([A-Z_][A-Z0-9_]*)\s*[?:]?=", text, re.MULTILINE))
    return targets, variables


@pytest.mark.parametrize("command", MAKE_COMMANDS, ids=[c.where for c in MAKE_COMMANDS])
def test_readme_make_target_and_variables_exist(command: Command) -> None:
    targets, variables = _make_targets()
    for word in command.argv:
        if "=" in word:
            assert word.split("=", 1)[0] in variables, f"{command.where}: Makefile has no variable {word}"
        else:
            assert word in targets, f"{command.where}: Makefile has no target {word!r}"


def test_demo_description_matches_what_the_demo_prints() -> None:
    """The demo runs `ground` without --json: README must not promise JSON for it."""
    demo = next(line for line in (REPO / "Makefile").read_text().splitlines() if "grounding-agent ground" in line)
    readme_line = next(line for line in (REPO / "README.md").read_text().splitlines() if line.startswith("make demo "))
    assert ("--json" in demo) == ("JSON" in readme_line), (demo, readme_line)
