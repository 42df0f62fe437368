"""What several benches share: the spread they report, the machine they name and the caches they empty."""

from __future__ import annotations

import os
import platform
import statistics
import time
from pathlib import Path


def spread(values: list[float]) -> dict:
    return {"min": min(values), "median": statistics.median(values), "max": max(values)}


def now() -> str:
    """UTC time of a run, as every results file records it (`when`)."""
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())


def machine(**extra) -> dict:
    """Where a bench ran. The CPU is named: this VM's host is not always the same kind."""
    return {"cpu": cpuinfo("model name") or platform.processor() or "unknown", "cpus": os.cpu_count(),
            "python": platform.python_version(), "platform": platform.platform(),
            "load_avg_1m": os.getloadavg()[0], **extra}  # fmt: skip


def cpuinfo(field: str) -> str | None:
    """The first `field` of /proc/cpuinfo (None where there is none)."""
    try:
        lines = Path("/proc/cpuinfo").read_text().splitlines()
    except OSError:
        return None
    pairs = (line.split(":", 1) for line in lines if ":" in line)
    return next((value.strip() for key, value in pairs if key.strip() == field), None)


def cold_caches() -> None:
    """Forget decoded frames and video indexes, as in a fresh process."""
    from grounding_agent.media import decode as video

    video.DEFAULT_FRAME_CACHE.clear()
    video._load_index.cache_clear()


def reset_server_caches(base_url: str) -> bool:
    """Empty vLLM's prefix, multimodal and encoder caches (dev-mode endpoints); False if unavailable."""
    import httpx

    root = base_url.removesuffix("/v1")
    names = ("reset_prefix_cache", "reset_mm_cache", "reset_encoder_cache")
    codes = [httpx.post(f"{root}/{name}", timeout=30).status_code for name in names]
    return all(code == 200 for code in codes)


def latency(fn, queries) -> tuple[list[float], list]:
    """Seconds of each `fn(q)` over `queries` (after one warm-up call), and what each returned."""
    fn(queries[0])  # warm
    times, found = [], []
    for q in queries:
        t0 = time.perf_counter()
        found.append(fn(q))
        times.append(time.perf_counter() - t0)
    return times, found
