"""grounding-agent."""

from grounding_agent.parsing import format_moment, parse_moments

__all__ = ["format_moment", "parse_moments"]
