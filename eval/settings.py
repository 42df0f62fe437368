"""What a run is: every option, the package version, model (weights fingerprint included) and prompt
identity, the GT files' and `--prior-train`'s sha256, the GT policy (`run.json`), where it ran
(`provenance`: git commit, packages, date, host; recorded, never compared), and the check that a resume
uses the same settings (or is forced, and recorded so)."""

from __future__ import annotations

import argparse
import hashlib
import json
from collections.abc import Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from eval.files import RUN_JSON
from eval.provenance import provenance, weights_identity
from grounding_agent.benchmarks.datasets import default_charades_csv
from grounding_agent.benchmarks.reading import loads_json
from grounding_agent.cli.options import MODEL_BACKENDS
from grounding_agent.errors import ConfigError, DatasetError

# Options that change speed, paths or reporting, not the answers: recorded in run.json, never compared.
# The GT files are compared by content (sha256), so a moved data folder still resumes.
RUNTIME_OPTIONS = {
    "out", "concurrency", "no_progress", "retry_errors", "force_resume", "allow_missing", "log_samples",
    "server", "timeout", "videos", "delay_s", "gt", "durations", "prior_train", "ray",
}  # fmt: skip
# Recorded but never compared: where and when a run (or a resume of it) was made.
UNCOMPARED = ("forced_resumes", "served", "provenance", "resumes")


def sha256_file(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def local_sha(folder: str | None, names: Sequence[str]) -> str | None:
    """sha256 of the first of `names` inside a local folder (None for hub ids / served names)."""
    if not folder or not Path(folder).is_dir():
        return None
    return next((sha256_file(p) for n in names if (p := Path(folder) / n).is_file()), None)


ADAPTER_FILES = ("adapter_model.safetensors", "adapter_model.bin")


def model_identity(args: argparse.Namespace) -> dict[str, Any]:
    """Name or path, config.json sha256 and adapter weights sha256 (local folders only)."""
    if args.backend not in MODEL_BACKENDS:
        return {"name": args.backend}
    local = args.model and Path(args.model).is_dir()
    return {
        "name": str(Path(args.model).resolve()) if local else args.model,
        "config_sha256": local_sha(args.model, ["config.json"]),
        "adapter": str(Path(args.adapter).resolve())
        if args.adapter and Path(args.adapter).is_dir()
        else args.adapter,
        "adapter_sha256": local_sha(args.adapter, ADAPTER_FILES),
        "weights": weights_identity(args.model) if local else None,
    }


def prompt_identity(args: argparse.Namespace) -> dict[str, Any] | None:
    if args.backend not in MODEL_BACKENDS:
        return None
    from grounding_agent.grounders.qwen_inputs import PROMPTS
    from grounding_agent.utils.prompts import load_prompt

    name = PROMPTS["multi"] if args.prompt == "grounding" and args.top_k > 1 else PROMPTS[args.prompt]
    prompt = load_prompt(name)
    text = json.dumps(prompt.templates, sort_keys=True).encode()
    return {"name": name, "version": prompt.version, "sha256": hashlib.sha256(text).hexdigest()}


def _package_version() -> str:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version("grounding-agent")
    except PackageNotFoundError:
        return "unknown"


def _jsonable(value: Any) -> Any:
    return str(value.resolve()) if isinstance(value, Path) else value


def settings_of(
    args: argparse.Namespace, n_dataset: int, n_selected: int, gt_changes: dict[str, int] | None = None
) -> dict[str, Any]:
    """run.json's content; `gt_changes`: what the GT policy did (clipped ends, dropped windows)."""
    files = {"gt": {"path": str(args.gt.resolve()), "sha256": sha256_file(args.gt), "queries": n_dataset}}
    if args.dataset == "charades-sta" and args.gt.suffix != ".jsonl":
        csv = args.durations or default_charades_csv(args.gt)
        files["durations"] = {"path": str(Path(csv).resolve()), "sha256": sha256_file(Path(csv))}
    if getattr(args, "prior_train", None) and args.backend == "prior":  # compared by content, not path
        prior = Path(args.prior_train)
        files["prior_train"] = {"path": str(prior.resolve()), "sha256": sha256_file(prior)}
    raw = bool(getattr(args, "raw_gt", False))
    return {
        "options": {k: _jsonable(v) for k, v in sorted(vars(args).items())},
        "package_version": _package_version(),
        "model": model_identity(args),
        "prompt": prompt_identity(args),
        "dataset_files": files,
        "gt_policy": {"clip_to_duration": not raw, "drop_inverted": True, "changes": dict(gt_changes or {})},
        "selected_queries": n_selected,
        "provenance": provenance(),
    }


def _flat(d: dict[str, Any], prefix: str = "") -> dict[str, Any]:
    out: dict[str, Any] = {}
    for k, v in d.items():
        if isinstance(v, dict):
            out |= _flat(v, f"{prefix}{k}.")
        else:
            out[f"{prefix}{k}"] = v
    return out


def compared(settings: dict[str, Any]) -> dict[str, Any]:
    """The settings a resume must match: all but runtime options, records of forced resumes, served identity."""
    flat = _flat({k: v for k, v in settings.items() if k not in UNCOMPARED})
    return {
        k: v
        for k, v in flat.items()
        if k.removeprefix("options.") not in RUNTIME_OPTIONS
        and not (k.startswith("dataset_files.") and k.endswith(".path"))
    }


def settings_diff(old: dict[str, Any], new: dict[str, Any]) -> dict[str, tuple[Any, Any]]:
    a, b = compared(old), compared(new)
    diff = {k: (a.get(k), b.get(k)) for k in sorted(a.keys() | b.keys()) if a.get(k) != b.get(k)}
    # A finished run resumed without a grounder has no served identity: compare it only when both have it.
    for k, v in _flat(new.get("served") or {}, "served.").items():
        if k in (olds := _flat(old.get("served") or {}, "served.")) and olds[k] != v:
            diff[k] = (olds[k], v)
    return diff


def check_settings(out: Path, settings: dict[str, Any], force: bool) -> dict[str, Any]:
    """The settings to write: new ones, or the old ones (a matching or forced resume, recorded).

    Raises:
        ConfigError: the run in `out` was made with other settings and `force` is off.
    """
    path = out / RUN_JSON
    if not path.exists():
        return settings
    try:
        old = loads_json(path.read_text(encoding="utf-8"), str(path), max_chars=None)
    except (OSError, ValueError, DatasetError) as exc:
        raise ConfigError(f"{path}: unreadable ({exc}); move the run folder away to restart") from None
    if not isinstance(old, dict) or not isinstance(old.get("options"), dict):
        raise ConfigError(f"{path}: not an eval run's settings; move the run folder away to restart")
    diff = settings_diff(old, settings)
    if diff and not force:
        shown = "; ".join(f"{k}: {a!r} -> {b!r}" for k, (a, b) in list(diff.items())[:8])
        raise ConfigError(
            f"{out} holds a run with other settings ({len(diff)} differ: {shown}); "
            "use a new --out, or --force-resume to mix answers (recorded in run.json)"
        )
    if diff:
        stamp = datetime.now(UTC).isoformat(timespec="seconds")
        forced = {"at": stamp, "changed": {k: list(v) for k, v in diff.items()}}
        old["forced_resumes"] = [*old.get("forced_resumes", []), forced]
    if settings.get("served") and not old.get("served"):
        old["served"] = settings["served"]
    if settings.get("provenance"):  # each resume's date, host and checkout, beside the first run's
        old["resumes"] = [*old.get("resumes", []), settings["provenance"]]
    return old
