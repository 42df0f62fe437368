"""On-screen text with the real RapidOCR models (shipped in its wheel) on a generated slide video."""

from __future__ import annotations

import pytest

from grounding_agent.media.ocr import ScreenReader, ScreenText, ocr_query
from grounding_agent.utils.temporal import tiou
from tests.videogen import _ffmpeg

SLIDES = [("Introduction", 0.0, 3.0), ("Quarterly Results", 3.0, 6.0), ("Thank You", 6.0, 9.0)]


@pytest.fixture(scope="module")
def slides(tmp_path_factory):
    path = tmp_path_factory.mktemp("slides") / "slides.mp4"
    draw = ",".join(
        f"drawtext=text='{text}':fontsize=36:fontcolor=black:x=30:y=70:enable='between(t,{a},{b - 0.01})'"
        for text, a, b in SLIDES
    )
    _ffmpeg("-f", "lavfi", "-i", "color=c=white:s=480x200:r=5:d=9", "-vf", draw,
            "-c:v", "libx264", "-preset", "ultrafast", "-pix_fmt", "yuv420p", str(path))  # fmt: skip
    return path


@pytest.mark.slow
def test_slide_title_is_found_when_it_is_shown_and_read_once_per_slide(slides, tmp_path):
    reader = ScreenReader(fps=1.0, cache_dir=tmp_path)
    screen = reader.read(slides)
    assert reader.stats.frames_read <= 4 < len(screen.frames)  # a slide that stays up is read once
    query = ocr_query("when does the slide titled Quarterly Results appear")
    best = screen.search(query, top_k=1)[0]
    assert "quarterly results" in best.text.lower()
    assert tiou((best.start_s, best.end_s), (3.0, 6.0)) >= 0.6
    assert screen.text_between(6.0, 9.0) == ["Thank You"]
    assert best.to_evidence().kind == "ocr"

    again = ScreenReader(fps=1.0, cache_dir=tmp_path)
    cached = again.read(slides)
    assert cached.from_cache and cached == screen and again.stats.frames_read == 0


def test_screen_text_round_trips_and_searches_without_a_model():
    data = {"fps": 1.0, "duration_s": 4.0, "model": "m", "frames": [
        {"time_s": 0.0, "lines": []},
        {"time_s": 1.0, "lines": [["Chapter Two", 0.98, [0, 0, 10, 5]]]},
        {"time_s": 2.0, "lines": [["Chapter Two", 0.97, [0, 0, 10, 5]]]},
        {"time_s": 3.0, "lines": [["The End", 0.99, [0, 0, 10, 5]]]},
    ]}  # fmt: skip
    screen = ScreenText.from_dict(data)
    assert ScreenText.from_dict(screen.to_dict()) == screen
    (match,) = screen.search("chapter 2wo", top_k=1, min_score=0.6)
    assert (match.start_s, match.end_s) == (1.0, 3.0)
    assert screen.search("nothing like it") == []


@pytest.mark.parametrize(
    ("query", "text"),
    [
        ("when does the slide titled Quarterly Results appear", "Quarterly Results"),
        ("when is 'EXIT' shown on screen", "EXIT"),
        ("the sign reads 'open'", "open"),
        ("he says 'hi'", None),
        ("the man runs", None),
    ],
)
def test_ocr_query(query, text):
    assert ocr_query(query) == text
