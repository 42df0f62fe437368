"""Video decoding: typed errors on broken files, real clips, sampling semantics, VFR timestamps, the cache."""

from __future__ import annotations

import math
import os
import subprocess
from pathlib import Path
from types import SimpleNamespace

import decord
import numpy as np
import pytest

from grounding_agent.errors import (
    CorruptVideoError,
    EmptyVideoError,
    NotAVideoError,
    NoVideoStreamError,
    SamplingError,
    TruncatedVideoError,
    UnsupportedCodecError,
    VideoError,
    VideoNotFoundError,
)
from grounding_agent.media import decode as decode_mod
from grounding_agent.media import video as video_mod
from grounding_agent.media.decode import sample_frames
from grounding_agent.media.frame_cache import DEFAULT_FRAME_CACHE, FrameCache
from grounding_agent.media.frame_plan import fit_max_pixels, plan_frames
from grounding_agent.media.video import open_video
from tests.conftest import REAL_CLIPS, sidecar
from tests.videogen import (
    _ffmpeg,
    corrupt_middle,
    make_audio_only,
    make_video,
    replace_bytes,
    truncate,
    write_garbage,
)


@pytest.fixture(scope="session")
def gen(tmp_path_factory) -> Path:
    """A folder of small generated videos shared by the tests below."""
    d = tmp_path_factory.mktemp("videos")
    make_video(d / "cfr.mp4", duration_s=2.0, fps=10, gop=5)  # 20 frames, keyframe every 0.5 s
    make_video(d / "cfr_moov_last.mp4", duration_s=2.0, fps=10, gop=5, faststart=False)
    make_video(d / "cfr.mkv", duration_s=4.0, fps=10, gop=5)
    make_video(d / "with_audio.mp4", duration_s=2.0, fps=10, audio=True)
    return d


def broken(gen: Path, name: str) -> Path:
    """Make one broken file (by name) next to the good ones."""
    path = gen / name
    if path.exists():
        return path
    makers = {
        "empty.mp4": lambda: path.write_bytes(b""),
        "text.mp4": lambda: write_garbage(path, text=True),
        "random.mkv": lambda: write_garbage(path),
        "cut_faststart.mp4": lambda: truncate(gen / "cfr.mp4", path),
        "cut_moov_last.mp4": lambda: truncate(gen / "cfr_moov_last.mp4", path),
        "cut_header_only.mp4": lambda: truncate(gen / "cfr_moov_last.mp4", path, fraction=0.002),
        "cut.mkv": lambda: truncate(gen / "cfr.mkv", path),
        "audio_only.m4a": lambda: make_audio_only(path),
        "audio_only.wav": lambda: make_audio_only(path),
        "forged_fourcc.mp4": lambda: replace_bytes(gen / "cfr.mp4", path, b"avc1", b"qzx9"),
        "corrupt_middle.mp4": lambda: corrupt_middle(gen / "cfr.mp4", path),
    }
    makers[name]()
    return path


MALFORMED = [
    ("empty.mp4", EmptyVideoError),
    ("text.mp4", NotAVideoError),
    ("random.mkv", NotAVideoError),
    ("cut_faststart.mp4", TruncatedVideoError),  # decord refuses it, PyAV would half-read it silently
    ("cut_moov_last.mp4", TruncatedVideoError),  # no moov index at all
    ("cut_header_only.mp4", TruncatedVideoError),
    ("cut.mkv", TruncatedVideoError),  # decord and PyAV both open it and return the first half
    ("audio_only.m4a", NoVideoStreamError),
    ("audio_only.wav", NoVideoStreamError),
    ("forged_fourcc.mp4", UnsupportedCodecError),
]


@pytest.mark.parametrize(("name", "error"), MALFORMED, ids=[m[0] for m in MALFORMED])
def test_malformed_file_raises_its_typed_error(gen, name, error):
    path = broken(gen, name)
    for call in (lambda: open_video(path), lambda: sample_frames(path, fps=5)):
        with pytest.raises(error) as info:
            call()
        message = str(info.value)
        assert "\n" not in message and str(path) in message
        assert info.value.path == str(path)


def test_missing_file_and_directory_raise_not_found(gen):
    with pytest.raises(VideoNotFoundError, match="no such file"):
        open_video(gen / "nope.mp4")
    with pytest.raises(VideoNotFoundError, match="is a directory"):
        sample_frames(gen, fps=1)


def test_fifo_and_device_say_what_they_are(tmp_path):
    fifo = tmp_path / "pipe.mp4"
    os.mkfifo(fifo)
    with pytest.raises(NotAVideoError, match=r"is a FIFO \(named pipe\), not a regular file"):
        open_video(fifo)  # must not block on opening the pipe, nor call it "empty"
    with pytest.raises(NotAVideoError, match="is a character device"):
        sample_frames("/dev/zero", fps=1)


@pytest.mark.parametrize("path", ["clip\0.mp4", 42, None, b"clip.mp4"], ids=["nul", "int", "none", "bytes"])
def test_a_path_that_cannot_name_a_file_raises_a_typed_error(path):
    with pytest.raises(VideoNotFoundError) as info:
        open_video(path)
    assert "\n" not in str(info.value)


def test_corrupt_middle_raises_when_damaged_frames_are_sampled(gen):
    path = broken(gen, "corrupt_middle.mp4")
    assert open_video(path).num_frames == 20  # the index is intact: only decoding fails
    with pytest.raises(CorruptVideoError, match="fail to decode"):
        sample_frames(path, fps=10)


@pytest.mark.parametrize(
    "kwargs",
    [
        {},
        {"fps": 0},
        {"fps": -1.0},
        {"fps": math.nan},
        {"fps": True},
        {"max_frames": 0},
        {"max_frames": 2.5},
        {"fps": 1, "max_pixels": 0},
        {"fps": 1, "start_s": -0.5},
        {"fps": 1, "start_s": 2.0},  # the video is 2.0 s long
        {"fps": 1, "start_s": 1.0, "end_s": 1.0},
        {"fps": 1, "start_s": 0.0, "end_s": math.inf},
        {"fps": 1, "start_s": "a"},
        {"fps": 1, "end_s": "1.0"},
        {"fps": 1, "start_s": True},
        {"fps": "1"},
        {"fps": [1.0]},
        {"max_frames": "8"},
        {"fps": 1, "max_pixels": 1.5},
        {"fps": 1, "cache": "yes"},
    ],
    ids=lambda kw: ",".join(f"{k}={v}" for k, v in kw.items()) or "nothing",
)
def test_bad_sampling_request_raises_sampling_error(gen, kwargs):
    with pytest.raises(SamplingError):
        sample_frames(gen / "cfr.mp4", **kwargs)


def test_every_error_is_a_video_error():
    for _, error in MALFORMED:
        assert issubclass(error, VideoError)


# --- real clips ----------------------------------------------------------------------------------------


@pytest.mark.parametrize("name", REAL_CLIPS)
def test_real_clip_metadata_and_timestamps(real_clips, name):
    path = real_clips[name]
    media = sidecar(path)["media"]
    video = open_video(path)
    assert abs(video.duration_s - media["container_duration_s"]) <= 0.2
    assert (video.width, video.height) == (media["width"], media["height"])
    assert video.num_frames == media["frames_decoded_by_ffprobe"]
    frames = sample_frames(path, fps=1.0)
    assert len(frames) == math.ceil(video.duration_s)
    assert np.all(np.diff(frames.timestamps_s) > 0)
    assert np.all(np.abs(frames.timestamps_s - np.arange(len(frames))) <= 0.5 / video.avg_fps + 1e-6)
    assert (
        frames.pixels.shape == (len(frames), video.height, video.width, 3) and frames.pixels.dtype == np.uint8
    )


def test_pixels_match_decord_on_a_clip_with_b_frames(real_clips):
    """PyAV decodes, decord indexes: the frames must be exactly the ones decord returns for those indices."""
    path = real_clips["timer1_charades_OHOFG.mp4"]
    frames = sample_frames(path, fps=3.0, start_s=4.0, end_s=20.0)
    reference = decord.VideoReader(str(path)).get_batch(frames.indices.tolist()).asnumpy()
    assert np.array_equal(frames.pixels, reference)


def test_skipping_unkept_b_frames_leaves_kept_frames_exact(tmp_path, monkeypatch):
    path = make_video(tmp_path / "b.mp4", duration_s=3.0, fps=10, gop=12, extra=("-bf", "3"))
    open_video(path)  # index it; then PyAV alone must deliver every frame (no decord fallback)
    monkeypatch.setattr(decode_mod, "decord_reader", lambda *a, **k: pytest.fail("PyAV missed frames"))
    frames = sample_frames(path, fps=3.0)
    monkeypatch.undo()
    reference = decord.VideoReader(str(path)).get_batch(frames.indices.tolist()).asnumpy()
    assert np.array_equal(frames.pixels, reference)


def test_decord_fallback_when_pyav_delivers_nothing(gen, monkeypatch):
    expected = sample_frames(gen / "cfr.mp4", fps=4)
    monkeypatch.setattr(decode_mod, "_walk_gops", lambda *args, **kwargs: None)
    again = sample_frames(gen / "cfr.mp4", fps=4)
    assert np.array_equal(again.pixels, expected.pixels)


# --- sampling semantics --------------------------------------------------------------------------------


def test_fps_sampling_takes_the_frame_nearest_each_target(gen):
    frames = sample_frames(gen / "cfr.mp4", fps=5)
    assert np.allclose(frames.timestamps_s, np.arange(10) * 0.2, atol=1e-4)
    assert frames.indices.tolist() == list(range(0, 20, 2))
    assert (frames.fps, frames.requested_fps, frames.window_s) == (5.0, 5.0, (0.0, 2.0))


def test_max_frames_lowers_the_rate_and_says_so(gen):
    frames = sample_frames(gen / "cfr.mp4", fps=10, max_frames=4)
    assert len(frames) == 4
    assert frames.requested_fps == 10.0 and frames.fps == pytest.approx(2.0)
    assert np.allclose(frames.timestamps_s, [0.0, 0.5, 1.0, 1.5], atol=1e-4)
    only_cap = sample_frames(gen / "cfr.mp4", max_frames=8)
    assert len(only_cap) == 8 and only_cap.requested_fps is None and only_cap.fps == pytest.approx(4.0)


def test_rate_above_the_video_frame_rate_keeps_each_frame_once(gen):
    frames = sample_frames(gen / "cfr.mp4", fps=25)
    assert frames.indices.tolist() == list(range(20))
    assert frames.fps == pytest.approx(10.0) and frames.requested_fps == 25.0


def test_window_limits_timestamps_and_past_end_means_to_the_end(gen):
    frames = sample_frames(gen / "cfr.mp4", fps=10, start_s=0.5, end_s=1.5)
    assert np.allclose(frames.timestamps_s, 0.5 + np.arange(10) * 0.1, atol=1e-4)
    assert frames.window_s == (0.5, 1.5)
    tail = sample_frames(gen / "cfr.mp4", fps=2, start_s=1.0, end_s=30.0)
    assert tail.window_s == (1.0, 2.0) and np.allclose(tail.timestamps_s, [1.0, 1.5], atol=1e-4)


def test_max_pixels_keeps_aspect_and_budget(gen):
    frames = sample_frames(gen / "cfr.mp4", fps=2, max_pixels=4800)
    assert frames.pixels.shape[1:] == (60, 80, 3)
    assert fit_max_pixels(160, 120, None) == (160, 120)
    assert fit_max_pixels(160, 120, 10**6) == (160, 120)
    for w, h, budget in [(1280, 720, 448 * 448), (426, 240, 12345), (7, 3, 5)]:
        fw, fh = fit_max_pixels(w, h, budget)
        assert fw * fh <= budget and abs(fw / fh - w / h) < 0.1 * w / h + 1 / fh


def test_plan_frames_matches_sample_frames_without_decoding(gen):
    plan = plan_frames(gen / "cfr.mkv", fps=3, max_frames=5, start_s=1.0, max_pixels=4800)
    frames = sample_frames(gen / "cfr.mkv", fps=3, max_frames=5, start_s=1.0, max_pixels=4800)
    assert np.array_equal(plan.indices, frames.indices) and np.array_equal(
        plan.timestamps_s, frames.timestamps_s
    )
    assert plan.frame_size == (80, 60) and plan.fps == frames.fps


def test_video_object_and_sparse_sampling_across_gops(gen):
    """Targets in different GOPs force seeks; pixels must still equal decord's for the same frames."""
    video = open_video(gen / "cfr_moov_last.mp4")
    frames = sample_frames(video, max_frames=3)
    reference = decord.VideoReader(str(video.path)).get_batch(frames.indices.tolist()).asnumpy()
    assert np.array_equal(frames.pixels, reference)
    assert frames.video == video


def test_variable_frame_rate_timestamps_are_real(tmp_path):
    """First second at 5 fps, then 15 fps. index / avg-fps is wrong there; our timestamps must not be.

    Both files are lossless from the same 15-fps source, so each sampled VFR frame must equal the source
    frame at its timestamp exactly.
    """
    lossless = ("-qp", "0")
    vfr = make_video(tmp_path / "vfr.mp4", duration_s=2.0, fps=5, vfr=True, extra=lossless)
    source = make_video(tmp_path / "src.mp4", duration_s=2.0, fps=15, extra=lossless)
    video = open_video(vfr)
    assert video.num_frames == 20  # 5 frames in the first second, 15 in the second
    frames = sample_frames(vfr, fps=10)
    naive_s = frames.indices / video.avg_fps
    assert np.max(np.abs(naive_s - frames.timestamps_s)) > 0.2  # the naive formula is off by > 0.2 s
    assert np.allclose(frames.timestamps_s, np.round(frames.timestamps_s * 15) / 15, atol=1e-3)
    src = sample_frames(source, fps=15)
    for pixels, t in zip(frames.pixels, frames.timestamps_s):
        assert np.array_equal(pixels, src.pixels[round(t * 15)])


def test_audio_track_does_not_disturb_video(gen):
    frames = sample_frames(gen / "with_audio.mp4", fps=2)
    assert len(frames) == 4 and np.allclose(frames.timestamps_s, [0, 0.5, 1.0, 1.5], atol=1e-4)


# --- cache ---------------------------------------------------------------------------------------------


def test_cache_hit_returns_identical_frames(gen):
    cache = FrameCache()
    first = sample_frames(gen / "cfr.mp4", fps=5, cache=cache)
    assert (cache.hits, cache.misses, len(cache)) == (0, 10, 10)
    second = sample_frames(gen / "cfr.mp4", fps=5, cache=cache)
    assert cache.hits == 10
    assert np.array_equal(first.pixels, second.pixels) and np.array_equal(
        first.timestamps_s, second.timestamps_s
    )
    second.pixels[:] = 0  # callers own their arrays: the cache is unaffected
    third = sample_frames(gen / "cfr.mp4", fps=5, start_s=1.0, cache=cache)
    assert cache.hits == 15 and np.array_equal(third.pixels, first.pixels[5:])


def test_cache_respects_budget_and_file_changes(tmp_path):
    path = make_video(tmp_path / "a.mp4", duration_s=1.0, fps=10)
    one_frame = 160 * 120 * 3
    cache = FrameCache(max_bytes=3 * one_frame)
    sample_frames(path, fps=10, cache=cache)
    assert len(cache) == 3 and cache.nbytes <= cache.max_bytes
    make_video(path, duration_s=1.0, fps=10, size=(160, 120), extra=("-vf", "negate"))
    os.utime(path, ns=(1, 1))  # a different mtime even on coarse clocks
    fresh = sample_frames(path, fps=10, cache=cache)
    reference = decord.VideoReader(str(path)).get_batch(list(range(10))).asnumpy()
    assert np.array_equal(fresh.pixels, reference)


def test_sample_frames_uses_default_cache_when_asked(gen):
    DEFAULT_FRAME_CACHE.clear()
    sample_frames(gen / "cfr.mkv", fps=1, cache=True)
    sample_frames(gen / "cfr.mkv", fps=1, cache=True)
    assert DEFAULT_FRAME_CACHE.hits == 4
    DEFAULT_FRAME_CACHE.clear()


def test_trailing_junk_is_not_mistaken_for_truncation(gen, tmp_path):
    for name in ("cfr.mp4", "cfr.mkv"):
        padded = tmp_path / name
        padded.write_bytes((gen / name).read_bytes() + bytes(range(7, 247)) * 4)
        assert open_video(padded).num_frames == open_video(gen / name).num_frames


# --- parallel GOP decoding and rotation ----------------------------------------------------------------


@pytest.mark.parametrize("workers", [1, 2, 3, 8])
@pytest.mark.parametrize(
    "sampling", [{"fps": 10}, {"fps": 3}, {"max_frames": 3}, {"fps": 4, "max_pixels": 4800}]
)
def test_gop_parallel_decoding_gives_the_same_frames(gen, monkeypatch, workers, sampling):
    path = gen / "cfr.mkv"  # 40 frames, a keyframe every 5: 8 GOPs to share out
    monkeypatch.setattr(decode_mod, "_DECODE_WORKERS", 1)
    serial = sample_frames(path, **sampling)
    monkeypatch.setattr(decode_mod, "_DECODE_WORKERS", workers)
    parallel = sample_frames(path, **sampling)
    np.testing.assert_array_equal(parallel.indices, serial.indices)
    assert np.array_equal(parallel.pixels, serial.pixels)


@pytest.mark.parametrize("threads", [1, 2, 5])
def test_decoding_threads_give_the_same_frames(gen, threads):
    path = gen / "cfr.mkv"
    one = sample_frames(path, fps=10, threads=1)
    assert np.array_equal(sample_frames(path, fps=10, threads=threads).pixels, one.pixels)


@pytest.mark.parametrize("threads", [0, -2, 2.0, True, "2"])
def test_decoding_threads_must_be_a_positive_whole_number(gen, threads):
    with pytest.raises(SamplingError, match="threads"):
        sample_frames(gen / "cfr.mkv", fps=1, threads=threads)


def test_gop_runs_split_at_keyframes_with_balanced_work(gen):
    index = video_mod._load_index(video_mod._file_key(gen / "cfr.mkv"))  # keyframes at 0, 5, 10, ...
    wanted = np.arange(40)
    parts = decode_mod._split_gops(index, wanted, 2)
    assert parts[0].start == 0 and parts[-1].stop == 40
    assert all(a.stop == b.start for a, b in zip(parts, parts[1:]))
    assert all(p.start % 5 == 0 for p in parts)  # whole GOPs
    parts = decode_mod._split_gops(index, np.array([0, 1, 2, 3, 4, 7]), 4)  # only two GOPs to share
    assert [(p.start, p.stop) for p in parts] == [(0, 5), (5, 6)]
    assert decode_mod._split_gops(index, wanted, 1) == [slice(0, 40)]


@pytest.mark.parametrize("workers", [2, 3])
def test_gop_runs_shrink_so_the_threads_finish_together(workers):
    # A 10-min 30-fps index with a keyframe every 250 frames, sampled at 1 fps: every frame is decoded.
    starts = np.arange(18000) / 30
    index = SimpleNamespace(starts_s=starts, key_starts_s=starts[::250], tol_s=0.5 / 30)
    wanted = np.arange(0, 18000, 30)
    parts = decode_mod._split_gops(index, wanted, workers)
    cost = [int(wanted[p.stop - 1]) + 30 - int(wanted[p.start]) for p in parts]  # frames each run decodes
    gop = 250
    assert sum(cost) == 18000 and all(wanted[p.start] % gop < 30 for p in parts)  # whole GOPs
    assert cost[0] > 18000 / (2 * workers) - gop
    # Threads take the runs in order as they come free, so whatever their speeds they end at most one of
    # the last runs apart: those are short (equal runs of 2250 frames could leave a thread idle that long).
    assert max(cost[-workers:]) < 18000 / workers * decode_mod._SHORTEST_RUN + gop
    assert len(parts) < 20  # each run costs an open + seek


@pytest.fixture(scope="module")
def rotated(tmp_path_factory) -> tuple[Path, Path]:
    """(upright clip, the same stream tagged rotate=90 as phones write it)."""
    d = tmp_path_factory.mktemp("rotated")
    upright = make_video(d / "upright.mp4", duration_s=1.0, fps=10, size=(64, 36), gop=5)
    turned = d / "rot90.mp4"
    _ffmpeg("-i", str(upright), "-c", "copy", "-metadata:s:v:0", "rotate=90", str(turned))
    return upright, turned


@pytest.mark.parametrize("max_pixels", [None, 600])
def test_rotation_metadata_is_honoured_like_ffmpeg_autorotate(rotated, max_pixels):
    upright, turned = rotated
    video = open_video(turned)
    assert (video.width, video.height) == (36, 64)  # the displayed (portrait) size
    frames = sample_frames(turned, fps=5, max_pixels=max_pixels)
    plain = sample_frames(upright, fps=5, max_pixels=None if max_pixels is None else 600)
    w, h = fit_max_pixels(36, 64, max_pixels)
    assert frames.pixels.shape[1:] == (h, w, 3)
    if max_pixels is None:  # ffmpeg turns a rotation-90 stream a quarter turn counterclockwise
        assert np.array_equal(frames.pixels, np.rot90(plain.pixels, 1, axes=(1, 2)))
    raw = subprocess.run(
        ["ffmpeg", "-nostdin", "-loglevel", "error", "-i", str(turned), "-frames:v", "1",
         "-f", "rawvideo", "-pix_fmt", "rgb24", "-"],
        capture_output=True, check=True,
    ).stdout  # fmt: skip
    first = np.frombuffer(raw, np.uint8).reshape(64, 36, 3)
    if max_pixels is None:
        assert np.abs(first.astype(int) - frames.pixels[0]).mean() < 2.0


# --- keyframe-only coarse pass -------------------------------------------------------------------------


def test_keyframes_only_takes_the_keyframe_nearest_each_target(gen):
    path = gen / "cfr.mkv"  # 4 s at 10 fps, a keyframe every 5 frames (0.5 s)
    index = video_mod._load_index(video_mod._file_key(path))
    keys = np.searchsorted(index.starts_s, index.key_starts_s - index.tol_s)
    frames = sample_frames(path, fps=1, keyframes_only=True)
    assert set(frames.indices.tolist()) <= set(keys.tolist())
    np.testing.assert_array_equal(frames.indices, [0, 10, 20, 30])
    exact = sample_frames(path, fps=10)  # the same frames decoded the ordinary way
    assert np.array_equal(frames.pixels, exact.pixels[frames.indices])
    window = plan_frames(path, fps=10, start_s=1.2, end_s=2.2, keyframes_only=True)
    np.testing.assert_array_equal(window.indices, [15, 20])  # only the window's keyframes, each once


def test_keyframe_chunks_cover_the_video_once(gen):
    from grounding_agent.media.decode import iter_frame_chunks

    chunks = list(iter_frame_chunks(gen / "cfr.mkv", fps=2, chunk_s=1.0, keyframes_only=True))
    indices = np.concatenate([c.indices for c in chunks])
    np.testing.assert_array_equal(indices, np.arange(0, 40, 5))
