"""`grounding-agent probe`, run as users run it: the installed console script in a subprocess."""

from __future__ import annotations

import itertools
import json
import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import sidecar

CLI = Path(sys.executable).with_name("grounding-agent")


def probe(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [str(CLI), "probe", *map(str, args)], check=False, capture_output=True, text=True, timeout=120
    )


def test_probe_json_on_a_real_clip(real_clips):
    clip = real_clips["univtg_charades_Y1HGC.mp4"]
    result = probe(clip, "--fps", "1", "--json")
    assert result.returncode == 0, result.stderr
    report = json.loads(result.stdout)
    assert report["video"]["duration_s"] == pytest.approx(
        sidecar(clip)["media"]["container_duration_s"], abs=0.2
    )
    timestamps = report["sampling"]["timestamps_s"]
    assert abs(len(timestamps) - 31) <= 1
    assert all(b > a for a, b in itertools.pairwise(timestamps))
    assert report["sampling"]["fps"] == 1.0 and report["sampling"]["frame_size"] == [480, 270]


def test_probe_text_with_cap_window_and_decode(real_clips):
    clip = real_clips["timer1_charades_OHOFG.mp4"]
    result = probe(
        clip,
        "--fps",
        "2",
        "--max-frames",
        "8",
        "--start",
        "5",
        "--end",
        "25",
        "--max-pixels",
        "50000",
        "--decode",
    )
    assert result.returncode == 0, result.stderr
    assert "sampled 8 frames at 0.400 fps, asked 2" in result.stdout
    assert "window 5.00-25.00 s" in result.stdout and "decoded in" in result.stdout


def test_probe_zero_byte_file_fails_with_one_line(tmp_path):
    empty = tmp_path / "empty.mp4"
    empty.write_bytes(b"")
    result = probe(empty)
    assert result.returncode != 0
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and "empty" in lines[0] and str(empty) in lines[0]
    assert result.stdout == ""


def test_probe_bad_request_fails_with_one_line(real_clips):
    result = probe(real_clips["decord_flipping_a_pancake.mkv"], "--fps", "1", "--start", "99")
    assert result.returncode != 0
    assert len(result.stderr.strip().splitlines()) == 1 and "outside the video" in result.stderr
    window_only = probe(real_clips["decord_flipping_a_pancake.mkv"], "--start", "2")
    assert window_only.returncode != 0 and "add --fps" in window_only.stderr
