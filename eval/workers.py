"""Workers: one grounder per `--server` (or one), each with its agent, and what the vLLM server says it
serves (recorded in `run.json`)."""

from __future__ import annotations

import argparse
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from eval.provenance import weights_identity
from eval.settings import ADAPTER_FILES, local_sha
from grounding_agent.cli.options import MODEL_BACKENDS, build_agent, build_grounder


@dataclass
class Worker:
    """One grounder (one per server), its agent (None with --no-agent) and its options."""

    grounder: Any
    args: argparse.Namespace
    agent: Any = None
    label: str = ""


def build_workers(args: argparse.Namespace) -> list[Worker]:
    """One worker per --server (vllm), or one; grounders and agents from the shared option spec."""
    per_server = [argparse.Namespace(**{**vars(args), "server": url}) for url in args.server] or [
        argparse.Namespace(**{**vars(args), "server": None})
    ]
    workers = []
    for ns in per_server if args.backend == "vllm" else per_server[:1]:
        grounder = build_grounder(ns)
        # vLLM's own in-flight cap (read lazily) must not undercut ours; the others ignore it.
        grounder.concurrency = max(grounder.concurrency, args.concurrency)
        # Baselines ignore the query: the agent only when asked for (--agent); models: per query (auto).
        use_agent = args.agent if args.backend not in MODEL_BACKENDS else args.agent is not False
        agent = build_agent(ns, grounder) if use_agent else None
        workers.append(Worker(grounder, ns, agent, ns.server or args.backend))
    return workers


def served_identity(workers: Sequence[Worker]) -> dict[str, Any] | None:
    """What the vLLM server says it serves under the grounder's name (path = `root`), with hashes."""
    grounder = workers[0].grounder
    name = grounder.served_model
    if name is None:
        return None
    try:
        models = {m["id"]: m for m in grounder.model_cards()}
    except Exception:  # noqa: BLE001 - identity is best effort; the run itself reports server errors
        return {"model": name}
    m = models.get(name) or {}
    root, parent = m.get("root"), m.get("parent")
    out = {"model": name, "root": root, "parent": parent}
    if parent:  # a LoRA: root is the adapter folder, parent the base model's name
        out["adapter_sha256"] = local_sha(root, ADAPTER_FILES)
        base = models.get(parent)
        out["config_sha256"] = local_sha((base or {}).get("root"), ["config.json"])
        out["weights"] = weights_identity((base or {}).get("root"))
    else:
        out["config_sha256"] = local_sha(root, ["config.json"])
        out["weights"] = weights_identity(root)
    return out
