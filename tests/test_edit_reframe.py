"""`edit --aspect 9:16` (and 1:1, 4:5): a face-following crop (dlib's HOG face detector, from the dlib-bin
wheel). On the real clips every face the detector finds lies inside the crop window of its frame; a render
has the crop's even size and shows the source cropped where the track says."""

from __future__ import annotations

import numpy as np
import pytest

from grounding_agent.edit import plan_edit
from grounding_agent.edit.reframe import crop_size, smooth_offsets, track_faces
from grounding_agent.media.video import open_video
from tests.conftest import REAL_CLIPS, VIDEOS
from tests.test_hostile_options import assert_one_line_error, run_cli


@pytest.mark.parametrize(
    ("size", "aspect", "want"),
    [((1920, 1080), (9, 16), (606, 1080, "x")), ((480, 270), (1, 1), (270, 270, "x")),
     ((641, 361), (4, 5), (288, 360, "x")), ((1080, 1920), (16, 9), (1080, 606, "y"))],
)  # fmt: skip
def test_crop_size_is_even_and_as_large_as_fits(size, aspect, want) -> None:
    w, h, axis = crop_size(*size, aspect)
    assert (w, h, axis) == want and w % 2 == 0 and h % 2 == 0 and w <= size[0] and h <= size[1]


def test_track_follows_a_face_smoothly_and_never_loses_it() -> None:
    """A face walking across a 640-px frame, seen at 4 fps, then gone: a 202-px crop keeps it inside,
    pans no faster than needed, and drifts back to the centre when no face is found."""
    times = np.arange(0, 12, 0.25)
    faces = [((x, 100.0, x + 40.0, 140.0),) if t < 8 else () for t, x in zip(times, 20 + 60 * times)]
    offsets = smooth_offsets(times, faces, "x", 640, 202)
    for off, boxes in zip(offsets, faces, strict=True):
        for x0, _, x1, _ in boxes:
            assert off <= x0 and x1 <= off + 202
    assert np.all(np.abs(np.diff(offsets)) <= 0.6 * 202 * 0.25 + 1e-6)
    assert abs(offsets[-1] - (640 - 202) / 2) < 1.0  # no face: the centred crop


def test_aspect_render_has_the_crop_size(tmp_path, capsys) -> None:
    from tests.videogen import make_edit_video

    clip = make_edit_video(tmp_path / "c.mp4", size=(320, 180))  # 12 s
    out = tmp_path / "v.mp4"
    rc, _, err = run_cli(capsys, "edit", clip, "cut 0:01 to 0:02", "--render", out, "--aspect", "9:16")
    assert rc == 0, err
    video = open_video(out)
    assert (video.width, video.height) == (100, 180) and abs(video.duration_s - 11.0) < 0.05
    rc, _, err = run_cli(
        capsys, "edit", clip, "cut 0:01 to 0:02", "--render", tmp_path / "w.mp4", "--aspect", "3:2"
    )
    assert rc == 2 and "--aspect" in err and not (tmp_path / "w.mp4").exists()
    rc, _, err = run_cli(capsys, "edit", clip, "cut 0:01 to 0:02", "--aspect", "1:1")
    assert_one_line_error(rc, err, "--render")


@pytest.mark.slow
@pytest.mark.integration
@pytest.mark.parametrize("name", REAL_CLIPS)
def test_every_face_found_on_a_real_clip_is_inside_the_crop(name) -> None:
    """Checked on frames between the tracker's own samples (2 fps, offset 1/8 s), by the same detector."""
    from grounding_agent.edit.reframe import detector
    from grounding_agent.media.decode import sample_frames

    video = open_video(VIDEOS / name)
    track = track_faces(video, (9, 16))
    assert track.width % 2 == 0 and track.height % 2 == 0
    frames = sample_frames(video, fps=2.0, start_s=0.125, max_pixels=640 * 360)
    detect, scale = detector(), video.width / frames.pixels.shape[2]
    found, outside = 0, []
    for t, pixels in zip(frames.timestamps_s, frames.pixels, strict=True):
        x0, y0, x1, y1 = track.window_at(float(t))
        for box in detect(pixels):
            found += 1
            fx0, fy0, fx1, fy1 = (v * scale for v in box)
            if fx0 < x0 - 1 or fx1 > x1 + 1 or fy0 < y0 - 1 or fy1 > y1 + 1:
                outside.append((round(float(t), 2), box, (x0, x1)))
    assert not outside, f"{name}: {len(outside)} of {found} faces outside the crop: {outside[:5]}"
    if name == "univtg_charades_Y1HGC.mp4":
        assert found >= 10  # the clip with a face in view: the check above is not vacuous


@pytest.mark.slow
@pytest.mark.integration
def test_render_shows_the_source_cropped_where_the_track_says(tmp_path) -> None:
    from grounding_agent.edit import render
    from grounding_agent.media.decode import sample_frames

    plan = plan_edit(VIDEOS / "univtg_charades_Y1HGC.mp4", "cut 0:05 to 0:10")
    result = render(plan, tmp_path / "v.mp4", aspect="9:16", progress=False)
    video, track = open_video(result.path), track_faces(plan.video, (9, 16))
    assert (video.width, video.height) == (track.width, track.height)
    out = sample_frames(result.path, fps=0.5)
    for t_out, pixels in zip(out.timestamps_s, out.pixels, strict=True):
        t_src = float(t_out) + (5.0 if t_out >= 5.0 else 0.0)  # the 5-s cut moved the rest earlier
        src = sample_frames(plan.video, start_s=t_src, end_s=t_src + 0.05, max_frames=1).pixels[0]
        errors = {
            off: np.abs(src[:, off : off + track.width].astype(int) - pixels.astype(int)).mean()
            for off in range(0, plan.video.width - track.width + 1, 2)
        }
        expected = int(round(float(track.offset_at(t_src))))
        assert abs(min(errors, key=errors.get) - expected) <= 4, (t_out, expected)
