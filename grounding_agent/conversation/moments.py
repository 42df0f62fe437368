"""Small rules a turn applies to moments: a valid query, a moment widened to one sampled frame, dedupe keys."""

from __future__ import annotations

from grounding_agent.defaults import LIMITS
from grounding_agent.errors import ConfigError
from grounding_agent.grounders.base import at_least
from grounding_agent.types import TIME_EPS_S, Moment


def check_query(query: str, top_k: int) -> str:
    if not isinstance(query, str) or not query.strip():
        raise ConfigError("the query is empty; describe the moment to find")
    LIMITS.check_count(top_k, "top_k")
    return LIMITS.check_text(query.strip())


def widen(m: Moment, min_s: float, lo: float, hi: float) -> Moment | None:
    """`m` grown around its centre to `min_s` inside [lo, hi] (None if the window is shorter)."""
    if m.length_s < min_s - TIME_EPS_S and hi - lo < min_s - TIME_EPS_S:
        return None
    return at_least(m, min_s, hi, start_s=lo)


def moment_key(m: Moment) -> tuple[float, float]:
    return round(m.start_s, 3), round(m.end_s, 3)


def unit_score(score: float) -> float:
    return min(1.0, max(0.0, float(score)))
