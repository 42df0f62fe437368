"""On-screen text spans are timed to within one refined sampling interval: titles drawn by ffmpeg at known,
off-grid times are read by the real RapidOCR; the coarse pass (0.5 fps) finds them, the edges are bisected
at the video's frame rate. The measured errors are in docs/speech-and-text.md."""

from __future__ import annotations

import pytest

from grounding_agent.defaults import MEDIA
from grounding_agent.media.ocr import ScreenReader
from tests.videogen import _ffmpeg

FPS = 25
# (text, first second shown, last second shown): off the 2-s coarse grid; "Roadmap" and "Team" change
# within one coarse interval (a gap of 0.43 s between them), as "Questions" and "Thank You" do.
TITLES = [
    ("Welcome", 0.3, 4.1),
    ("Pricing", 5.62, 14.35),
    ("Roadmap", 15.1, 19.77),
    ("Team", 20.2, 23.45),
    ("Questions", 24.9, 28.3),
    ("Thank You", 28.7, 31.6),
]


@pytest.fixture(scope="module")
def titles(tmp_path_factory):
    path = tmp_path_factory.mktemp("titles") / "titles.mp4"
    draw = ",".join(
        f"drawtext=text='{text}':fontsize=40:fontcolor=black:x=40:y=70:enable='between(t,{a},{b})'"
        for text, a, b in TITLES
    )
    _ffmpeg("-f", "lavfi", "-i", f"color=c=white:s=480x200:r={FPS}:d=32", "-vf", draw,
            "-c:v", "libx264", "-preset", "ultrafast", "-pix_fmt", "yuv420p", str(path))  # fmt: skip
    return path


def span_errors(screen) -> list[float]:
    """|reported - true| of each title's start and end (the true end is the last shown frame's end)."""
    errors = []
    for text, a, b in TITLES:
        (match,) = screen.search(text, top_k=1)
        errors += [abs(match.start_s - a), abs(match.end_s - b)]
    return errors


@pytest.mark.slow
def test_spans_are_within_one_refined_interval(titles, tmp_path):
    reader = ScreenReader(cache_dir=tmp_path)  # the defaults: a 0.5-fps coarse pass, edges at <= 30 fps
    screen = reader.read(titles)
    refined_s = 1.0 / screen.refine_fps
    assert screen.refine_fps == FPS and reader.fps == MEDIA.ocr_fps
    errors = span_errors(screen)
    print(f"max |error| {max(errors):.3f} s over {len(TITLES)} titles (refined interval {refined_s:.3f} s)")
    assert max(errors) <= refined_s + 1e-6
    # Only the frames the bisection visits are read: far fewer than every frame of every edge window.
    assert reader.stats.edge_frames_read < 10 * 2 * len(TITLES)

    coarse = ScreenReader(cache_dir=tmp_path, refine_fps=0).read(titles)
    coarse_errors = span_errors(coarse)
    print(f"coarse pass alone: max |error| {max(coarse_errors):.3f} s")
    assert max(coarse_errors) > 5 * refined_s  # what the refinement is for
