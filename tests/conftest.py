"""Shared fixtures: paths to the real data in ../shared/data, generated videos, tiny models, vLLM server."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
SHARED_DATA = REPO.parent / "shared" / "data"
VIDEOS = SHARED_DATA / "videos"
REAL_CLIPS = ["univtg_charades_Y1HGC.mp4", "timer1_charades_OHOFG.mp4", "decord_flipping_a_pancake.mkv"]


@pytest.fixture(scope="session")
def shared_data() -> Path:
    if not SHARED_DATA.is_dir():
        pytest.fail(f"real test data missing: expected {SHARED_DATA} (the shared/ folder beside the checkout)")
    return SHARED_DATA


@pytest.fixture(scope="session")
def real_clips(shared_data: Path) -> dict[str, Path]:
    """name -> path of the three real clips."""
    return {name: VIDEOS / name for name in REAL_CLIPS}


def sidecar(clip: Path) -> dict:
    """The JSON facts file written beside each real clip."""
    return json.loads(clip.with_suffix(".json").read_text())
