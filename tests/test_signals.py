"""Model-free signals on generated videos with known events, and on the real clips."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import numpy as np
import pytest

from grounding_agent.errors import ConfigError, NotAVideoError, VideoNotFoundError
from grounding_agent.highlights.curves import visual_change
from grounding_agent.media.audio import audio_energy, has_audio
from grounding_agent.media.decode import iter_frame_chunks
from grounding_agent.types import (
    Curve,
    minmax,
    zscore,
)

FFMPEG = shutil.which("ffmpeg") or "ffmpeg"
SIZE = "160x120"


def _ffmpeg(*args: str) -> None:
    cmd = [FFMPEG, "-nostdin", "-hide_banner", "-loglevel", "error", "-y", *args]
    proc = subprocess.run(cmd, capture_output=True, text=True)
    if proc.returncode != 0:
        raise RuntimeError(f"ffmpeg failed: {' '.join(cmd)}\n{proc.stderr}")


def _encode(path: Path, video_graph: str, audio_graph: str | None, duration_s: float) -> Path:
    args = ["-f", "lavfi", "-i", video_graph]
    if audio_graph:
        args += ["-f", "lavfi", "-i", audio_graph]
    args += ["-t", str(duration_s), "-c:v", "libx264", "-preset", "ultrafast", "-pix_fmt", "yuv420p"]
    args += ["-c:a", "aac"] if audio_graph else ["-an"]
    _ffmpeg(*args, str(path))
    return path


def make_loud_segment_video(path: Path, loud_s: tuple[float, float], duration_s: float = 30.0) -> Path:
    """Moving test pattern with a quiet 440 Hz tone, 26 dB louder during `loud_s`."""
    a, b = loud_s
    audio = (
        f"sine=frequency=440:sample_rate=16000:duration={duration_s},"
        f"volume='if(between(t,{a},{b}),1.0,0.05)':eval=frame"
    )
    return _encode(path, f"testsrc2=size={SIZE}:rate=10:duration={duration_s}", audio, duration_s)


def make_motion_burst_video(path: Path, burst_s: tuple[float, float], duration_s: float = 30.0) -> Path:
    """A still grey picture; the moving test pattern shows only during `burst_s`; a steady quiet tone."""
    a, b = burst_s
    video = (
        f"color=c=gray:size={SIZE}:rate=10:duration={duration_s}[bg];"
        f"testsrc2=size={SIZE}:rate=10:duration={duration_s}[fg];"
        f"[bg][fg]overlay=enable='between(t,{a},{b - 0.05})'"
    )
    audio = f"sine=frequency=440:sample_rate=16000:duration={duration_s},volume=0.1"
    return _encode(path, video, audio, duration_s)


def make_inserted_shot_video(path: Path, shot_s: tuple[float, float], duration_s: float = 30.0) -> Path:
    """Scene change: a still blue scene, cut to a red-and-blue scene during `shot_s`, cut back. No audio."""
    a, b = shot_s
    video = (
        f"color=c=0x203060:size={SIZE}:rate=10:duration={duration_s}[bg];"
        f"color=c=0xc04030:size=80x120:rate=10:duration={duration_s}[fg];"
        f"[bg][fg]overlay=x=40:enable='between(t,{a},{b - 0.05})'"
    )
    return _encode(path, video, None, duration_s)


# --- Curve ------------------------------------------------------------------------------------------


def test_curve_validates_and_normalises():
    c = Curve("x", np.array([0.0, 1.0, 2.0]), np.array([1.0, 3.0, 5.0]))
    np.testing.assert_allclose(c.minmax().values, [0.0, 0.5, 1.0])
    np.testing.assert_allclose(c.zscore().values.mean(), 0.0, atol=1e-12)
    assert minmax(np.ones(4)).tolist() == [0, 0, 0, 0] and zscore(np.ones(3)).tolist() == [0, 0, 0]
    with pytest.raises(ConfigError, match="strictly increasing"):
        Curve("x", np.array([0.0, 0.0]), np.array([1.0, 2.0]))
    with pytest.raises(ConfigError, match="2 times but 1 values"):
        Curve("x", np.array([0.0, 1.0]), np.array([1.0]))


# --- audio ------------------------------------------------------------------------------------------


def test_audio_energy_finds_the_loud_segment(tmp_path):
    clip = make_loud_segment_video(tmp_path / "loud.mp4", (10.0, 16.0), duration_s=24.0)
    curve = audio_energy(clip, hop_s=0.5)
    assert curve is not None and curve.name == "audio"
    assert 46 <= len(curve) <= 49 and np.all(np.diff(curve.times_s) > 0)
    loud = (curve.times_s > 10.5) & (curve.times_s < 15.5)
    quiet = (curve.times_s < 9.5) | (curve.times_s > 16.5)
    # volume 1.0 vs 0.05 is 26 dB; AAC keeps it within a dB or two
    assert curve.values[loud].min() - curve.values[quiet].max() > 20


def test_audio_energy_absent_and_bad_input(tmp_path):
    silent_video = make_inserted_shot_video(tmp_path / "noaudio.mp4", (2.0, 3.0), duration_s=4.0)
    assert audio_energy(silent_video) is None and not has_audio(silent_video)
    with pytest.raises(VideoNotFoundError):
        audio_energy(tmp_path / "missing.mp4")
    garbage = tmp_path / "garbage.mp4"
    garbage.write_text("not a video\n" * 100)
    with pytest.raises(NotAVideoError):
        audio_energy(garbage)
    with pytest.raises(ConfigError):
        audio_energy(silent_video, hop_s=0)


def test_audio_energy_on_a_real_clip(real_clips):
    clip = real_clips["timer1_charades_OHOFG.mp4"]
    curve = audio_energy(clip, hop_s=1.0)
    assert curve is not None
    assert abs(curve.times_s[-1] - 35.0) < 1.0  # covers the whole 35 s clip
    assert np.ptp(curve.values) > 3.0  # real room sound is not flat


# --- visual -----------------------------------------------------------------------------------------


def test_motion_burst_shows_in_motion_curve(tmp_path):
    clip = make_motion_burst_video(tmp_path / "burst.mp4", (8.0, 14.0), duration_s=20.0)
    motion, scene = visual_change(clip, fps=2.0)
    assert len(motion) == len(scene) == 40
    inside = (motion.times_s > 8.5) & (motion.times_s < 13.5)
    outside = (motion.times_s < 7.5) | (motion.times_s > 14.5)
    assert motion.values[inside].min() > 5 * motion.values[outside].max()
    assert scene.values[inside].min() > scene.values[outside].max()


def test_inserted_shot_shows_in_scene_curve(tmp_path):
    clip = make_inserted_shot_video(tmp_path / "shot.mp4", (10.0, 14.0), duration_s=20.0)
    motion, scene = visual_change(clip, fps=2.0)
    inside = (scene.times_s >= 10.0) & (scene.times_s < 14.0)
    assert scene.values[inside].min() > 0.2 and scene.values[~inside].max() < 0.02
    cuts = motion.times_s[np.argsort(motion.values)[-2:]]
    assert sorted(np.round(cuts, 1).tolist()) == [10.0, 14.0]


@pytest.mark.parametrize("threads", [None, 1, 3])
def test_chunked_streaming_matches_one_pass(real_clips, threads):
    """Chunks decoded ahead in parallel come out in order, with the very frames of one pass."""
    clip = real_clips["univtg_charades_Y1HGC.mp4"]
    from grounding_agent.media.decode import sample_frames

    whole = sample_frames(clip, fps=2.0, max_pixels=160 * 90)
    chunks = list(
        iter_frame_chunks(clip, fps=2.0, max_pixels=160 * 90, chunk_s=6.75, threads=threads)
    )  # not a whole number of steps: rounded to one
    assert len(chunks) >= 4
    np.testing.assert_allclose(np.concatenate([c.timestamps_s for c in chunks]), whole.timestamps_s)
    np.testing.assert_array_equal(np.concatenate([c.indices for c in chunks]), whole.indices)
    np.testing.assert_array_equal(np.concatenate([c.pixels for c in chunks]), whole.pixels)


@pytest.mark.parametrize("threads", [0, -1, 1.5, True])
def test_chunked_streaming_refuses_bad_threads(real_clips, threads):
    with pytest.raises(ConfigError, match="threads"):
        next(iter_frame_chunks(real_clips["univtg_charades_Y1HGC.mp4"], fps=1.0, threads=threads))
