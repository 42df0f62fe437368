"""README and docs as written: every command line in a fenced block of README.md, `docs/*.md`, `bench/README.md`
and the recipe READMEs parses against the real argparse parser, names repository files that exist, and the cheap
ones run and print what the page says (JSON with `--json`); every `make` target and variable named exists; a
`python SCRIPT` line names a script that exists. Every command in a ```bash block is accounted for: run, or
parsed only for a stated reason (`why_not_run`), or its program is in `NOT_RUN` with the reason. The pages
cannot drift again."""

from __future__ import annotations

import io
import json
import re
import shlex
import sys
from dataclasses import dataclass
from pathlib import Path

import pytest

from grounding_agent.cli import _command_in, build_parser
from tests.test_hostile_options import CLIP, run_cli

REPO = Path(__file__).resolve().parents[1]
# The pages a newcomer reads: every ```bash / ```python block in them is tested (this file and test_readme_python.py).
DOCS = [REPO / "README.md", *sorted((REPO / "docs").glob("*.md")), REPO / "bench" / "README.md"]
READMES = [*DOCS, REPO / "eval" / "README.md", REPO / "finetune" / "README.md"]
# Arguments naming files of this repository: they must exist (a config renamed, a script moved).
REPO_PREFIXES = ("finetune/", "eval/", "prompts/", "schemas/", "scripts/", "tests/", "bench/", "docs/")
# Placeholders for the user's own video: the cheap commands run on a real shared clip instead.
VIDEO_PLACEHOLDERS = {"video.mp4", "my_video.mp4", "clip.mp4"}
PYTHONS = {"python", ".venv/bin/python"}

# Programs shown in ```bash blocks that no test runs, and why. A new program must be added here (with its
# reason) or be checked above: `test_every_bash_command_is_accounted_for` fails otherwise.
NOT_RUN = {
    "pip": "installs packages from a registry; the test environment is built by scripts/setup_env.sh",
    "curl": "talks to a running `grounding-agent api`; tests/test_http_api.py drives the same routes in process",
    "jq": "reads the reply of the `curl` it is piped from (see curl)",
    "accelerate": "multi-GPU training launch: needs GPUs and 7B weights (finetune/README.md)",
    "echo": "only feeds the `grounding-agent` command it is piped into, which is checked (and run when cheap)",
    "createuser": "administers the team's PostgreSQL server (docs/library.md); tests/pg_server.py makes one with initdb",
    "createdb": "administers the team's PostgreSQL server (see createuser); tests/test_library_pg.py creates its databases",
}


@dataclass(frozen=True)
class Command:
    where: str  # README.md:41
    argv: list[str]  # without the program name
    stdin: str | None = None  # what an `echo '…' |` before it feeds it


def _code_lines(path: Path, languages: tuple[str, ...] | None = None):
    """(line number, text) of the lines inside fenced code blocks (of `languages`, default all), continuations
    (`\\`) joined."""
    inside, keep, pending, start = False, False, "", 0
    for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
        if line.lstrip().startswith("```"):
            if not inside:
                keep = languages is None or line.strip()[3:].strip() in languages
            inside, pending = not inside, ""
            continue
        if not inside or not keep:
            continue
        if not pending:
            start = number
        if line.rstrip().endswith("\\"):
            pending += line.rstrip()[:-1] + " "
            continue
        yield start, pending + line
        pending = ""


def _segments(text: str) -> list[list[str]]:
    """The commands of one shell line: `a | b` is two; `X=$(a | b)` is a and b; comments dropped."""
    lexer = shlex.shlex(text, posix=True, punctuation_chars="|()")
    lexer.whitespace_split = True
    words = list(lexer)
    if words and re.fullmatch(r"[A-Z_][A-Z0-9_]*=\$", words[0]) and words[1:2] == ["("]:
        words = words[2:-1] if words[-1] == ")" else words[2:]
    segments, current = [], []
    for word in words:
        if word == "|":
            segments.append(current)
            current = []
        else:
            current.append(word)
    return [s for s in [*segments, current] if s]


def _commands(program: str, paths: list[Path] = READMES) -> list[Command]:
    found = []
    for path in paths:
        for number, text in _code_lines(path):
            try:
                segments = _segments(text)
            except ValueError:  # not shell (a diagram, a table): no command on this line
                continue
            for i, words in enumerate(segments):
                if Path(words[0]).name != program:
                    continue
                # `[--json]` in a synopsis means "optional": check the form with it.
                argv = [w[1:-1] if w.startswith("[") and w.endswith("]") else w for w in words[1:]]
                before = segments[i - 1] if i else []
                stdin = " ".join(before[1:]) + "\n" if before[:1] == ["echo"] else None
                found.append(Command(f"{path.relative_to(REPO)}:{number}", argv, stdin))
    return found


CLI_COMMANDS = _commands("grounding-agent")
MAKE_COMMANDS = _commands("make")


def test_the_readmes_hold_commands() -> None:
    """The extraction itself works (else every test below would pass on nothing)."""
    assert len(CLI_COMMANDS) >= 10 and len(MAKE_COMMANDS) >= 2
    assert any(c.argv[:1] == ["plan"] for c in CLI_COMMANDS)
    assert any(c.stdin for c in CLI_COMMANDS)  # the JSON-lines chat example, piped from echo
    assert {p.name for p in DOCS} >= {
        "README.md",
        "architecture.md",
        "chat-and-http.md",
        "editing.md",
        "eval.md",
    }


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
        pytest.fail(
            f"{command.where}: `grounding-agent {' '.join(command.argv)}` does not parse (exit {exc.code})"
        )
    for word in command.argv:
        value = word.split("=", 1)[-1]
        if value.startswith(REPO_PREFIXES):
            assert (REPO / value).exists(), f"{command.where}: {value} does not exist in the repository"


def _cheap(command: Command) -> bool:
    """Runs in seconds with no model, server or user file: plan, probe on a placeholder video, model-free
    generic highlights, the JSON-lines chat on the model-free `uniform` backend fed by `echo`."""
    argv = command.argv
    on_clip = len(argv) > 1 and argv[1] in VIDEO_PLACEHOLDERS
    if argv[0] == "plan":
        return "--server" not in argv
    if argv[0] == "probe":
        return on_clip
    if argv[0] == "highlights":
        return on_clip and "--model" not in argv and "--query" not in argv
    if argv[0] == "chat":
        return on_clip and "--jsonl" in argv and "uniform" in argv and command.stdin is not None
    return False


CHEAP = [c for c in CLI_COMMANDS if _cheap(c)]


@pytest.mark.parametrize("command", CHEAP, ids=[c.where for c in CHEAP])
def test_cheap_readme_command_runs_and_prints_what_it_says(
    command: Command, capsys, tmp_path, monkeypatch
) -> None:
    monkeypatch.chdir(tmp_path)
    if command.stdin is not None:
        monkeypatch.setattr(sys, "stdin", io.StringIO(command.stdin))
    argv = [str(CLIP) if a in VIDEO_PLACEHOLDERS else a for a in command.argv]
    rc, out, err = run_cli(capsys, *argv)
    assert rc == 0, f"{command.where}: {err}"
    if "--json" in argv:
        json.loads(out)  # the page promises JSON: it must be JSON
    if "--jsonl" in argv:  # one JSON reply per line fed in
        replies = [json.loads(line) for line in out.splitlines()]
        assert len(replies) == command.stdin.count("\n") and all("error" not in r for r in replies), out
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


EDITS = [c for c in CLI_COMMANDS if c.argv[0] == "edit" and c.argv[1] in VIDEO_PLACEHOLDERS
         and not {"--server", "--asr-model", "--render", "--transcript"} & set(c.argv)]  # fmt: skip


@pytest.mark.parametrize("command", EDITS, ids=[c.where for c in EDITS])
def test_readme_edit_command_runs_and_writes_what_it_names(
    command: Command, capsys, tmp_path, monkeypatch
) -> None:
    """Model-free edits (explicit times, highlights), as written, on a generated 30-s 25 fps clip with sound and
    silences (an EDL needs a SMPTE rate, which the shared 14.985 fps clips are not): every file named is written."""
    from tests.videogen import make_edit_video

    monkeypatch.chdir(tmp_path)
    make_edit_video(tmp_path / command.argv[1], duration_s=30.0,
                    loud_spans=((0.0, 2.0), (4.0, 8.0), (10.0, 12.0), (18.0, 26.0)))  # fmt: skip
    argv = command.argv
    rc, out, err = run_cli(capsys, *argv)
    assert rc == 0, f"{command.where}: {err}"
    if "--json" in argv:
        json.loads(out)
    for option in ("--export", "--thumbnails"):
        for i, word in enumerate(argv[:-1]):
            if word == option:
                assert (tmp_path / argv[i + 1]).stat().st_size > 0, (
                    f"{command.where}: {argv[i + 1]} not written"
                )


def why_not_run(command: Command) -> str | None:
    """Why a `grounding-agent` command of the pages is parsed (and its repository files checked) but not run;
    None for the ones a test runs."""
    argv = command.argv
    if command in CHEAP or command in WITH_CLIP or command in EDITS:
        return None
    if any(a.startswith(("postgresql://", "postgres://")) for a in argv):
        return "needs a team's PostgreSQL server: tests/test_library_pg.py starts a real one and runs index/search on it"
    if argv[0] == "finetune" and any("tiny" in a for a in argv):
        return "trains for minutes on CPU: tests/test_finetune*.py run the same recipes on the tiny models"
    if argv[0] in ("serve", "finetune"):
        return "starts vLLM or trains: needs a GPU and real weights"
    if argv[0] == "eval":
        return "needs the benchmark's annotations, predictions or videos (tests/test_eval_cli.py runs eval on shared data)"
    if any(a.startswith("Qwen/") or a == HUB_CLIP for a in argv):
        return "needs real hub weights (not downloaded in tests)"
    if "--server" in argv or "vllm" in argv:
        return "needs a running vLLM server (tests/test_grounders_vllm.py starts one)"
    if argv[0] == "watch":
        return "needs a live publisher (a stream URL or a file being written): tests/test_live*.py publish real ones"
    if "DIR" in argv or "--ocr" in argv:
        return "needs a Whisper folder (placeholder DIR) or the OCR models: tests/test_speech_cli.py, tests/test_ocr.py"
    if argv[0] in ("edit", "transcribe", "ground", "ui", "api", "chat", "highlights"):
        return "needs the user's own media file or a long-running server (tests/test_edit*.py, test_http_api.py, ...)"
    return None


def test_every_bash_command_is_accounted_for() -> None:
    """Each command in a ```bash block of the pages is run, parsed for a stated reason, or its program is in
    NOT_RUN with the reason: nothing shown to a user goes unchecked by accident."""
    unaccounted = []
    for path in READMES:
        for number, text in _code_lines(path, ("bash", "sh", "shell", "console")):
            for words in _segments(text):
                program, where = words[0], f"{path.relative_to(REPO)}:{number}"
                if Path(program).name in ("grounding-agent", "make") or program in NOT_RUN:
                    continue
                if program in PYTHONS and words[1:2] and words[1].endswith(".py"):
                    assert (REPO / words[1]).is_file(), (
                        f"{where}: {words[1]} does not exist in the repository"
                    )
                    continue
                unaccounted.append(f"{where}: {text.strip()}")
    for command in CLI_COMMANDS:
        if why_not_run(command) is None and command not in CHEAP + WITH_CLIP + EDITS:
            unaccounted.append(
                f"{command.where}: grounding-agent {' '.join(command.argv)} (no reason not to run it)"
            )
    assert not unaccounted, "run these in a test or list them with a reason:\n" + "\n".join(unaccounted)


def test_the_pages_show_no_old_module_path() -> None:
    """Module paths moved in the layout refactor (issue 27): the pages name the new ones."""
    old = re.compile(r"grounding_agent\.(session|chat_agent|video|speech|ocr|signals|saliency|plots|metrics|datasets|"
                     r"parsing|serving|prompts|deadline|extras|temporal|rerank_features|describe|dialogue)\b")  # fmt: skip
    for path in DOCS:
        for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
            assert not old.search(line), (
                f"{path.relative_to(REPO)}:{number}: old module path in {line.strip()!r}"
            )


def test_readme_is_short() -> None:
    """A newcomer reads it in five minutes: at most 160 lines, none over 200 characters; the detail is in docs/."""
    lines = (REPO / "README.md").read_text(encoding="utf-8").splitlines()
    assert len(lines) <= 160, len(lines)
    assert all(len(line) <= 200 for line in lines), [n for n, line in enumerate(lines, 1) if len(line) > 200]
    for link in re.findall(r"\]\(([^)#]+)\)", "\n".join(lines)):
        assert (REPO / link).exists(), f"README links to {link}, which does not exist"


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
    demo = next(
        line for line in (REPO / "Makefile").read_text().splitlines() if "grounding-agent ground" in line
    )
    readme_line = next(
        line for line in (REPO / "README.md").read_text().splitlines() if line.startswith("make demo ")
    )
    assert ("--json" in demo) == ("JSON" in readme_line), (demo, readme_line)
