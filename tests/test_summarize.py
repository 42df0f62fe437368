"""`summarize`: shots, importance, a knapsack to the budget in frames, an EditPlan every surface can use.

Real clips (../shared/data/videos), a generated clip with cuts at known times, the highlight acceptance clip
(tests/excited_clip.py: calm speech, one loud, fast, high-pitched stretch over applause), an espeak-ng talk
transcribed by real Whisper, and (one slow test) a generated 10-minute clip.
"""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path

import numpy as np
import pytest

from grounding_agent.cli import main
from grounding_agent.errors import SummaryError
from grounding_agent.summaries import budget_s, summarize
from grounding_agent.summaries.keyshots import budget_frames
from grounding_agent.summaries.segment import split_long_shots
from grounding_agent.summaries.shots import detect_shots
from tests.videogen import make_edit_video

CLIP = "timer1_charades_OHOFG.mp4"  # 35.14 s at 9.53 fps, one long scene


@pytest.fixture(scope="module")
def clip(real_clips) -> Path:
    return real_clips[CLIP]


@pytest.fixture(scope="module")
def cuts_video(tmp_path_factory) -> Path:
    colours = ((0.0, "red"), (4.12, "green"), (9.32, "blue"), (20.04, "yellow"))
    return make_edit_video(tmp_path_factory.mktemp("cuts") / "cuts.mp4", duration_s=30.0, colours=colours)


def kept_frames_in_otio(path: Path) -> list[tuple[int, int]]:
    import opentimelineio as otio

    timeline = otio.adapters.read_from_file(str(path))
    track = timeline.video_tracks()[0]
    out = []
    for clip in track.find_clips():
        r = clip.source_range
        out.append((round(r.start_time.value), round(r.start_time.value + r.duration.value)))
    return out


def ffprobe_video_s(path: Path) -> float:
    """The video stream's duration as ffprobe reads it."""
    cmd = ["ffprobe", "-v", "error", "-select_streams", "v:0", "-show_entries", "stream=duration",
           "-of", "default=nw=1:nk=1", str(path)]  # fmt: skip
    return float(subprocess.run(cmd, check=True, capture_output=True, text=True).stdout.strip())


# --- the budget ----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("seconds", "ratio", "match"),
    [
        (0, None, "more than 0 seconds"),
        (-3, None, "more than 0 seconds"),
        (None, 0, "above 0 and below 1"),
        (None, 1.0, "above 0 and below 1"),
        (None, 1.5, "above 0 and below 1"),
        (60, None, "not shorter than the video"),
        (5, 0.1, "not both"),
    ],
)
def test_a_bad_budget_is_refused_in_one_line(seconds, ratio, match) -> None:
    with pytest.raises(SummaryError, match=match) as info:
        budget_s(30.0, seconds, ratio)
    assert "\n" not in str(info.value)


def test_the_budget_defaults_to_15_percent_and_says_itself() -> None:
    assert budget_s(600.0) == (90.0, "15 % (90.0 s)")
    assert budget_s(600.0, seconds=30) == (30.0, "30 s (5.0 %)")


# --- shots ---------------------------------------------------------------------------------------


def test_long_shots_split_where_the_score_changes_else_evenly() -> None:
    fused = np.array([0.1] * 13 + [0.9] * 5 + [0.1] * 12)  # 2-s clips: high from 26 s to 36 s
    bounds = split_long_shots(np.array([0.0, 60.0]), fused, max_shot_s=8.0)
    assert {26.0, 36.0} <= set(bounds.tolist()) and np.diff(bounds).max() <= 8.0 + 1e-9
    flat = split_long_shots(np.array([0.0, 60.0]), np.zeros(30), max_shot_s=8.0)
    np.testing.assert_allclose(np.diff(flat), 7.5)


def test_cuts_are_found_on_the_exact_frame(cuts_video, clip) -> None:
    shots = detect_shots(cuts_video)
    np.testing.assert_allclose(shots.bounds_s[1:-1], [4.12, 9.32, 20.04], atol=0.041)  # one frame at 25 fps
    assert shots.cuts == 3 and shots.sample_hists.shape[1] == 24
    assert detect_shots(clip).cuts == 0  # one long take: split later, by the signals


# --- the plan on a real clip -------------------------------------------------------------------


def test_a_summary_fits_the_budget_to_the_frame_exports_and_renders(clip, tmp_path) -> None:
    from grounding_agent.edit import export, render
    from grounding_agent.media.video import open_video

    plan = summarize(clip, seconds=6)
    capacity = budget_frames(plan.grid, 6.0)
    frame_s = 1 / float(plan.grid.rate)
    assert plan.kept_frames == capacity and abs(plan.kept_s - 6.0) <= frame_s  # the budget, to a frame
    assert plan.instruction == "summary: 6 s (17.1 %)" and plan.operations[0].target == "highlights"
    for seg in plan.kept:  # every kept segment says which shot and which signals
        assert seg.evidence and seg.evidence[0].text.startswith("shot ")
        assert any(e.source.startswith("highlights:") for e in seg.evidence)
    export(plan, tmp_path / "s.otio")
    assert kept_frames_in_otio(tmp_path / "s.otio") == [(s.start_frame, s.end_frame) for s in plan.kept]
    rendered = render(plan, tmp_path / "s.mp4", progress=False)
    assert rendered.rendered_frames == plan.kept_frames
    assert open_video(tmp_path / "s.mp4").duration_s == pytest.approx(plan.kept_s, abs=frame_s)
    assert ffprobe_video_s(tmp_path / "s.mp4") == pytest.approx(plan.kept_s, abs=frame_s)


def test_the_default_is_15_percent_and_a_cut_video_keeps_whole_shots(cuts_video) -> None:
    plan = summarize(cuts_video)
    assert plan.kept_frames == budget_frames(plan.grid, 0.15 * plan.video.duration_s)
    # Whole shots: every kept edge is a cut or a split at a 2-s clip edge, but for the one fill's edge.
    plan = summarize(cuts_video, seconds=6)
    grid = [4.12, 9.32, 20.04, *np.arange(0, 32, 2.0)]
    off = [e for s in plan.kept for e in (s.start_s, s.end_s) if min(abs(e - g) for g in grid) > 0.041]
    assert len(off) <= 1 and plan.kept_frames == budget_frames(plan.grid, 6.0), (plan.kept, off)


def test_the_teaser_without_sentences_uses_the_summary_shots(clip) -> None:
    from grounding_agent.edit import plan_edit

    plan = plan_edit(clip, "a 6-second teaser")
    assert abs(plan.kept_s - 6.0) <= 1 / float(plan.grid.rate)
    assert all(seg.evidence[0].text.startswith("shot ") for seg in plan.kept)


# --- the acceptance clip: the excited stretch is kept, and the evidence says why ----------------


def test_the_excited_stretch_is_kept_and_the_evidence_names_the_signals(tmp_path, capsys) -> None:
    from tests.excited_clip import excited_clip

    acceptance = excited_clip()
    out = tmp_path / "excited.otio"
    assert main(["summarize", str(acceptance.path), "--seconds", "10", "--export", str(out), "--json"]) == 0
    plan = json.loads(capsys.readouterr().out)
    lo, hi = acceptance.excited_s
    kept = [s for s in plan["segments"] if s["action"] == "keep"]
    inside = sum(max(0.0, min(s["end_s"], hi) - max(s["start_s"], lo)) for s in kept)
    assert plan["kept_s"] == pytest.approx(10.0, abs=0.2) and inside >= 0.9 * plan["kept_s"], kept
    sources = {e["source"] for s in kept for e in s["evidence"]}
    assert {"highlights:arousal", "highlights:applause"} & sources, sources
    assert out.is_file() and len(kept_frames_in_otio(out)) == len(kept)


# --- the command: bad input is one line, exit 2, nothing written -----------------------------------


@pytest.mark.parametrize(
    "budget",
    [["--seconds", "0"], ["--seconds", "-2"], ["--ratio", "0"], ["--ratio", "150%"], ["--ratio", "1.5"],
     ["--seconds", "99"]],
)  # fmt: skip
def test_a_bad_budget_on_the_command_line_writes_nothing(clip, tmp_path, capsys, budget) -> None:
    out = tmp_path / "s.otio"
    rc = main(["summarize", str(clip), *budget, "--export", str(out), "--render", str(tmp_path / "s.mp4")])
    err = capsys.readouterr().err.strip()
    assert rc == 2 and err.startswith("error: ") and "\n" not in err, err
    assert list(tmp_path.iterdir()) == []


def test_a_folder_that_is_no_highlight_head_is_refused(clip, tmp_path, capsys) -> None:
    adapter = tmp_path / "adapter"
    adapter.mkdir()
    (adapter / "adapter_config.json").write_text('{"peft_type": "LORA"}')  # a LoRA adapter, not a head
    rc = main(["summarize", str(clip), "--head", str(adapter), "--export", str(tmp_path / "s.otio")])
    err = capsys.readouterr().err.strip()
    assert rc == 2 and err.startswith("error: ") and "\n" not in err, err
    assert sorted(p.name for p in tmp_path.iterdir()) == ["adapter"]


@pytest.mark.slow
def test_a_learned_head_is_a_signal_of_the_summary(clip, tiny_models, tmp_path, capsys) -> None:
    """A random-weight engagement head on the tiny CLIP's features: its per-clip scores join the fusion."""
    from grounding_agent.highlights.head_rank import ClipScorer
    from grounding_agent.highlights.heads import save_head

    torch = pytest.importorskip("torch")
    torch.manual_seed(0)
    config = {"recipe": "engagement", "clip_model": str(tiny_models["clip"]), "feature_dim": 32, "hidden": 8}
    head = save_head(tmp_path / "head", config, ClipScorer(32, 8).state_dict())
    argv = ["summarize", str(clip), "--seconds", "5", "--saliency-model", str(tiny_models["clip"])]
    assert main([*argv, "--head", str(head), "--json"]) == 0
    plan = json.loads(capsys.readouterr().out)
    assert any("signals used:" in n and "head" in n for n in plan["notes"]), plan["notes"]
    assert any(
        "head " in e["text"] for s in plan["segments"] for e in s["evidence"]
    )  # "... from ... head 0.71"


def test_the_command_prints_why_and_writes_to_out(clip, tmp_path, capsys) -> None:
    rc = main(["summarize", str(clip), "--ratio", "20%", "--out", str(tmp_path)])
    printed = capsys.readouterr().out
    assert rc == 0 and "why:" in printed and "importance" in printed
    stem = Path(clip).stem
    assert sorted(p.name for p in tmp_path.iterdir()) == [f"{stem}.summary.json", f"{stem}.summary.otio"]
    assert json.loads((tmp_path / f"{stem}.summary.json").read_text())["instruction"].startswith(
        "summary: 20 %"
    )


# --- session, chat, HTTP, UI -----------------------------------------------------------------------


def test_session_chat_and_http_summaries(clip, tmp_path) -> None:
    import shutil

    from fastapi.testclient import TestClient

    from grounding_agent import Session
    from grounding_agent.grounders.baselines import UniformGrounder
    from grounding_agent.http import create_app

    session = Session(clip, UniformGrounder())
    assert session.summarize(seconds=5).kept_s == pytest.approx(5.0, abs=0.11)
    answer = session.ask("make a 5-second summary")
    assert answer.text_source == "session" and answer.evidence
    assert sum(m.end_s - m.start_s for m in answer.moments) == pytest.approx(5.0, abs=0.11)
    assert session.ask("summarize this in 10 %").text.startswith("A 10 % (3.5 s) summary")
    assert not session.ask("summarize what happens").text.startswith("A ")  # no length: a description

    media = tmp_path / "media"
    media.mkdir()
    shutil.copy(clip, media / "c.mp4")
    app = create_app(lambda p: Session(p, UniformGrounder()), media_root=media)
    client = TestClient(app, base_url="http://127.0.0.1")
    sid = client.post("/v1/sessions", json={"video": "c.mp4"}).json()["id"]
    plan = client.post(f"/v1/sessions/{sid}/summarize", json={"seconds": 5}).json()
    assert plan["kept_s"] == pytest.approx(5.0, abs=0.11) and plan["video"] == "c.mp4"
    bad = client.post(f"/v1/sessions/{sid}/summarize", json={"ratio": 2})
    assert bad.status_code == 422 and "below 1" in bad.json()["detail"]


def test_the_ui_summary_tab(real_clips, tmp_path) -> None:
    import shutil

    pytest.importorskip("gradio")
    from grounding_agent import Session
    from grounding_agent.grounders.baselines import UniformGrounder
    from grounding_agent.ui import app as ui

    media = tmp_path / "media"
    media.mkdir()
    shutil.copy(real_clips[CLIP], media / CLIP)
    app = ui.App(ui.UIConfig(media, tmp_path / "out"), lambda p: Session(p, UniformGrounder()))
    key = app.open_video(CLIP)[1]
    rows, files, rendered, notes = app.summarize(5, 15, key, False)
    assert {Path(f).suffix for f in files} >= {".otio", ".fcpxml"} and rendered is None
    assert "summary: 5 s" in notes and any(r[0] == "keep" and r[3].startswith("shot ") for r in rows)


# --- speech: cuts at sentence ends, never mid-word (real Whisper on espeak-ng speech) -------------


@pytest.fixture(scope="module")
def talk(tmp_path_factory):
    from tests.speechgen import Utterance, make_talking_video

    lines = ["welcome back to the show", "today we talk about rivers", "the water was very high",
             "my dog jumped right in", "that was the best part", "thank you for watching"]  # fmt: skip
    utterances, t = [], 0.5
    for text in lines:
        utterances.append(Utterance(text, t))
        t += 0.45 * len(text.split()) + 1.2
    return make_talking_video(
        tmp_path_factory.mktemp("talk") / "talk.mp4", utterances, duration_s=t + 0.5, fps=25
    )


@pytest.mark.slow
@pytest.mark.integration
def test_with_a_transcript_no_kept_shot_starts_or_ends_mid_word(talk, whisper_base, tmp_path) -> None:
    from grounding_agent.media.asr import Transcriber

    transcript = Transcriber(whisper_base, language="en", cache_dir=tmp_path).transcribe(talk.path)
    plan = summarize(talk.path, seconds=8, transcript=transcript)
    assert 4.0 <= plan.kept_s <= 8.0 + 1 / 25, plan.kept_s
    words = [w for u in talk.utterances for w in u.words]
    for seg in plan.kept:
        for edge in (seg.start_s, seg.end_s):
            inside = [w.text for w in words if w.start_s + 0.05 < edge < w.end_s - 0.05]
            assert not inside, (edge, inside)


@pytest.mark.slow
@pytest.mark.integration
def test_the_documented_command_runs_as_written(talk, whisper_base, tmp_path, monkeypatch, capsys) -> None:
    """docs/summaries.md's first command, with the talking clip as video.mp4 and real Whisper as DIR."""
    import shlex
    import shutil

    page = (Path(__file__).resolve().parents[1] / "docs" / "summaries.md").read_text(encoding="utf-8")
    line = next(x for x in page.splitlines() if x.startswith("grounding-agent summarize video.mp4 --seconds"))
    monkeypatch.chdir(tmp_path)
    shutil.copy(talk.path, tmp_path / "video.mp4")
    argv = [str(whisper_base) if a == "DIR" else a for a in shlex.split(line)[1:]]
    assert main(argv) == 0, capsys.readouterr().err
    assert kept_frames_in_otio(tmp_path / "summary.otio") and (tmp_path / "summary.mp4").stat().st_size > 0


# --- ten minutes ---------------------------------------------------------------------------------


def ten_minute_clip() -> Path:
    """A 10-minute 320x180 clip (testsrc2, a tone with a 3-s silence every 20 s), made once and cached."""
    root = Path(os.environ.get("GA_TINY_MODELS_CACHE", Path.home() / ".cache" / "grounding-agent"))
    path = root / "test-media" / "summary_10min_180p.mp4"
    if path.is_file():
        return path
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.stem}.{os.getpid()}.mp4")
    loud = "lt(mod(t,20),17)"
    cmd = ["ffmpeg", "-nostdin", "-loglevel", "error", "-y",
           "-f", "lavfi", "-i", "testsrc2=size=320x180:rate=25:duration=600",
           "-f", "lavfi", "-i", f"aevalsrc='if({loud},0.4*sin(2*PI*440*t),0)':s=16000:d=600",
           "-c:v", "libx264", "-preset", "ultrafast", "-pix_fmt", "yuv420p", "-c:a", "aac", "-b:a", "48k",
           str(tmp)]  # fmt: skip
    subprocess.run(cmd, check=True)
    os.replace(tmp, path)
    return path


@pytest.mark.slow
def test_ten_minutes_summarized_to_the_frame_exported_and_rendered(tmp_path) -> None:
    from grounding_agent.edit import export, render

    plan = summarize(ten_minute_clip())
    assert plan.kept_frames == budget_frames(plan.grid, 90.0) == 2250  # 15 % of 600 s at 25 fps
    export(plan, tmp_path / "ten.otio")
    assert kept_frames_in_otio(tmp_path / "ten.otio") == [(s.start_frame, s.end_frame) for s in plan.kept]
    rendered = render(plan, tmp_path / "ten.mp4", progress=False, preset="ultrafast")
    assert rendered.rendered_frames == plan.kept_frames
    assert ffprobe_video_s(tmp_path / "ten.mp4") == pytest.approx(90.0, abs=1 / 25)
