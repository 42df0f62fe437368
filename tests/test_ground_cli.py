"""`grounding-agent ground` and `grounding-agent serve` end to end, on the real Charades clips."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import jsonschema
import pytest

from grounding_agent.cli import main

REPO = Path(__file__).resolve().parents[1]
SCHEMA = json.loads((REPO / "schemas" / "prediction.schema.json").read_text())
CHARADES = ["univtg_charades_Y1HGC.mp4", "timer1_charades_OHOFG.mp4"]
QUERY = "person opens the door"


def _wait_for_free_vllm_slot(max_running: int = 2, timeout_s: float = 600.0) -> None:
    """The machine's cores are shared: do not add a server while two or more already run."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        running = subprocess.run(["pgrep", "-fc", "vllm.entrypoints"], capture_output=True, text=True).stdout
        if int(running.strip() or 0) < max_running:
            return
        time.sleep(10)


@pytest.mark.integration
@pytest.mark.slow
def test_serve_starts_answers_and_stops_on_ctrl_c(tiny_models, tmp_path) -> None:
    """Runs first in the module: normally before the session `vllm_server` is up (one server at a time)."""
    import httpx

    _wait_for_free_vllm_slot()
    cli = Path(sys.executable).parent / "grounding-agent"
    cmd = [str(cli), "serve", "--model", str(tiny_models["qwen2_5_vl"])]
    cmd += ["--lora", f"tiny={tiny_models['qwen2_5_vl_lora']}", "--port", "0", "--max-model-len", "2048"]
    cmd += ["--limit-mm", "image=8", "--max-lora-rank", "8", "--log", str(tmp_path / "vllm.log")]
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        line = proc.stdout.readline()  # blocks until the server is healthy (or the command fails)
        assert line.startswith("serving "), (line, proc.stderr.read() if proc.poll() is not None else "")
        base_url = line.rsplit(" at ", 1)[1].strip()
        models = httpx.get(f"{base_url}/models", timeout=10).json()
        assert {m["id"] for m in models["data"]} == {str(tiny_models["qwen2_5_vl"]), "tiny"}
        proc.send_signal(signal.SIGINT)
        assert proc.wait(timeout=60) == 0
        assert "stopping vLLM" in proc.stderr.read()
        port = int(base_url.rsplit(":", 1)[1].split("/")[0])
        with socket.socket() as sock:
            assert sock.connect_ex(("127.0.0.1", port)) != 0, "server still listening after Ctrl-C"
    finally:
        if proc.poll() is None:
            os.kill(proc.pid, signal.SIGTERM)
            proc.wait(timeout=60)


def _ground_json(capsys, argv: list[str]) -> dict:
    assert main(["ground", *argv, "--json"]) == 0
    prediction = json.loads(capsys.readouterr().out)
    jsonschema.validate(prediction, SCHEMA)
    assert prediction["query"] == QUERY and prediction["pred_relevant_windows"]
    for start_s, end_s, _score in prediction["pred_relevant_windows"]:
        assert 0.0 <= start_s <= end_s <= prediction["duration_s"]
    return prediction


@pytest.mark.integration
@pytest.mark.parametrize("clip", CHARADES)
def test_ground_hf_on_real_clips(capsys, real_clips, tiny_models, clip: str) -> None:
    model = str(tiny_models["qwen2_5_vl"])
    argv = [str(real_clips[clip]), QUERY, "--backend", "hf", "--model", model, "--max-frames", "8"]
    prediction = _ground_json(capsys, argv)
    assert prediction["vid"] == Path(clip).stem
    assert prediction["grounder"]["backend"] == "hf" and len(prediction["raw_text"]) == 1


@pytest.mark.integration
@pytest.mark.parametrize("clip", CHARADES)
def test_ground_vllm_on_real_clips(capsys, real_clips, vllm_server, clip: str) -> None:
    argv = [str(real_clips[clip]), QUERY, "--backend", "vllm", "--server", vllm_server.base_url]
    argv += ["--adapter", vllm_server.adapter, "--max-frames", "8", "--top-k", "3", "--structured"]
    prediction = _ground_json(capsys, argv)
    assert prediction["grounder"]["model"] == vllm_server.adapter
    assert len(prediction["pred_relevant_windows"]) <= 3
    scores = [w[2] for w in prediction["pred_relevant_windows"]]
    assert scores == sorted(scores, reverse=True)


def test_ground_prints_moments_for_humans(capsys, real_clips) -> None:
    """A model-free baseline exercises the human-readable output without a model."""
    assert main(["ground", str(real_clips[CHARADES[0]]), QUERY, "--backend", "uniform", "--top-k", "2"]) == 0
    out = capsys.readouterr().out
    assert f'query: "{QUERY}"' in out
    assert "  1. " in out and "  2. " in out and " -> " in out


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["no/such/video.mp4", QUERY, "--backend", "uniform"], "no/such/video.mp4"),
        (["{clip}", QUERY, "--backend", "hf"], "--model"),
        (["{clip}", QUERY, "--backend", "vllm", "--server", "http://127.0.0.1:9/v1"], "127.0.0.1:9/v1"),
    ],
)
def test_ground_user_errors_are_one_line(capsys, real_clips, argv: list[str], message: str) -> None:
    argv = [a.replace("{clip}", str(real_clips[CHARADES[0]])) for a in argv]
    assert main(["ground", *argv]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("error: ") and message in err and "\n" not in err


def _agent_json(capsys, argv: list[str]) -> dict:
    assert main(["ground", *argv, "--json"]) == 0
    out = json.loads(capsys.readouterr().out)
    jsonschema.validate(out, SCHEMA)  # the agent's output is a Prediction too, plus plan/steps/explanations
    return out


@pytest.mark.integration
def test_ground_sends_compositional_queries_through_the_agent(capsys, real_clips, tiny_models) -> None:
    """No --agent flag: the rule planner finds two sub-events, so the agent plans, composes and explains."""
    clip = real_clips[CHARADES[1]]
    argv = [str(clip), "person sits down in a chair, then eats some food", "--backend", "hf"]
    argv += [
        "--model",
        str(tiny_models["qwen2_5_vl"]),
        "--saliency-model",
        str(tiny_models["clip"]),
        "--explain",
    ]
    out = _agent_json(capsys, argv)
    assert [s["text"] for s in out["plan"]["steps"]] == [
        "person sits down in a chair",
        "person eats some food",
    ]
    assert out["plan"]["relations"] == [{"kind": "before", "a": "s1", "b": "s2"}]
    assert len(out["steps"]) == 2 and len(out["explanations"]) == len(out["pred_relevant_windows"]) >= 1
    for start_s, end_s, _ in out["pred_relevant_windows"]:
        assert 0.0 <= start_s <= end_s <= out["duration_s"] + 1e-6
    assert all(e["sentence"] for e in out["explanations"])
    # a simple query stays a single grounder call unless --agent is given
    simple = _agent_json(capsys, [str(clip), "person sits down", "--backend", "uniform"])
    assert simple["plan"] is None and simple["model_calls"] == {"grounder": 1}
    assert simple.keys() == out.keys()  # one Prediction shape, with or without the agent
    forced = _agent_json(capsys, [str(clip), "person sits down", "--backend", "uniform", "--agent"])
    assert forced["plan"]["steps"] == [{"id": "s1", "text": "person sits down"}]


# --- --backend vllm: frames decoded and encoded in a worker thread while the client is made -------------


def test_ground_vllm_counts_the_background_decode(capsys, real_clips) -> None:
    from tests.test_hostile_servers import MisbehavingServerForTests

    server = MisbehavingServerForTests("good")
    try:
        argv = [str(real_clips[CHARADES[0]]), QUERY, "--backend", "vllm", "--server", server.url]
        prediction = _ground_json(capsys, [*argv, "--max-frames", "4"])
    finally:
        server.close()
    assert server.requests == 1
    timings = prediction["timings_s"]
    assert list(timings) == ["decode", "preprocess", "model"]
    assert timings["decode"] > 0 and timings["preprocess"] > 0  # the worker's seconds, not 0.0


def test_ground_vllm_background_decode_error_is_one_line(capsys, tmp_path) -> None:
    """A file that opens but fails to decode: the worker thread's typed error is the command's one line
    (exit 2), as when decoding inline, and no request is sent."""
    from grounding_agent.errors import CorruptVideoError
    from grounding_agent.media.decode import sample_frames
    from tests.test_hostile_servers import MisbehavingServerForTests
    from tests.videogen import corrupt_middle, make_video

    good = make_video(tmp_path / "cfr.mp4", duration_s=2.0, fps=10, gop=5)
    path = corrupt_middle(good, tmp_path / "bad.mp4")
    with pytest.raises(CorruptVideoError) as inline:
        sample_frames(path, fps=10, max_frames=20)
    server = MisbehavingServerForTests("good")
    try:
        argv = [str(path), QUERY, "--backend", "vllm", "--server", server.url, "--fps", "10"]
        rc = main(["ground", *argv, "--max-frames", "20", "--max-pixels", str(160 * 120)])
    finally:
        server.close()
    err = capsys.readouterr().err
    assert rc == 2 and err == f"error: {inline.value}\n", err
    assert server.requests == 0
