"""Where and with what a run was made, for `run.json`: the checkout's git commit (and whether it was dirty),
package versions, the date, the host (CPU, GPU), and a cheap fingerprint of a model's weights.

Date, host and checkout are recorded, never compared on resume (a run resumed on another machine the
next day is the same run); the weights fingerprint is part of the model identity and is compared.
"""

from __future__ import annotations

import hashlib
import os
import platform
import shutil
import socket
import subprocess
from datetime import UTC, datetime
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path
from typing import Any

from grounding_agent.defaults import EVAL

# Client-side packages whose versions can change an answer or a number (None when not installed).
PACKAGES = (
    "grounding-agent", "numpy", "torch", "transformers", "accelerate", "peft", "safetensors", "vllm",
    "qwen-vl-utils", "decord", "av", "httpx2", "tenacity", "openai", "langchain-core", "onnxruntime",
)  # fmt: skip
GIT_TIMEOUT_S = 10.0
CHECKOUT = Path(__file__).resolve().parents[1]  # the folder holding eval/ and grounding_agent/


def packages() -> dict[str, str | None]:
    out: dict[str, str | None] = {}
    for name in PACKAGES:
        try:
            out[name] = version(name)
        except PackageNotFoundError:
            out[name] = None
    return out


def _git(*argv: str) -> str | None:
    if shutil.which("git") is None:
        return None
    try:
        done = subprocess.run(
            ["git", "-C", str(CHECKOUT), *argv], capture_output=True, text=True, timeout=GIT_TIMEOUT_S
        )
    except (OSError, subprocess.SubprocessError):
        return None
    return done.stdout if done.returncode == 0 else None


def git_state() -> dict[str, Any] | None:
    """The checkout's commit and whether tracked files differ from it; None outside a git checkout
    (an installed wheel)."""
    top = _git("rev-parse", "--show-toplevel")
    # A wheel installed in a venv inside some repo would otherwise report that repo's commit.
    if top is None or Path(top.strip()).resolve() != CHECKOUT:
        return None
    commit = _git("rev-parse", "HEAD")
    if commit is None:
        return None
    status = _git("status", "--porcelain", "--untracked-files=no")
    return {"commit": commit.strip(), "dirty": None if status is None else bool(status.strip())}


def _cpu() -> str:
    try:
        with open("/proc/cpuinfo", encoding="utf-8", errors="replace") as f:
            for line in f:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def _gpus() -> list[str]:
    """GPU names from nvidia-smi (no torch import: a model-free run must stay fast)."""
    if shutil.which("nvidia-smi") is None:
        return []
    query = ["nvidia-smi", "--query-gpu=name,memory.total,driver_version", "--format=csv,noheader"]
    try:
        done = subprocess.run(query, capture_output=True, text=True, timeout=GIT_TIMEOUT_S)
    except (OSError, subprocess.SubprocessError):
        return []
    return [line.strip() for line in done.stdout.splitlines() if line.strip()] if done.returncode == 0 else []


def host() -> dict[str, Any]:
    return {
        "hostname": socket.gethostname(),
        "platform": platform.platform(),
        "python": platform.python_version(),
        "cpu": _cpu(),
        "cpu_count": os.cpu_count(),
        "gpus": _gpus(),
    }


def provenance() -> dict[str, Any]:
    """Recorded in run.json, never compared on resume."""
    return {
        "date": datetime.now(UTC).isoformat(timespec="seconds"),
        "git": git_state(),
        "packages": packages(),
        "host": host(),
    }


def _safetensors_header(f: Any, size: int) -> bytes:
    """The 8-byte length and the JSON header of a safetensors file (names, dtypes, shapes, offsets)."""
    head = f.read(8)
    n = int.from_bytes(head, "little") if len(head) == 8 else -1
    if not 0 < n <= min(EVAL.safetensors_max_header, size - 8):
        return b"not-safetensors:" + head
    return head + f.read(n)


def weight_fingerprint(path: Path) -> str:
    """sha256 of a weights file's size, safetensors header (when it is one) and first and last
    `EVAL.weights_sample_bytes` of data: a few MB read per file, never the whole file, yet two
    fine-tunes of one architecture (same header) differ in their bytes."""
    h = hashlib.sha256()
    size = path.stat().st_size
    h.update(f"{path.name}\0{size}\0".encode())
    with open(path, "rb") as f:
        if path.suffix == ".safetensors":
            h.update(_safetensors_header(f, size))
        h.update(f.read(EVAL.weights_sample_bytes))
        f.seek(max(f.tell(), size - EVAL.weights_sample_bytes))
        h.update(f.read(EVAL.weights_sample_bytes))
    return h.hexdigest()


WEIGHT_GLOBS = ("*.safetensors", "*.safetensors.index.json", "*.bin", "*.bin.index.json", "*.pt", "*.gguf")


def weights_identity(folder: str | os.PathLike | None) -> dict[str, Any] | None:
    """{"files": n, "sha256": ...} over every weights file (and index) of a local model folder; None for
    hub ids and served names (nothing local to read)."""
    if not folder or not Path(folder).is_dir():
        return None
    files = sorted({p for g in WEIGHT_GLOBS for p in Path(folder).glob(g) if p.is_file()})
    h = hashlib.sha256()
    try:
        for p in files:
            digest = (
                hashlib.sha256(p.read_bytes()).hexdigest()
                if p.name.endswith(".json")  # an index is small: hash all of it
                else weight_fingerprint(p)
            )
            h.update(f"{p.name}\0{digest}\n".encode())
    except OSError as exc:
        return {"files": len(files), "sha256": None, "error": exc.strerror or str(exc)}
    return {"files": len(files), "sha256": h.hexdigest() if files else None}
