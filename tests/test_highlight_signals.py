"""Highlight signals: speech arousal (prosody) on espeak-ng speech, applause, speech emotion with a tiny
random model, the title as a CLIP query, head/like hooks, and each window's evidence."""

from __future__ import annotations

import json

import numpy as np
import pytest

from grounding_agent.cli import main
from grounding_agent.errors import ConfigError, ModelLoadError
from grounding_agent.highlights.emotion import EmotionModel, label_arousal, parse_arousal_map, speech_pieces
from grounding_agent.highlights.prosody import analyze_prosody, yin_f0
from grounding_agent.highlights.result import HighlightResult
from grounding_agent.highlights.windows import (
    HighlightWeights,
    WindowSearch,
    clip_scores,
    generic_highlights,
)
from grounding_agent.media.transcript import Segment, Transcript, Word
from grounding_agent.types import Prediction
from grounding_agent.utils.temporal import tiou
from tests.videogen import make_video

SR = 16_000


@pytest.fixture(scope="module")
def excited_result(excited_clip):
    return generic_highlights(excited_clip.path)


@pytest.fixture(scope="module")
def plain_clip(tmp_path_factory):
    """20 s of a test pattern over a steady 440 Hz tone: no speech in it."""
    return make_video(
        tmp_path_factory.mktemp("plain") / "tone.mp4", duration_s=20.0, fps=4, size=(64, 48), audio=True
    )


# --- prosody ----------------------------------------------------------------------------------------


def test_yin_finds_the_pitch_of_a_voice_like_tone_and_none_in_noise():
    t = np.arange(1024) / SR
    frames = []
    for f0 in (90.0, 150.0, 310.0):
        frames.append(sum(np.sin(2 * np.pi * k * f0 * t) / k for k in range(1, 6)))  # harmonics, like a voice
    noise = np.random.default_rng(0).standard_normal((4, 1024))
    found = yin_f0(np.vstack([np.stack(frames), noise]), SR)
    assert found[:3] == pytest.approx([90.0, 150.0, 310.0], rel=0.02)
    assert np.isnan(found[3:]).sum() >= 3  # white noise has no period


def test_the_excited_stretch_has_the_top_arousal_and_applause(excited_clip):
    prosody = analyze_prosody(excited_clip.path)
    a, b = excited_clip.excited_s
    inside = (prosody.times_s > a) & (prosody.times_s < b)
    outside = (prosody.times_s < a - 1) | (prosody.times_s > b + 1)  # each step hears +-1 s around it
    arousal = prosody.arousal()
    per_clip = clip_scores(arousal, excited_clip.duration_s)
    assert a <= 2 * int(np.argmax(per_clip)) < b
    assert arousal.values[inside].min() > arousal.values[outside].max()
    assert arousal.values[inside].mean() - arousal.values[outside].mean() > 1.5  # in (floored) z units
    applause = prosody.applause().values
    assert applause[inside].mean() > 0.5 and applause[outside].max() < 0.3
    # what stands out: much louder, higher, faster (espeak-ng: amplitude 35 -> 190, pitch 30 -> 90, 130 -> 240 wpm)
    assert np.nanmedian(prosody.loudness_db[inside]) - np.nanmedian(prosody.loudness_db[outside]) > 10
    assert np.nanmedian(prosody.pitch_st[inside]) - np.nanmedian(prosody.pitch_st[outside]) > 6
    assert np.nanmedian(prosody.rate_per_s[inside]) > np.nanmedian(prosody.rate_per_s[outside])
    assert prosody.rate_unit == "syllables"


def test_speaking_rate_comes_from_word_times_when_a_transcript_is_given(excited_clip):
    # A transcript read from a file is input, not a model's answer: dense words at 40-44 s, sparse elsewhere.
    dense = tuple(Word("go", 40.0 + 0.25 * i, 40.0 + 0.25 * i + 0.2, 0.9) for i in range(16))
    sparse = tuple(Word("and", 48.0 + i, 48.0 + i + 0.3, 0.9) for i in range(4))
    given = Transcript(
        (Segment("go " * 16, 40.0, 44.0, 0.9, dense), Segment("and " * 4, 48.0, 52.0, 0.9, sparse)),
        duration_s=60.0,
        speech_regions=((40.0, 44.0), (48.0, 52.0)),
    )
    prosody = analyze_prosody(excited_clip.path, transcript=given)
    assert prosody.rate_unit == "words" and prosody.speech_regions_s == ((40.0, 44.0), (48.0, 52.0))
    at = {t: prosody.rate_per_s[np.argmin(np.abs(prosody.times_s - t))] for t in (42.0, 50.0)}
    assert at[42.0] == pytest.approx(4.0, abs=0.6) and at[50.0] == pytest.approx(1.0, abs=0.4)
    assert np.isnan(prosody.loudness_db[prosody.times_s < 38]).all()  # no speech there by the transcript


def test_no_speech_no_arousal(plain_clip, tmp_path):
    result = generic_highlights(plain_clip)
    assert result.absent["arousal"] == "no speech heard" and "arousal" not in result.weights
    silent = make_video(tmp_path / "silent.mp4", duration_s=4.0, fps=4, size=(64, 48))
    assert generic_highlights(silent).absent["arousal"] == "no audio stream"


# --- fusion and evidence: the acceptance clip --------------------------------------------------------


def test_generic_highlights_pick_the_excited_stretch_and_say_why(excited_clip, excited_result):
    result = excited_result
    best = result.windows[0]
    assert tiou((best.start_s, best.end_s), excited_clip.excited_s) >= 0.6, (
        result.prediction.pred_relevant_windows
    )
    assert {"arousal", "applause", "audio"} <= set(result.weights)
    evidence = result.evidence(best.start_s, best.end_s)
    named = {e.source for e in evidence}
    assert {"highlights:arousal", "highlights:applause", "highlights:audio"} <= named
    arousal = next(e for e in evidence if e.source == "highlights:arousal")
    assert arousal.kind == "audio" and "pitch +" in arousal.text and "contributes" in arousal.text
    assert best.explanation["evidence"] == [e.to_dict() for e in evidence]
    first = result.prediction.to_dict()["window_evidence"][0]
    assert [e["source"] for e in first] == [e.source for e in evidence]
    # a calm stretch is lifted by nothing the excitement is made of
    calm = {e.source for e in result.evidence(2.0, 12.0)}
    assert not {"highlights:arousal", "highlights:applause"} & calm


def test_evidence_names_only_signals_above_their_typical_level():
    scores = {"audio": np.array([0.1, 0.1, 0.9, 1.0, 0.1]), "motion": np.array([0.5, 0.5, 0.5, 0.5, 0.5])}
    fused = 0.5 * scores["audio"] + 0.5 * scores["motion"]
    result = HighlightResult(
        Prediction(0, "v", "", []),
        [],
        {**scores, "fused": fused},
        {},
        {"audio": 0.5, "motion": 0.5},
        {},
        10.0,
    )
    (only,) = result.evidence(4.0, 8.0)
    assert only.source == "highlights:audio" and only.kind == "audio" and only.score == pytest.approx(0.95)
    assert "0.50 x 0.95 = 0.47" in only.text
    assert result.evidence(0.0, 4.0) == [] and result.evidence(20.0, 30.0) == []


def test_weights_parse_the_new_signals():
    w = HighlightWeights.parse("arousal=2, applause=0, emotion=0.5, title=1.5, head=3, like=0.25")
    assert (w.arousal, w.applause, w.emotion, w.title, w.head, w.like) == (2.0, 0.0, 0.5, 1.5, 3.0, 0.25)
    assert HighlightWeights.parse("audio=2").arousal == HighlightWeights().arousal  # unnamed keep defaults
    with pytest.raises(ConfigError, match="unknown signal 'excitement'"):
        HighlightWeights.parse("excitement=1")


def test_head_and_like_scores_are_fused_and_checked(plain_clip):
    n = 10  # 20 s in 2-s clips
    head = np.zeros(n)
    head[6:8] = 1.0  # the caller's head likes 12-16 s
    only = HighlightWeights(clip=0, motion=0, scene=0, audio=0, speech=0, arousal=0, applause=0, like=0)
    result = generic_highlights(
        plain_clip, weights=only, extra_clip_scores={"head": head}, search=WindowSearch(top_k=1)
    )
    assert (
        result.weights == {"head": 1.0}
        and result.windows[0].start_s == 12.0
        and result.windows[0].end_s == 16.0
    )
    assert [e.source for e in result.evidence(12.0, 16.0)] == ["highlights:head"]
    assert result.absent["like"] == "weight 0"
    hinted = generic_highlights(plain_clip, weights=HighlightWeights(motion=0, scene=0)).absent
    assert "--like" in hinted["like"] and "--head" in hinted["head"]
    with pytest.raises(ConfigError, match="10 finite numbers"):
        generic_highlights(plain_clip, extra_clip_scores={"like": np.ones(3)})
    with pytest.raises(ConfigError, match="unknown extra signal"):
        generic_highlights(plain_clip, extra_clip_scores={"views": head})


# --- speech emotion ----------------------------------------------------------------------------------


@pytest.mark.slow
def test_emotion_model_runs_by_path_and_gives_a_curve(tiny_emotion_model, excited_clip):
    model = EmotionModel.from_pretrained(tiny_emotion_model)
    assert model.arousal.tolist() == [0.0, 0.0, 0.8, 0.0, 1.0, 0.8, 0.5, 1.0] and model.unmapped == []
    regions = [(0.5, 4.0), (26.2, 35.0)]
    curve = model.curve(excited_clip.path, regions_s=regions)
    assert curve.name == "emotion" and 120 <= len(curve) <= 121  # 60 s (AAC may pad a few ms) / 0.5 s steps
    assert np.diff(curve.times_s) == pytest.approx(0.5) and curve.times_s[0] == 0.25
    inside = ((curve.times_s >= 0.5) & (curve.times_s < 4.0)) | (
        (curve.times_s >= 26.2) & (curve.times_s < 35.0)
    )
    assert (curve.values[~inside] == 0).all()
    assert (
        (curve.values[inside] > 0) & (curve.values[inside] <= 1)
    ).all()  # expected arousal, a probability mix
    pieces = np.array(speech_pieces(regions))  # at most 4 s each, equal within a region
    assert pieces.ravel() == pytest.approx(
        [0.5, 4.0, 26.2, 29.1333, 29.1333, 32.0667, 32.0667, 35.0], abs=1e-3
    )


def test_emotion_in_the_fusion_and_its_errors(tiny_emotion_model, excited_clip, tmp_path, capsys):
    model = EmotionModel.from_pretrained(tiny_emotion_model, arousal_map={"angry": 1.0, "neutral": 0.0})
    result = generic_highlights(excited_clip.path, emotion=model, weights=HighlightWeights(motion=0, scene=0))
    assert "emotion" in result.curves and len(result.curves["emotion"]) in (120, 121)
    assert "emotion" in result.weights or result.absent["emotion"].startswith("steady")  # random weights
    assert label_arousal({0: "ANG", 1: "neu"}, {"angry": 1.0, "neutral": 0.0})[0].tolist() == [1.0, 0.0]
    with pytest.raises(ConfigError, match="none of the emotion model's labels"):
        label_arousal({0: "LABEL_0", 1: "LABEL_1"}, {"angry": 1.0})
    with pytest.raises(ConfigError, match="LABEL=NUMBER"):
        parse_arousal_map("angry=loud")
    (tmp_path / "config.json").write_text("{}")
    for bad in (tmp_path / "missing", tmp_path):
        with pytest.raises(ModelLoadError):
            EmotionModel.from_pretrained(bad)
        capsys.readouterr()  # transformers' own loading progress, before the command runs
        assert main(["highlights", str(excited_clip.path), "--emotion-model", str(bad)]) == 2
        err = capsys.readouterr().err
        assert err.startswith("error: ") and err.count("\n") == 1 and "emotion" in err


# --- the title as a query, and the CLI -----------------------------------------------------------------


@pytest.mark.slow
@pytest.mark.integration
def test_title_and_likes_are_clip_signals(tiny_models, plain_clip, tmp_path, capsys):
    from grounding_agent.highlights.clip import ClipSaliency

    saliency = ClipSaliency.from_pretrained(tiny_models["clip"], backend="torch", cache_dir=tmp_path)
    result = generic_highlights(plain_clip, saliency=saliency, title="a colourful test pattern")
    assert result.curves["title"].name == "title" and len(result.curves["title"]) >= 18
    assert result.curves["title"].values.tolist() != result.curves["clip"].values.tolist()
    assert "title" in result.weights or result.absent["title"].startswith("steady")
    assert "CLIP" in generic_highlights(plain_clip, title="a test pattern").absent["title"]
    argv = ["highlights", str(plain_clip), "--model", str(tiny_models["clip"]), "--cache-dir", str(tmp_path)]
    capsys.readouterr()
    assert main([*argv, "--backend", "torch", "--title", "a test pattern", "--like", "4-8", "--json"]) == 0
    pred = json.loads(capsys.readouterr().out)
    for name in ("title", "like"):  # computed: used, or left out as steady (random weights)
        assert name in pred["signals_used"] or pred["signals_absent"][name].startswith("steady")
    assert main([*argv, "--like", "4-80"]) == 2 and "outside the video" in capsys.readouterr().err


def test_cli_prints_the_signals_and_each_windows_evidence(excited_clip, capsys):
    assert main(["highlights", str(excited_clip.path), "--top-k", "1"]) == 0
    out = capsys.readouterr().out
    assert "arousal" in out.splitlines()[1] and "[arousal] speech arousal" in out and "[applause]" in out
    assert (
        main(["highlights", str(excited_clip.path), "--top-k", "1", "--json", "--weights", "motion=0"]) == 0
    )
    pred = json.loads(capsys.readouterr().out)
    assert tiou(pred["pred_relevant_windows"][0][:2], excited_clip.excited_s) >= 0.6
    assert "highlights:arousal" in {e["source"] for e in pred["window_evidence"][0]}


@pytest.mark.parametrize(
    "extra, message",
    [
        (["--title", "a goal"], "--title is matched by CLIP"),
        (["--like", "3-x"], "START-END"),
        (["--like", "3-5"], "--like compares clips by CLIP features"),
        (["--emotion-map", "angry=2", "--emotion-model", "."], "LABEL=NUMBER"),
        (["--query", "a goal", "--model", "/no/such", "--title", "x"], "drop --query"),
    ],
)
def test_cli_signal_options_fail_in_one_line(plain_clip, capsys, extra, message):
    assert main(["highlights", str(plain_clip), *extra]) == 2
    err = capsys.readouterr().err
    assert message in err and err.count("\n") == 1
