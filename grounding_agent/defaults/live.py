"""Live streams (`watch`): sampling, the ring recording, alerts, online highlights, webhooks, degradation."""

from __future__ import annotations

from dataclasses import dataclass  # noqa: F401

__all__: list[str] = []
