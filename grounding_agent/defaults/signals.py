"""Highlight signals: speech arousal (prosody), speech emotion, title queries, per-window evidence."""

from __future__ import annotations

from dataclasses import dataclass  # noqa: F401

__all__: list[str] = []
