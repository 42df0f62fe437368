"""Editing outputs: OTIO / EDL / FCP7 XML / FCPXML read back through OpenTimelineIO equal the plan to the
frame; SRT / WebVTT / YouTube chapters; ffmpeg renders (accurate and stream copy) whose duration, measured
with the project's own probe, equals the plan within one frame; contact sheets; the `edit` CLI's refusals."""

from __future__ import annotations

import json
import os
import re
import xml.etree.ElementTree as ET
from fractions import Fraction

import numpy as np
import opentimelineio as otio
import pysubs2
import pytest
from PIL import Image

from grounding_agent.cli import main
from grounding_agent.edit import contact_sheet, export, plan_edit, render
from grounding_agent.errors import EditError
from grounding_agent.media.decode import sample_frames
from grounding_agent.media.video import open_video
from tests.videogen import make_edit_video

FPS = 25
FRAME_S = 1.0 / FPS


@pytest.fixture(scope="module")
def clip(tmp_path_factory):
    """12 s at 25 fps, keyframe every 10 frames, B-frames: tone on [0, 2), [4, 8), [10, 12); red / green / blue
    from 0 / 4 / 8 s."""
    return make_edit_video(tmp_path_factory.mktemp("edit") / "clip.mp4", gop=10, bframes=3)


@pytest.fixture(scope="module")
def ntsc(tmp_path_factory):
    return make_edit_video(
        tmp_path_factory.mktemp("edit") / "ntsc.mp4", duration_s=4.0, fps="30000/1001",
        loud_spans=((0.0, 1.0), (2.0, 4.0)), colours=((0.0, "red"), (2.0, "blue")),
    )  # fmt: skip


@pytest.fixture(scope="module")
def plan(clip):
    # Silences cut at 2-4 s and 8-10 s, then a cut that is not on a keyframe (frames 27..33).
    # pad_ms=0: the tone edges are exact, so the cuts land on them (padding is tested in test_edit_speech_exact)
    return plan_edit(clip, "remove the silences, then cut 0:01.08 to 0:01.32", pad_ms=0)


def planned_ranges(plan):
    return [(s.start_frame, s.num_frames) for s in plan.kept]


def clip_ranges(timeline, rate):
    track = next(t for t in timeline.tracks if t.kind == otio.schema.TrackKind.Video)
    return [
        (c.source_range.start_time.to_frames(rate), c.source_range.duration.to_frames(rate))
        for c in track.find_clips()
    ]


# --- exports ----------------------------------------------------------------------------------------------


@pytest.mark.parametrize("suffix", [".otio", ".edl", ".xml", ".fcpxml"])
def test_timeline_exports_read_back_equal_the_plan(plan, tmp_path, suffix):
    path = export(plan, tmp_path / f"edit{suffix}")
    kwargs = {"rate": FPS} if suffix == ".edl" else {}
    timeline = otio.adapters.read_from_file(str(path), **kwargs)
    assert clip_ranges(timeline, FPS) == planned_ranges(plan)
    assert len(planned_ranges(plan)) == 4


@pytest.mark.parametrize("suffix", [".otio", ".edl", ".xml"])
def test_drop_frame_exports_read_back_equal_the_plan(ntsc, tmp_path, suffix):
    plan = plan_edit(ntsc, "cut 0:01 to 0:02, then cut 0:03.1 to 0:03.5")
    rate = 30000 / 1001
    path = export(plan, tmp_path / f"edit{suffix}")
    kwargs = {"rate": rate} if suffix == ".edl" else {}
    assert clip_ranges(otio.adapters.read_from_file(str(path), **kwargs), rate) == planned_ranges(plan)
    if suffix == ".edl":  # drop-frame timecodes use ';'
        events = [line for line in path.read_text().splitlines() if re.match(r"^\d{3}\s", line)]
        assert events and all(";" in line for line in events)


def test_drop_frame_fcpxml_holds_the_planned_frames(ntsc, tmp_path):
    # The FCPXML adapter's reader truncates 29.97 to 29 fps, so read the rational times ourselves.
    plan = plan_edit(ntsc, "cut 0:01 to 0:02")
    root = ET.parse(export(plan, tmp_path / "edit.fcpxml")).getroot()
    assert root.find(".//format").get("frameDuration") == "1001/30000s"

    def seconds(t: str) -> float:
        return float(Fraction(t.rstrip("s"))) if t != "0s" else 0.0

    clips = root.findall(".//spine/clip")
    got = [
        (
            round(seconds(c.get("start", "0s")) * 30000 / 1001),
            round(seconds(c.get("duration")) * 30000 / 1001),
        )
        for c in clips
    ]
    assert got == planned_ranges(plan)


def test_edl_needs_a_smpte_rate(tmp_path):
    odd = make_edit_video(tmp_path / "ten.mp4", duration_s=2.0, fps=10, loud_spans=(), colours=((0, "red"),))
    plan = plan_edit(odd, "cut 0:00.5 to 0:01")
    with pytest.raises(EditError, match="SMPTE frame rate"):
        export(plan, tmp_path / "x.edl")
    assert not (tmp_path / "x.edl").exists()
    timeline = otio.adapters.read_from_file(str(export(plan, tmp_path / "x.otio")))
    assert clip_ranges(timeline, 10) == planned_ranges(plan)


@pytest.mark.parametrize("suffix", [".srt", ".vtt"])
def test_chapter_files_are_in_edited_time_to_the_frame(plan, tmp_path, suffix):
    subs = pysubs2.load(str(export(plan, tmp_path / f"chapters{suffix}")))
    starts = np.cumsum([0] + [s.num_frames for s in plan.kept])
    assert [(round(e.start / 1000 * FPS), round(e.end / 1000 * FPS)) for e in subs] == list(
        zip(starts[:-1], starts[1:])
    )
    assert "source 00:00:00:00 - 00:00:01:02" in subs[0].text


def test_youtube_chapter_list(plan, tmp_path):
    lines = export(plan, tmp_path / "chapters.txt").read_text().splitlines()
    assert len(lines) == len(plan.kept) and lines[0].startswith("0:00 Part 1")
    assert [line.split()[0] for line in lines] == ["0:00", "0:01", "0:01", "0:05"]  # 0, 1.08, 1.76, 5.76 s


def test_json_export_is_the_plan(plan, tmp_path):
    data = json.loads(export(plan, tmp_path / "plan.json").read_text())
    assert data["kept_frames"] == plan.kept_frames and len(data["segments"]) == len(plan.segments)


def test_unknown_export_suffix(plan, tmp_path):
    with pytest.raises(EditError, match="unknown export format"):
        export(plan, tmp_path / "edit.docx")


# --- render -----------------------------------------------------------------------------------------------


def colours_of(path) -> list[str]:
    """The dominant colour of every frame."""
    frames = sample_frames(open_video(path), fps=FPS * 2, max_pixels=16 * 12)
    names = np.array(["red", "green", "blue"])
    return list(names[frames.pixels.reshape(len(frames.pixels), -1, 3).mean(axis=1).argmax(axis=1)])


def test_accurate_render_matches_the_plan_frame_for_frame(plan, tmp_path):
    result = render(plan, tmp_path / "out.mp4", progress=False)
    measured = open_video(tmp_path / "out.mp4")
    assert abs(measured.duration_s - plan.kept_s) <= FRAME_S
    assert measured.num_frames == plan.kept_frames == result.rendered_frames
    # Kept: 0-1.08 s red, 1.32-2 s red, 4-8 s green, 10-12 s blue -> red for 44 frames, green 100, blue 50.
    got = colours_of(tmp_path / "out.mp4")
    assert got == ["red"] * 44 + ["green"] * 100 + ["blue"] * 50
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".")]  # no temp file left


def test_copy_render_moves_cuts_to_keyframes_and_says_so(plan, tmp_path):
    result = render(plan, tmp_path / "copy.mp4", copy=True, progress=False)
    moved = [s for s in result.shifts if s["start_shift_frames"] or s["end_shift_frames"]]
    # The 1.08-1.32 s cut: the first part now ends at the keyframe at 1.2 s (frame 30, +3), the second starts
    # at the same keyframe (-3): the two parts merge.
    assert {(s["segment"], s["start_shift_frames"], s["end_shift_frames"]) for s in moved} == {
        (0, 0, 3),
        (1, -3, 0),
    }
    assert abs(result.rendered_s - result.widened_s) <= FRAME_S  # the keyframe-widened plan
    assert open_video(tmp_path / "copy.mp4").num_frames == result.plan.kept_frames == 50 + 100 + 50


def test_render_refuses_the_input_and_empty_edits(clip, plan, tmp_path):
    with pytest.raises(EditError, match="is the input video"):
        render(plan, clip)
    with pytest.raises(EditError, match="keeps nothing"):
        render(plan_edit(clip, "cut 0:00 to 0:12"), tmp_path / "none.mp4")
    with pytest.raises(EditError, match="does not exist"):
        render(plan, tmp_path / "missing" / "out.mp4")
    assert not (tmp_path / "none.mp4").exists()


def test_contact_sheet_has_one_tile_per_kept_segment(plan, tmp_path):
    path = contact_sheet(plan, tmp_path / "sheet.png", columns=2)
    sheet = np.asarray(Image.open(path).convert("RGB"))
    assert sheet.shape[1] == 2 * 320  # two columns of 320-px tiles
    tile_h = (sheet.shape[0] // 2) - 22
    centres = [sheet[r * (tile_h + 22) + tile_h // 2, c * 320 + 160] for r in range(2) for c in range(2)]
    assert [("red", "green", "blue")[int(np.argmax(px))] for px in centres] == ["red", "red", "green", "blue"]


# --- CLI ------------------------------------------------------------------------------------------------


def test_cli_exports_renders_and_prints_json(clip, tmp_path, capsys):
    out = tmp_path / "out.mp4"
    code = main(["edit", str(clip), "trim the first 3 seconds", "--export", str(tmp_path / "e.otio"),
                 "--export", str(tmp_path / "e.edl"), "--render", str(out), "--thumbnails", str(tmp_path / "s.png"),
                 "--json", "--backend", "uniform"])  # fmt: skip
    data = json.loads(capsys.readouterr().out)
    assert code == 0
    assert [(s["action"], s["start_frame"], s["end_frame"]) for s in data["segments"]] == [
        ("cut", 0, 75),
        ("keep", 75, 300),
    ]
    assert data["outputs"]["render"]["rendered_frames"] == 225 and (tmp_path / "s.png").is_file()
    assert abs(open_video(out).duration_s - 9.0) <= FRAME_S


def test_cli_copy_reports_keyframe_shifts(clip, tmp_path, capsys):
    code = main(["edit", str(clip), "cut 0:01.08 to 0:05.32", "--render", str(tmp_path / "c.mp4"), "--copy"])
    text = capsys.readouterr().out
    assert code == 0
    assert "segment 1: start moved +0.000 s, end moved +0.120 s (to keyframes)" in text
    assert "segment 2: start moved -0.120 s" in text


def test_cli_grounds_with_a_model_free_backend(clip, tmp_path, capsys):
    code = main(["edit", str(clip), "cut the part where the dog jumps", "--backend", "uniform", "--json"])
    data = json.loads(capsys.readouterr().out)
    assert code == 0 and data["segments"][0]["evidence"][0]["source"] == "uniform"


@pytest.mark.parametrize(
    ("instruction", "outputs", "message"),
    [
        ("make it pop", ["--render", "{tmp}/r.mp4"], "could not read an edit"),
        ("cut 0:00 to 0:12", ["--render", "{tmp}/r.mp4", "--export", "{tmp}/e.otio"], "keeps nothing"),
        ("remove pauses longer than 5 seconds", ["--export", "{tmp}/e.otio"], "keeps the whole video"),
        ("cut 0:01 to 0:02", ["--render", "{tmp}/missing/r.mp4"], "does not exist"),
        ("cut 0:01 to 0:02", ["--render", "{clip}"], "is the input video"),
        ("cut 0:01 to 0:02", ["--export", "{tmp}/e.docx"], "unknown export format"),
        ("cut 0:01 to 0:02", ["--render", "{tmp}/r.gif"], "use one of"),
        ("cut 0:01 to 0:02", ["--copy"], "--copy is a way of rendering"),
    ],
)
def test_cli_refuses_with_one_line_and_writes_nothing(clip, tmp_path, capsys, instruction, outputs, message):
    before = sorted(os.listdir(clip.parent))
    args = [a.format(tmp=tmp_path, clip=clip) for a in outputs]
    assert main(["edit", str(clip), instruction, *args]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("error: ") and message in err[0]
    assert os.listdir(tmp_path) == [] and sorted(os.listdir(clip.parent)) == before


def test_cli_refuses_a_read_only_folder(clip, tmp_path, capsys, monkeypatch):
    folder = tmp_path / "ro"
    folder.mkdir()
    real_access = os.access
    # Root may write anywhere, so the folder's permission bits alone cannot show the refusal here.
    monkeypatch.setattr(
        os, "access", lambda p, mode: False if str(p) == str(folder) else real_access(p, mode)
    )
    assert main(["edit", str(clip), "cut 0:01 to 0:02", "--render", str(folder / "r.mp4")]) == 2
    err = capsys.readouterr().err
    assert "is not writable" in err and os.listdir(folder) == []


def test_cli_dry_run_writes_nothing(clip, tmp_path, capsys):
    assert (
        main(["edit", str(clip), "cut 0:01 to 0:02", "--render", str(tmp_path / "r.mp4"), "--dry-run"]) == 0
    )
    assert "dry run: nothing written" in capsys.readouterr().out and os.listdir(tmp_path) == []


def test_cli_reads_a_transcript_file_for_word_cuts(clip, tmp_path, capsys):
    speech = pytest.importorskip("grounding_agent.media.transcript")
    words = (
        speech.Word("So", 0.5, 0.9, 0.9),
        speech.Word("um,", 1.0, 1.4, 0.8),
        speech.Word("yes", 1.5, 2.0, 0.9),
    )
    real = speech.Transcript(segments=(speech.Segment("So um, yes", 0.5, 2.0, 0.9, words),), duration_s=12.0)
    (tmp_path / "t.json").write_text(json.dumps(real.to_dict()))
    code = main(
        [
            "edit",
            str(clip),
            "remove every time he says 'um'",
            "--transcript",
            str(tmp_path / "t.json"),
            "--json",
        ]
    )
    data = json.loads(capsys.readouterr().out)
    assert code == 0
    assert [(s["start_frame"], s["end_frame"]) for s in data["segments"] if s["action"] == "cut"] == [
        (25, 35)
    ]


def test_cli_word_cut_without_transcript_says_how_to_get_one(clip, capsys):
    assert main(["edit", str(clip), "remove every time he says 'um'"]) == 2
    assert "--asr-model DIR or --transcript FILE.json" in capsys.readouterr().err


def test_video_without_audio_renders_and_has_no_silences(tmp_path):
    mute = make_edit_video(
        tmp_path / "mute.mp4", duration_s=4.0, audio=False, colours=((0, "red"), (2, "blue"))
    )
    plan = plan_edit(mute, "remove the silences, then cut 0:01 to 0:03")
    assert "no audio stream" in " ".join(plan.notes)
    result = render(plan, tmp_path / "out.mp4", progress=False)
    assert result.rendered_frames == plan.kept_frames == 50
    assert colours_of(tmp_path / "out.mp4") == ["red"] * 25 + ["blue"] * 25


def test_drop_frame_render_matches_the_plan(ntsc, tmp_path):
    plan = plan_edit(ntsc, "cut 0:01 to 0:02.5")
    result = render(plan, tmp_path / "ntsc_cut.mp4", progress=False)
    assert result.rendered_frames == plan.kept_frames == 120 - 45
    assert abs(result.rendered_s - plan.kept_s) <= 1001 / 30000


def test_variable_frame_rate_video_renders_and_exports_real_times(tmp_path):
    from tests.videogen import make_video

    vfr = make_video(tmp_path / "vfr.mp4", duration_s=4.0, fps=10, vfr=True, audio=True)  # 10 fps, then 30
    plan = plan_edit(vfr, "cut 0:01 to 0:03")
    assert [(s.start_frame, s.end_frame) for s in plan.segments] == [(0, 10), (10, 50), (50, 80)]
    result = render(plan, tmp_path / "out.mp4", progress=False)
    assert result.rendered_frames == 40 and abs(result.rendered_s - 2.0) <= 1 / 30
    timeline = otio.adapters.read_from_file(str(export(plan, tmp_path / "vfr.otio")))
    track = next(iter(timeline.tracks))
    assert [c.source_range.start_time.to_seconds() for c in track.find_clips()] == [0.0, 3.0]  # real times


# --- Session.edit and the chat REPL ------------------------------------------------------------------


def test_session_edit_finds_moments_with_the_sessions_grounder(clip):
    from grounding_agent.conversation.session import Session

    plan = Session(clip, "uniform").edit("cut the part where the dog jumps, then trim the last 2 seconds")
    cut = [s for s in plan.segments if s.action == "cut"]
    assert cut[0].evidence[0].source == "uniform" and cut[-1].end_frame == 300


def test_chat_repl_edit_then_export(clip, tmp_path):
    import io

    from grounding_agent.cli.chat import repl
    from grounding_agent.conversation.session import Session

    commands = [
        "/export e.edl",  # nothing planned yet
        "/edit remove the silences",
        f"/export {tmp_path / 'e.edl'}",
        f"/export {tmp_path / 't.otio'} trim the first 3 seconds",
        f"/export {tmp_path / 'none.otio'} cut 0:00 to 0:12",
        "/quit",
    ]
    out = io.StringIO()
    repl(Session(clip, "uniform"), io.StringIO("\n".join(commands) + "\n"), out)
    text = out.getvalue()
    # The tone runs [0, 2), [4, 8), [10, 12) s; the default 60 ms pad keeps 2 more frames beside each cut.
    assert "no edit yet" in text and "kept 8.32 s of 12.00 s in 3 segments" in text
    assert clip_ranges(otio.adapters.read_from_file(str(tmp_path / "e.edl"), rate=FPS), FPS) == [
        (0, 52),
        (98, 104),
        (248, 52),
    ]
    assert clip_ranges(otio.adapters.read_from_file(str(tmp_path / "t.otio")), FPS) == [(75, 225)]
    assert "keeps nothing" in text and not (tmp_path / "none.otio").exists()
