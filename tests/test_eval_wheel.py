"""The recipes ship with the wheel: `eval run` and `eval analyze` work from a fresh venv, outside the checkout."""

from __future__ import annotations

import json
import subprocess
import sys
import sysconfig

import pytest

from tests.conftest import REPO

pytestmark = pytest.mark.slow


def test_eval_run_from_a_wheel_in_a_fresh_venv(shared_data, tmp_path):
    wheel_dir, venv = tmp_path / "wheel", tmp_path / "venv"
    pip = [sys.executable, "-m", "pip", "--disable-pip-version-check", "-q"]
    subprocess.run(
        [*pip, "wheel", "--no-deps", "--no-build-isolation", "-w", str(wheel_dir), str(REPO)], check=True
    )
    (wheel,) = wheel_dir.glob("grounding_agent-*.whl")
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(venv)], check=True)
    subprocess.run(
        [*pip, "--python", str(venv / "bin" / "python"), "install", "--no-deps", str(wheel)], check=True
    )
    # The light dependencies come from the dev env's site-packages, added as a plain path: its .pth files
    # (the editable install pointing at the checkout) are not processed, so nothing resolves to REPO.
    purelib = subprocess.run(
        [str(venv / "bin" / "python"), "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
        capture_output=True, text=True, check=True,
    ).stdout.strip()  # fmt: skip
    with open(f"{purelib}/_dev_deps.pth", "w") as f:
        f.write(sysconfig.get_paths()["purelib"] + "\n")
    code = "import eval.runner, finetune.sft, grounding_agent as g; print(eval.runner.__file__, finetune.sft.__file__, g.__file__)"
    where = subprocess.run(
        [str(venv / "bin" / "python"), "-c", code], cwd=tmp_path, capture_output=True, text=True, check=False
    )
    assert where.returncode == 0, where.stderr
    assert all(p.startswith(purelib) for p in where.stdout.split()), where.stdout

    out = tmp_path / "run"
    gt = shared_data / "charades_sta" / "charades_sta_test.txt"
    cmd = [str(venv / "bin" / "grounding-agent"), "eval", "run", "--dataset", "charades-sta", "--gt", str(gt),
           "--backend", "uniform", "--limit", "25", "--out", str(out), "--no-progress", "--log-samples"]  # fmt: skip
    done = subprocess.run(cmd, cwd=tmp_path, capture_output=True, text=True, timeout=300, check=False)
    assert done.returncode == 0, done.stderr
    assert "# uniform on charades-sta" in done.stdout and "25 of 3720 queries" in done.stdout
    assert json.loads((out / "metrics.json").read_text())["num_queries"] == 25
    assert len((out / "samples.jsonl").read_text().splitlines()) == 25
    analyzed = subprocess.run(
        [str(venv / "bin" / "grounding-agent"), "eval", "analyze", str(out)],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        check=False,
    )
    assert analyzed.returncode == 0 and "top-1 IoU histogram" in analyzed.stdout, analyzed.stderr
