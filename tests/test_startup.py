"""Start-up: the light CLI commands never import torch or transformers (each run in a fresh interpreter).

`ground --backend vllm` runs against `FakeOpenAIServerForTests`, an OpenAI-compatible HTTP double on
127.0.0.1 that replaces only the server (it answers every request with one fixed, well-formed moment):
the whole client path (sampling, encoding, request, parsing) runs for real.
"""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap

import pytest

from tests.conftest import REPO, VIDEOS

# openai / pydantic: the SDK's import alone (0.5-0.9 s) was most of a `ground` run; the grounder speaks the
# API over httpx2. httpx would add ~0.14 s (its CLI: click, rich).
HEAVY = (
    "torch",
    "transformers",
    "torchvision",
    "scipy",
    "langgraph",
    "langchain_core",
    "openai",
    "pydantic",
    "httpx",
)

# The OpenAI-compatible double, as source: run in the measured interpreter here, in a process of its own
# in bench/startup.py (which appends its own start-up lines).
FAKE_SERVER = textwrap.dedent(
    """
    import json, sys, threading
    from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

    class FakeOpenAIServerForTests(BaseHTTPRequestHandler):
        def log_message(self, *args):
            pass

        def _send(self, obj):
            body = json.dumps(obj).encode()
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def do_GET(self):  # /v1/models
            self._send({"object": "list", "data": [{"id": "fake", "object": "model", "created": 0, "owned_by": "t"}]})

        def do_POST(self):  # /v1/chat/completions
            self.rfile.read(int(self.headers.get("Content-Length", 0)))
            message = {"role": "assistant", "content": "1.00 - 2.00 seconds"}
            choice = {"index": 0, "finish_reason": "stop", "message": message, "logprobs": None}
            usage = {"prompt_tokens": 1, "completion_tokens": 1, "total_tokens": 2}
            self._send({"id": "c", "object": "chat.completion", "created": 0, "model": "fake",
                        "choices": [choice], "usage": usage})

    server = ThreadingHTTPServer(("127.0.0.1", 0), FakeOpenAIServerForTests)
    """
)

# Runs `grounding-agent ARGV` in this fresh interpreter as the console script does (`main()` reading
# sys.argv), then prints which heavy modules it loaded.
_RUNNER = FAKE_SERVER + textwrap.dedent(
    """
    threading.Thread(target=server.serve_forever, daemon=True).start()
    argv = [a.replace("SERVER", f"http://127.0.0.1:{server.server_address[1]}/v1") for a in sys.argv[1:]]
    from grounding_agent.cli import main
    sys.argv = ["grounding-agent", *argv]  # main() reads them, as the console script's does
    try:
        rc = main()
    except SystemExit as exc:  # --help
        rc = exc.code
    print("\\nLOADED " + json.dumps({"rc": rc, "modules": sorted(m for m in HEAVY if m in sys.modules),
                                   "cli": sorted(m for m in sys.modules if m.startswith("grounding_agent.cli.")),
                                   "agent": sorted(m for m in sys.modules if m.startswith("grounding_agent.agent."))}))
    """
).replace("HEAVY", repr(HEAVY))


def _run(argv: list[str]) -> dict:
    proc = subprocess.run(
        [sys.executable, "-c", _RUNNER, *argv], capture_output=True, text=True, cwd=REPO, timeout=120
    )
    assert "LOADED " in proc.stdout, proc.stderr[-2000:]
    return json.loads(proc.stdout.rsplit("LOADED ", 1)[1])


CLIP = str(VIDEOS / "timer1_charades_OHOFG.mp4")
COMMANDS = {
    "help": ["--help"],
    "probe": ["probe", CLIP, "--fps", "1", "--max-frames", "8", "--decode"],
    "plan": ["plan", "the person opens the door, then sits down"],
    "eval-score-help": ["eval", "score", "--help"],
    "ground-vllm": [
        "ground",
        CLIP,
        "person sits down",
        "--backend",
        "vllm",
        "--server",
        "SERVER",
        "--max-frames",
        "4",
    ],
}


@pytest.mark.parametrize("name", list(COMMANDS))
def test_light_commands_never_import_torch_or_transformers(name):
    out = _run(COMMANDS[name])
    assert out["rc"] == 0
    assert out["modules"] == []


def test_eval_score_never_imports_torch_or_transformers(shared_data):
    out = _run(["eval", "score", "--dataset", "charades-sta",
                "--gt", str(shared_data / "charades_sta" / "charades_sta_test.txt"),
                "--pred", str(shared_data / "predictions" / "vmr_axiou_2dtan" / "2dtan_charades_sta_test_preds.jsonl"),
                "--json"])  # fmt: skip
    assert out["rc"] == 0
    assert not {"torch", "transformers", "torchvision"} & set(out["modules"])


def test_top_level_help_imports_no_subcommand_module():
    assert _run(["--help"])["cli"] == []


def test_vllm_grounder_module_defers_its_http_client():
    """The CLI starts decoding before the HTTP client loads: importing the grounder must not load it."""
    code = "import sys, grounding_agent.grounders.vllm; print(sorted({'openai', 'httpx', 'httpx2'} & set(sys.modules)))"
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=REPO, timeout=120)
    assert proc.stdout.strip() == "[]", proc.stderr[-2000:]


def test_one_step_ground_loads_the_rule_planner_alone_of_the_agent():
    """The agent package loads lazily: a one-step query never needs the graph, reranker or explainer."""
    loaded = _run(COMMANDS["ground-vllm"])["agent"]
    assert "grounding_agent.agent.planner" in loaded
    assert not {
        "grounding_agent.agent.orchestrator",
        "grounding_agent.agent.graph",
        "grounding_agent.agent.rerank",
    } & set(loaded)


def test_agent_package_exports_load_on_first_use():
    code = (
        "import sys, grounding_agent.agent as a; before = 'grounding_agent.agent.orchestrator' in sys.modules; "
        "Agent = a.Agent; from grounding_agent.agent import RulePlanner, make_planner; "
        "print(before, Agent.__module__, RulePlanner.__name__, 'Agent' in dir(a)); a.NotAThing"
    )
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=REPO, timeout=120)
    assert proc.stdout.split() == ["False", "grounding_agent.agent.orchestrator", "RulePlanner", "True"]
    assert "AttributeError: module 'grounding_agent.agent' has no attribute 'NotAThing'" in proc.stderr
