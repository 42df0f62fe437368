"""Edits across clips: multi-source plans, normalised renders, scale-out (Ray) settings."""

from __future__ import annotations

from dataclasses import dataclass  # noqa: F401

__all__: list[str] = []
