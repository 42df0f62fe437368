"""Containers whose time does not start at zero: an edit list (`ffmpeg -ss X -c copy`, or a re-encode with a
negative `-output_ts_offset`), a negative `-itsoffset` in Matroska, a negative `-output_ts_offset` in MPEG-TS.

Time zero is the first presented frame everywhere: probe's duration and frame count are the presented
content's, frame times start at 0 and match PyAV's presented pts minus the first one, sampled pixels are the
presented frames', audio is aligned to the picture, and an edit plans, exports and renders in [0, duration].
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import av
import numpy as np
import pytest

from grounding_agent.media.audio import audio_energy, iter_audio
from grounding_agent.media.decode import sample_frames
from grounding_agent.media.video import frame_times, open_video, time_origin
from tests.test_hostile_options import assert_one_line_error, run_cli
from tests.videogen import _ffmpeg

FPS = 25
SOURCE_S = 8.0
ONSET_S = 3.0  # the source's tone starts here (digital silence before)
COPY = ["-c", "copy"]

# name -> ffmpeg arguments turning the source into it (input options first, then output options).
KINDS = {
    "editlist_cut.mp4": (["-ss", "2.3"], COPY),
    "editlist_offset.mp4": (
        [],
        ["-c:v", "libx264", "-preset", "ultrafast", "-c:a", "aac", "-output_ts_offset", "-2"],
    ),  # fmt: skip
    "itsoffset.mkv": (["-itsoffset", "-2"], COPY),
    "negative_offset.mkv": ([], [*COPY, "-output_ts_offset", "-2", "-avoid_negative_ts", "disabled"]),
    "negative_offset.ts": ([], [*COPY, "-output_ts_offset", "-2"]),
}
# Kinds whose audio and picture move together (no cut inside the source), so the tone starts at ONSET_S
# minus whatever the first presented frame lost.
SHIFTED_TOGETHER = ["itsoffset.mkv", "negative_offset.ts"]


@pytest.fixture(scope="module")
def source(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("hostile_containers") / "source.mp4"
    tone = f"aevalsrc=exprs='if(gte(t,{ONSET_S}),0.5*sin(2*PI*440*t),0)':s=16000:d={SOURCE_S}"
    _ffmpeg("-f", "lavfi", "-i", f"testsrc2=size=160x120:rate={FPS}:duration={SOURCE_S}",
            "-f", "lavfi", "-i", tone, "-c:v", "libx264", "-preset", "ultrafast", "-pix_fmt", "yuv420p",
            "-g", "50", "-c:a", "aac", "-shortest", str(path))  # fmt: skip
    return path


@pytest.fixture(scope="module")
def hostile(source: Path) -> dict[str, Path]:
    out = {}
    for name, (before, after) in KINDS.items():
        out[name] = source.parent / name
        _ffmpeg(*before, "-i", str(source), *after, str(out[name]))
    return out


def _presented(path: Path) -> tuple[np.ndarray, list[np.ndarray]]:
    """PyAV's presented frames (those with a timestamp, edit-list pre-roll discarded): times from the
    first one, and pixels."""
    with av.open(str(path)) as container:
        stream = container.streams.video[0]
        frames = [f for f in container.decode(stream) if f.pts is not None]
        pts = np.array([f.pts for f in frames], dtype=np.float64) * float(stream.time_base)
        return np.round(pts - pts.min(), 6), [f.to_ndarray(format="rgb24") for f in frames]


def _digest(folder: Path) -> dict[str, str]:
    return {
        p.name: hashlib.sha256(p.read_bytes()).hexdigest() for p in sorted(folder.iterdir()) if p.is_file()
    }


@pytest.mark.parametrize("name", KINDS)
def test_probe_counts_the_presented_frames(hostile, name):
    times, _ = _presented(hostile[name])
    video = open_video(hostile[name])
    assert abs(video.num_frames - len(times)) <= 1, (video.num_frames, len(times))
    presented_s = times[-1] + 1.0 / FPS
    assert abs(video.duration_s - presented_s) <= 1.0 / FPS + 1e-3, (video.duration_s, presented_s)
    starts, keys = frame_times(hostile[name])
    assert starts[0] == 0.0 and keys[0] == 0.0 and (keys >= 0).all()
    n = min(len(starts), len(times))
    np.testing.assert_allclose(starts[:n], times[:n], atol=2e-3)


@pytest.mark.parametrize("name", KINDS)
def test_sampled_frames_are_the_presented_ones(hostile, name):
    times, pixels = _presented(hostile[name])
    frames = sample_frames(hostile[name], fps=2.0)
    assert frames.timestamps_s[0] == 0.0 and frames.timestamps_s[-1] < open_video(hostile[name]).duration_s
    for t, got in zip(frames.timestamps_s, frames.pixels, strict=True):
        want = pixels[int(np.argmin(np.abs(times - t)))]
        assert np.abs(got.astype(int) - want).mean() < 1.0, t


@pytest.mark.parametrize("name", SHIFTED_TOGETHER)
def test_audio_counts_from_the_first_frame(hostile, source, name):
    """The tone starts where it does in the source (relative to the picture), and the audio is as long."""
    hop = 0.02
    curve = audio_energy(hostile[name], hop_s=hop)
    onset = float(curve.times_s[np.argmax(curve.values > -40)]) - hop / 2
    assert abs(onset - ONSET_S) <= 2 * hop, onset
    audio_s = sum(block.size for block in iter_audio(hostile[name])) / 16000
    assert abs(audio_s - open_video(hostile[name]).duration_s) <= 0.1, audio_s


def test_edit_list_offsets_are_reported(hostile):
    """The clocks the ffmpeg command line and PyAV use, where time zero lies on them."""
    assert time_origin(hostile["negative_offset.ts"]).ffmpeg_s > 0.0  # the audio starts before the picture
    assert time_origin(hostile["itsoffset.mkv"]).container_s > 0.0
    assert time_origin(hostile["editlist_cut.mp4"]).pre_roll_s > 0.0  # the GOP's pictures before 2.3 s
    assert time_origin(hostile["negative_offset.ts"]).pre_roll_s == 0.0


@pytest.mark.parametrize("name", KINDS)
def test_edit_plans_and_exports_inside_the_video(hostile, name, tmp_path, capsys):
    import opentimelineio as otio

    before = _digest(hostile[name].parent)
    otio_path, edl_path = tmp_path / "cut.otio", tmp_path / "cut.edl"
    rc, out, err = run_cli(capsys, "edit", hostile[name], "cut 0:01 to 0:02", "--json",
                           "--export", otio_path, "--export", edl_path)  # fmt: skip
    assert rc == 0, err
    plan = json.loads(out)
    duration = open_video(hostile[name]).duration_s
    assert all(0.0 <= s["start_s"] <= s["end_s"] <= duration + 1e-6 for s in plan["segments"]), plan
    assert abs(plan["kept_s"] - (duration - 1.0)) <= 1.0 / FPS + 1e-6, plan["kept_s"]
    for path in (otio_path, edl_path):
        timeline = otio.adapters.read_from_file(str(path), rate=FPS) if path.suffix == ".edl" else (
            otio.adapters.read_from_file(str(path)))  # fmt: skip
        clips = list(timeline.video_tracks()[0].find_clips())
        assert len(clips) == 2, path
        assert clips[0].source_range.start_time.to_seconds() == pytest.approx(0.0, abs=1e-6)
        assert clips[1].source_range.start_time.to_seconds() == pytest.approx(2.0, abs=1.0 / FPS)
        assert timeline.duration().to_seconds() == pytest.approx(plan["kept_s"], abs=1.0 / FPS)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["cut.edl", "cut.otio"]
    assert _digest(hostile[name].parent) == before


@pytest.mark.slow
@pytest.mark.parametrize("name", KINDS)
def test_accurate_render_cuts_on_the_presented_frames(hostile, name, tmp_path, capsys):
    before = _digest(hostile[name].parent)
    out_path = tmp_path / "out.mp4"
    rc, out, err = run_cli(capsys, "edit", hostile[name], "cut 0:01 to 0:02", "--json", "--render", out_path)
    assert rc == 0, err
    plan = json.loads(out)
    rendered = open_video(out_path)
    assert abs(rendered.duration_s - plan["kept_s"]) <= 1.0 / FPS + 1e-3, (
        rendered.duration_s,
        plan["kept_s"],
    )
    # The frame after the cut is the source's presented frame at 2.0 s, not its neighbour.
    got = sample_frames(out_path, fps=1.0, start_s=1.0, end_s=1.01).pixels[0].astype(int)
    times, pixels = _presented(hostile[name])
    at_cut = pixels[int(np.argmin(np.abs(times - 2.0)))]
    before_cut = pixels[int(np.argmin(np.abs(times - (2.0 - 1.0 / FPS))))]
    assert np.abs(got - at_cut).mean() < 4.0
    assert np.abs(got - at_cut).mean() < np.abs(got - before_cut).mean()
    first = sample_frames(out_path, fps=1.0, end_s=0.01).pixels[0].astype(int)
    assert np.abs(first - pixels[0]).mean() < 4.0
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out.mp4"]
    assert _digest(hostile[name].parent) == before


@pytest.mark.slow
@pytest.mark.parametrize("name", KINDS)
def test_copy_render_counts_from_the_first_frame_or_says_why_not(hostile, name, tmp_path, capsys):
    """Stream copy: in / out points on the container's clock; a start hidden by an edit list is refused."""
    before = _digest(hostile[name].parent)
    out_path = tmp_path / "copy.mp4"
    rc, out, err = run_cli(
        capsys, "edit", hostile[name], "cut 0:01 to 0:02", "--json", "--render", out_path, "--copy"
    )
    if time_origin(hostile[name]).pre_roll_s > 0:
        assert_one_line_error(rc, err, "edit list", "render without --copy")
        assert list(tmp_path.iterdir()) == []
    else:
        assert rc == 0, err
        render = json.loads(out)["outputs"]["render"]
        assert abs(render["rendered_s"] - render["widened_s"]) <= 1.0 / FPS + 1e-3, render
        assert sorted(p.name for p in tmp_path.iterdir()) == ["copy.mp4"]
    assert _digest(hostile[name].parent) == before
