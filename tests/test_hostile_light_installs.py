"""Light installs (only the `[client]` extra): a feature whose optional dependency is missing fails with one
line naming the extra to install, *before* any work starts; what needs nothing extra still works.
Also: `--json | head` (the reader leaves) exits quietly, without a BrokenPipeError traceback.

A missing package is simulated in a subprocess by `sys.modules[name] = None` (what `import name` then
raises is exactly the ImportError of a package that is not there).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap

import pytest

from grounding_agent.errors import ConfigError, MissingDependencyError
from grounding_agent.utils import extras
from tests.test_hostile_options import CLIP, assert_one_line_error

# What the [client] extra lacks that the others bring.
NOT_IN_CLIENT = ["torch", "torchvision", "transformers", "peft", "langchain", "langchain_core", "langchain_openai",
                 "langgraph", "matplotlib", "onnxruntime"]  # fmt: skip

HARNESS = textwrap.dedent(
    """
    import sys
    for name in sys.argv[1].split(","):
        sys.modules[name] = None  # not installed
    import grounding_agent.highlights.windows as hl
    import grounding_agent.media.decode as decode
    import grounding_agent.media.video as video

    def work(*args, **kwargs):  # any decoding or scoring means the check came too late
        print("WORK STARTED", file=sys.stderr)
        raise SystemExit(99)

    video.open_video = decode.sample_frames = hl.generic_highlights = hl.query_highlights = work
    from grounding_agent.cli import main
    sys.exit(main(sys.argv[2:]))
    """
)


def run_light(*argv: str, missing: list[str] = NOT_IN_CLIENT, cwd=None) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-c", HARNESS, ",".join(missing), *map(str, argv)],
        capture_output=True, text=True, timeout=180, cwd=cwd,
    )  # fmt: skip


CASES = {
    "compositional query switches the agent on": (
        ["ground", CLIP, "the man opens the door, then sits down", "--backend", "uniform"], "[agent]", "langgraph"),
    "--verify": (
        ["ground", CLIP, "person opens the door", "--backend", "uniform", "--agent", "--verify",
         "--server", "http://127.0.0.1:9/v1", "--planner-model", "m"], "[agent]", "langchain_openai"),
    "--explain-llm": (
        ["ground", CLIP, "the man opens the door, then sits down", "--backend", "uniform", "--explain-llm",
         "--server", "http://127.0.0.1:9/v1", "--planner-model", "m"], "[agent]", "langchain"),
    "--plot": (["highlights", CLIP, "--plot", "curve.png"], "[saliency]", "matplotlib"),
    "--backend hf": (["ground", CLIP, "person opens the door", "--backend", "hf", "--model", "Qwen/Qwen2-VL-2B"],
                     "[hf]", "torch"),
    "highlights --model": (["highlights", CLIP, "--query", "a dog", "--model", "openai/clip-vit-base-patch32"],
                           "[hf]", "torch"),
    "plan --planner llm": (["plan", "x, then y", "--planner", "llm", "--server", "http://127.0.0.1:9/v1",
                            "--model", "m"], "[agent]", "langchain_openai"),
}  # fmt: skip


@pytest.mark.parametrize("case", list(CASES))
def test_missing_extra_is_one_line_before_any_work(tmp_path, case) -> None:
    argv, extra, module = CASES[case]
    res = run_light(*argv, cwd=tmp_path)
    assert "WORK STARTED" not in res.stderr
    line = assert_one_line_error(res.returncode, res.stderr, f"pip install 'grounding-agent{extra}'", module)
    assert "Traceback" not in line and res.stdout == ""
    assert list(tmp_path.iterdir()) == []  # --plot's file was not written either


def test_simple_query_needs_nothing_extra(tmp_path) -> None:
    """The check is not overcautious: a one-step query on a model-free backend runs with [client] alone."""
    harness = HARNESS.replace("video.open_video = ", "_unused = ")  # let the video be opened this time
    res = subprocess.run([sys.executable, "-c", harness, ",".join(NOT_IN_CLIENT), "ground", str(CLIP),
                          "person opens the door", "--backend", "uniform", "--json"],
                         capture_output=True, text=True, timeout=180, cwd=tmp_path)  # fmt: skip
    assert res.returncode == 0, res.stderr
    assert json.loads(res.stdout)["pred_relevant_windows"]


def test_library_agent_without_langgraph_names_the_extra() -> None:
    code = textwrap.dedent(
        f"""
        import sys
        sys.modules["langgraph"] = None
        from grounding_agent.agent import Agent
        from grounding_agent.errors import MissingDependencyError
        from grounding_agent.grounders.baselines import UniformGrounder
        try:
            Agent(UniformGrounder()).run({str(CLIP)!r}, "the man opens the door, then sits down")
        except MissingDependencyError as exc:
            print("OK", exc)
        """
    )
    res = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=180)
    assert res.stdout.startswith("OK ") and "pip install 'grounding-agent[agent]'" in res.stdout, res.stderr


def test_require_names_missing_modules_and_the_extra(monkeypatch) -> None:
    monkeypatch.setitem(sys.modules, "langgraph", None)
    assert extras.missing("json", "langgraph", "no_such_module_xyz", "no_such_pkg.sub") == [
        "langgraph", "no_such_module_xyz", "no_such_pkg.sub"]  # fmt: skip
    with pytest.raises(
        MissingDependencyError, match=r"--x needs langgraph, .*pip install 'grounding-agent\[agent\]'"
    ):
        extras.require("agent", "json", "langgraph", feature="--x")
    extras.require("agent", "json", "os")  # present: no error
    assert issubclass(MissingDependencyError, ConfigError) and issubclass(MissingDependencyError, ImportError)


# --- the reader leaves: `--json | head` ---------------------------------------------------------------------


@pytest.mark.parametrize("argv", [["plan", "the man opens the door, then sits down", "--json"],
                                  ["ground", CLIP, "person opens the door", "--backend", "uniform", "--top-k",
                                   "5", "--json"]])  # fmt: skip
def test_closed_stdout_exits_quietly(argv) -> None:
    read_end, write_end = os.pipe()
    os.close(read_end)  # like `| head` that already left: every write gets EPIPE
    try:
        res = subprocess.run(
            [sys.executable, "-c", "import sys; from grounding_agent.cli import main; sys.exit(main())", *map(str, argv)],
            stdout=write_end, stderr=subprocess.PIPE, text=True, timeout=180,
        )  # fmt: skip
    finally:
        os.close(write_end)
    assert "Traceback" not in res.stderr and "BrokenPipe" not in res.stderr, res.stderr
    assert res.stderr.strip() == "" and res.returncode == 141


def test_rule_plan_needs_nothing_extra(tmp_path) -> None:
    res = run_light("plan", "the man opens the door, then sits down", "--json", cwd=tmp_path)
    assert res.returncode == 0, res.stderr
    assert [s["text"] for s in json.loads(res.stdout)["steps"]][1:] == ["the man sits down"]
