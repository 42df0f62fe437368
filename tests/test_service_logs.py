"""`grounding-agent api` logs through `logging` on stderr: a start line (address, media root, backend) and one
access line per request (method, path, status, duration), never a request body; `--log-level warning`
silences them."""

from __future__ import annotations

import re
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest

from grounding_agent.grounders.serving import free_port

CLI = Path(sys.executable).parent / "grounding-agent"
ACCESS = re.compile(r"grounding_agent\.access: (GET|POST) (/\S*) (\d{3}) (\d+\.\d) ms$")


def run_api(media: Path, *extra: str) -> tuple[list[str], str]:
    """Start the API, wait for its health route, make two more requests, stop it: (stderr lines, base)."""
    port = free_port()
    cmd = [str(CLI), "api", "--media-root", str(media), "--backend", "uniform", "--port", str(port), *extra]
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 60
        while True:
            try:
                httpx.get(f"{base}/nothing-here", timeout=1)
                break
            except httpx.TransportError:
                assert proc.poll() is None, proc.stderr.read()
                assert time.monotonic() < deadline, "the API did not come up in 60 s"
                time.sleep(0.2)
        assert httpx.get(f"{base}/v1/health").status_code == 200
        secret = {"video": "missing.mp4", "query": "a secret query body"}
        assert httpx.post(f"{base}/v1/ground", json=secret).status_code == 404
    finally:
        proc.terminate()
        _, err = proc.communicate(timeout=30)
    return err.splitlines(), base


def test_api_logs_a_start_line_and_one_access_line_per_request(tmp_path):
    lines, base = run_api(tmp_path)
    (start,) = [ln for ln in lines if "grounding_agent.service" in ln]
    assert f"listening on {base}" in start and f"media root {tmp_path.resolve()}" in start
    assert "backend uniform" in start
    access = [m.groups() for ln in lines if (m := ACCESS.search(ln))]
    # The first successful probe of /nothing-here, then the two requests (earlier probes may have failed).
    assert access[-2:] == [
        ("GET", "/v1/health", "200", access[-2][3]),
        ("POST", "/v1/ground", "404", access[-1][3]),
    ]
    assert access[-3][:3] == ("GET", "/nothing-here", "404")
    assert not any("secret" in ln for ln in lines)  # never a body


@pytest.mark.parametrize("level", ["warning"])
def test_log_level_silences_them(tmp_path, level):
    lines, _ = run_api(tmp_path, "--log-level", level)
    assert not [ln for ln in lines if "grounding_agent.service" in ln or ACCESS.search(ln)]
