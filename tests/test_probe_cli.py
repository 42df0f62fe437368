"""`grounding-agent probe`, run as users run it: the installed console script in a subprocess."""

from __future__ import annotations

import itertools
import json
import os
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


@pytest.mark.parametrize("kind", ["fifo", "device"])
def test_probe_pipe_or_device_says_what_it_is(tmp_path, kind):
    if kind == "fifo":
        path = tmp_path / "pipe.mp4"
        os.mkfifo(path)
    else:
        path = Path("/dev/zero")
    result = probe(path)  # must neither hang on the pipe nor call it "empty"
    assert result.returncode == 2
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: ") and "not a regular file" in lines[0]
    assert ("FIFO" if kind == "fifo" else "character device") in lines[0] and "empty" not in lines[0]


def test_probe_reports_the_displayed_size_of_a_rotated_video(tmp_path):
    from tests.videogen import _ffmpeg, make_video

    upright = make_video(tmp_path / "upright.mp4", duration_s=1.0, fps=10, size=(64, 36))
    turned = tmp_path / "rot90.mp4"
    _ffmpeg("-i", str(upright), "-c", "copy", "-metadata:s:v:0", "rotate=90", str(turned))
    result = probe(turned, "--json")
    assert result.returncode == 0, result.stderr
    video = json.loads(result.stdout)["video"]
    assert (video["width"], video["height"]) == (36, 64)


def test_probe_keyframes_only_lists_keyframes_and_decodes_them(tmp_path):
    from tests.videogen import make_video

    clip = make_video(tmp_path / "gop5.mp4", duration_s=3.0, fps=10, gop=5)  # keyframes every 0.5 s
    result = probe(clip, "--fps", "1", "--keyframes-only", "--decode", "--json")
    assert result.returncode == 0, result.stderr
    sampling = json.loads(result.stdout)["sampling"]
    assert sampling["indices"] == [0, 10, 20] and sampling["decode_s"] >= 0
