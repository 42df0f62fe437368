"""`grounding-agent highlights`: text, --json, --plot, and one-line user errors."""

from __future__ import annotations

import json

import pytest

from grounding_agent.cli import main
from grounding_agent.utils.temporal import tiou
from tests.test_signals import make_loud_segment_video


@pytest.fixture(scope="module")
def loud_clip(tmp_path_factory):
    return make_loud_segment_video(tmp_path_factory.mktemp("cli") / "loud.mp4", (10.0, 16.0), duration_s=24.0)


def test_generic_without_model_json_and_plot(loud_clip, tmp_path, capsys):
    png = tmp_path / "out" / "hl.png"
    assert main(["highlights", str(loud_clip), "--top-k", "2", "--json", "--plot", str(png)]) == 0
    pred = json.loads(capsys.readouterr().out)
    assert len(pred["pred_saliency_scores"]) == 12 and len(pred["pred_relevant_windows"]) == 2
    assert tiou(pred["pred_relevant_windows"][0][:2], (10.0, 16.0)) >= 0.5
    assert pred["highlight_mode"] == "generic" and pred["signals_absent"]["clip"] == "no CLIP model given"
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and png.stat().st_size > 20_000
    assert [p.name for p in png.parent.iterdir()] == ["hl.png"]  # no temp file left


def test_generic_text_says_model_free(loud_clip, capsys):
    assert main(["highlights", str(loud_clip), "--weights", "audio=2,scene=0"]) == 0
    out = capsys.readouterr().out
    assert "only model-free signals" in out and "not used: scene (weight 0)" in out
    assert " 1 " in out and "10.00 s" in out


@pytest.mark.integration
def test_query_with_tiny_clip(loud_clip, tiny_models, tmp_path, capsys):
    args = ["highlights", str(loud_clip), "--query", "a test pattern", "--model", str(tiny_models["clip"])]
    assert main([*args, "--cache-dir", str(tmp_path), "--top-k", "3", "--json"]) == 0
    pred = json.loads(capsys.readouterr().out)
    assert pred["query"] == "a test pattern" and pred["highlight_mode"] == "query"
    assert len(pred["pred_saliency_scores"]) == 12 and len(pred["pred_relevant_windows"]) == 3
    assert main([*args, "--cache-dir", str(tmp_path), "--backend", "torch"]) == 0
    assert "query: a test pattern" in capsys.readouterr().out


@pytest.mark.parametrize(
    "extra, message",
    [
        (["--query", "a dog"], "--query needs a CLIP model"),
        (["--query", " "], "--query is empty"),
        (["--fps", "0"], "--fps must be > 0"),
        (["--weights", "volume=1"], "unknown signal"),
        (["--top-k", "0"], "--top-k must be >= 1"),
    ],
)
def test_user_errors_are_one_line(loud_clip, capsys, extra, message):
    assert main(["highlights", str(loud_clip), *extra]) == 2
    err = capsys.readouterr().err
    assert message in err and err.count("\n") == 1


def test_missing_video_is_one_line(tmp_path, capsys):
    assert main(["highlights", str(tmp_path / "nope.mp4")]) == 2
    assert "nope.mp4" in capsys.readouterr().err
