"""Learned highlight heads (VCL, Less is More, engagement, TaoHighlight): loading, personalization."""

from __future__ import annotations

from dataclasses import dataclass  # noqa: F401

__all__: list[str] = []
