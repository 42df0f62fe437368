"""Summaries (`summarize`): shots, the budget (default 15 % of the video), diversity, knapsack."""

from __future__ import annotations

from dataclasses import dataclass  # noqa: F401

__all__: list[str] = []
