"""A local two-node Ray cluster for benches and tests: a head and a worker node of one CPU each on 127.0.0.1.

`ray start` registers the machine's interface address whatever it is told, so the cluster runs inside
private network and PID namespaces (`unshare -n -p`, root only): loopback is all it sees, and its `ray stop`
reaches only the cluster's own processes, never another Ray on the machine.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

BIN = Path(sys.executable).parent
PORT = 6390
ADDRESS = f"127.0.0.1:{PORT}"


def can_start() -> bool:
    return os.geteuid() == 0 and shutil.which("unshare") is not None


def two_node_cluster(
    commands: list[str], timeout_s: float = 480, env: dict[str, str] | None = None
) -> subprocess.CompletedProcess:
    """Run `commands` (shell lines, `set -e`) against the cluster at `ADDRESS`; it is stopped afterwards.
    `env` is added to the environment of the nodes (their workers inherit it) and the commands."""
    temp = tempfile.mkdtemp(prefix="ray", dir="/tmp")  # short: Ray's socket paths live under it
    script = "\n".join([
        "set -e", "ip link set lo up",
        f"{BIN}/ray start --head --port={PORT} --num-cpus=1 --include-dashboard=false --disable-usage-stats "
        f"--temp-dir={temp} > {temp}/head.log 2>&1",
        f"{BIN}/ray start --address={ADDRESS} --num-cpus=1 > {temp}/worker.log 2>&1",
        f"trap '{BIN}/ray stop --force > /dev/null 2>&1' EXIT",
        *commands,
    ])  # fmt: skip
    env = {**os.environ, **(env or {}), "RAY_USAGE_STATS_ENABLED": "0", "PATH": f"{BIN}:{os.environ['PATH']}"}
    try:
        return subprocess.run(
            ["unshare", "-n", "-p", "-f", "--mount-proc", "bash", "-c", script],
            env=env, capture_output=True, text=True, timeout=timeout_s, check=False,
        )  # fmt: skip
    finally:
        shutil.rmtree(temp, ignore_errors=True)
