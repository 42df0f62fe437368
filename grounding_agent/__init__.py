"""grounding-agent."""
