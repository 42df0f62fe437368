"""The video library (`index`, `search`): channels, the store, hybrid retrieval, retrieve-then-ground."""

from __future__ import annotations

from dataclasses import dataclass  # noqa: F401

__all__: list[str] = []
