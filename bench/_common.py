"""What several benches share: the spread they report and the caches they empty between rounds."""

from __future__ import annotations

import statistics


def spread(values: list[float]) -> dict:
    return {"min": min(values), "median": statistics.median(values), "max": max(values)}


def cold_caches() -> None:
    """Forget decoded frames and video indexes, as in a fresh process."""
    from grounding_agent import video

    video.DEFAULT_FRAME_CACHE.clear()
    video._load_index.cache_clear()


def reset_server_caches(base_url: str) -> bool:
    """Empty vLLM's prefix, multimodal and encoder caches (dev-mode endpoints); False if unavailable."""
    import httpx

    root = base_url.removesuffix("/v1")
    names = ("reset_prefix_cache", "reset_mm_cache", "reset_encoder_cache")
    codes = [httpx.post(f"{root}/{name}", timeout=30).status_code for name in names]
    return all(code == 200 for code in codes)
