"""What the kill-and-resume tests of the recipes share (tests/test_finetune*.py, tests/test_heads*.py): a
recipe started in its own process group, SIGKILLed as soon as a checkpoint is there; torch on one thread."""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]


@contextlib.contextmanager
def torch_threads(count: int) -> Iterator[None]:
    """Tiny models gain nothing from intra-op threads; on a busy 2-core box OpenMP threads spinning against
    each other made a training step 10-50x slower (1-5 s vs 0.1 s measured)."""
    import torch

    before = torch.get_num_threads()
    torch.set_num_threads(count)
    try:
        yield
    finally:
        torch.set_num_threads(before)


def kill_when(cmd: list[str], ready: Callable[[], bool], timeout_s: float = 300) -> subprocess.Popen:
    """Run `cmd` (one torch thread) until `ready()`, then SIGKILL its whole process group; the dead process.
    Fails the test if the run ends first or `ready()` is not true within `timeout_s`."""
    proc = subprocess.Popen(
        cmd,
        cwd=REPO,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        start_new_session=True,  # its own group: the kill reaches the workers it started too
        env={**os.environ, "OMP_NUM_THREADS": "1"},
    )
    try:
        deadline = time.monotonic() + timeout_s
        while not ready():
            if proc.poll() is not None:
                pytest.fail(f"the recipe exited early ({proc.returncode}):\n{proc.stdout.read()[-3000:]}")
            if time.monotonic() > deadline:
                pytest.fail(f"not ready within {timeout_s} s: {' '.join(map(str, cmd))}")
            time.sleep(0.05)
    finally:
        with contextlib.suppress(ProcessLookupError):  # the group is gone if the run ended by itself
            os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()
    return proc


def trainer_checkpoint(out: Path, step: int) -> Callable[[], bool]:
    """Whether `out/checkpoint-STEP` has its trainer_state.json (the HF Trainer writes it last), whole."""
    state = out / f"checkpoint-{step}" / "trainer_state.json"

    def ready() -> bool:
        try:
            return json.loads(state.read_text())["global_step"] == step
        except (OSError, ValueError, KeyError):
            return False

    return ready
