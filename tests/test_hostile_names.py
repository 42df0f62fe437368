"""Names that break formats: a video named with a newline (EDL event injection), quotes and apostrophes (the
FCPXML adapter's XPath lookups), `<&>`, unicode, control characters, undecodable bytes or 240 characters is
edited and exported to every format; each file reads back with one event per kept segment, the name kept
(or made one line, and ASCII in an EDL), and the web UI's edit tab shows it escaped. No export changes the
video or writes a file it was not asked for."""

from __future__ import annotations

import hashlib
import json
import os
import re
import shutil
import xml.etree.ElementTree as ET
from dataclasses import replace
from pathlib import Path
from urllib.parse import unquote_to_bytes, urlparse

import opentimelineio as otio
import pysubs2
import pytest

from grounding_agent.edit import export, plan_edit
from grounding_agent.edit.exports import one_line
from tests.videogen import make_edit_video

STEMS = {
    "newline": "new\nline\n002  AX       V     C        00:00:00:00 00:00:01:00 00:00:00:00 00:00:01:00",
    "apostrophe": "it's mine",
    "quotes": "say \"hi\" 'there'",
    "markup": "<&> <b>bold<b> &amp; <!-- x -->",
    "unicode": "ünïcødé 日本語 🎬",
    "long": "x" * 240,
    "controls": "tab\there\rcr\x01ctrl\x7fdel",
    "markdown": "[link](http:x) *stars* _under_ #hash `code`",
    "undecodable": os.fsdecode(b"bytes-\xff\xfe-name"),
}
# decord cannot open a path that is not UTF-8 (media/video.py's part of the issue, not this module's).
DECODER_REFUSES = ("undecodable",)
UI_STEMS = {k: v for k, v in STEMS.items() if k not in DECODER_REFUSES}
INSTRUCTION = "cut 0:01 to 0:02, then cut 0:03 to 0:03.5"
EVENT = re.compile(r"^\d{3}\s+[A-Za-z0-9]{1,8}\s+(?:V|B|AA/V)\s+C\s+(\d\d:\d\d:\d\d[:;]\d\d ?){4}\s*$")
EDL_LINE = re.compile(r"^(TITLE: .*|FCM: .*|\* .*|)$")


def sha(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


@pytest.fixture(scope="module")
def clip(tmp_path_factory) -> Path:
    return make_edit_video(
        tmp_path_factory.mktemp("names") / "clip.mp4", duration_s=4.0, loud_spans=((0.0, 4.0),),
        colours=((0.0, "red"), (2.0, "blue")),
    )  # fmt: skip


@pytest.fixture(scope="module", params=list(STEMS), ids=list(STEMS))
def named(request, clip, tmp_path_factory):
    """(the hostile-named copy of the clip, its plan)."""
    path = tmp_path_factory.mktemp("named") / f"{STEMS[request.param]}.mp4"
    shutil.copy(clip, path)
    if request.param in DECODER_REFUSES:  # planned on the clip, exported as the named copy
        plan = plan_edit(clip, INSTRUCTION)
        plan = replace(plan, video=replace(plan.video, path=path))
    else:
        plan = plan_edit(path, INSTRUCTION)
    assert len(plan.kept) == 3
    return path, plan


def export_alone(plan, folder: Path, suffix: str) -> Path:
    """Export into an empty folder: the video is unchanged and nothing else is written."""
    folder.mkdir()
    before = sha(Path(plan.video.path))
    path = export(plan, folder / f"edit{suffix}")
    assert sorted(folder.iterdir()) == [path]
    assert sha(Path(plan.video.path)) == before
    return path


def names(path: Path) -> list[str]:
    return [f"{one_line(path.stem)}_{i:03d}" for i in (1, 2, 3)]


def test_one_line_keeps_printable_text_and_flattens_the_rest():
    assert one_line("it's <&> ünï 日本") == "it's <&> ünï 日本"
    assert one_line("a\nb\r\tc\x00d  e") == "a b c d e"
    assert one_line(os.fsdecode(b"x\xffy")) == "x y"


def test_otio_keeps_the_names(named, tmp_path):
    path, plan = named
    timeline = otio.adapters.read_from_file(str(export_alone(plan, tmp_path / "out", ".otio")))
    video = next(t for t in timeline.tracks if t.kind == otio.schema.TrackKind.Video)
    assert [c.name for c in video.find_clips()] == names(path)
    assert "\n" not in timeline.name


def test_edl_has_one_event_per_segment_and_ascii_one_line_names(named, tmp_path):
    path, plan = named
    edl = export_alone(plan, tmp_path / "out", ".edl")
    text = edl.read_bytes().decode("ascii")  # CMX 3600 is ASCII
    lines = text.splitlines()
    events = [line for line in lines if re.match(r"^\d{3}\s", line)]
    assert len(events) == 3 and all(EVENT.match(e) for e in events), text
    assert all(EVENT.match(line) or EDL_LINE.match(line) for line in lines), text
    clip_names = [line.split(":", 1)[1].strip() for line in lines if line.startswith("* FROM CLIP NAME:")]
    assert len(clip_names) == 3 and all(n.endswith(f"_{i:03d}") for i, n in enumerate(clip_names, 1))
    timeline = otio.adapters.read_from_file(str(edl), rate=25)
    for track in timeline.tracks:  # the picture, and the sound events "B" carries
        assert [c.source_range.start_time.to_frames() for c in track.find_clips()] == [
            s.start_frame for s in plan.kept
        ]


def test_fcp7_xml_keeps_the_names(named, tmp_path):
    path, plan = named
    timeline = otio.adapters.read_from_file(str(export_alone(plan, tmp_path / "out", ".xml")))
    video = next(t for t in timeline.tracks if t.kind == otio.schema.TrackKind.Video)
    assert [c.name for c in video.find_clips()] == names(path)


def test_fcpxml_keeps_the_names_and_the_source(named, tmp_path):
    path, plan = named
    root = ET.parse(export_alone(plan, tmp_path / "out", ".fcpxml")).getroot()
    clips = root.findall(".//spine/clip")
    assert [c.get("name") for c in clips] == names(path)
    assert root.find(".//project").get("name") == f"{one_line(path.stem)} edit"
    (asset,) = root.findall(".//asset")  # one source, found again by its (percent-encoded) URL
    assert unquote_to_bytes(urlparse(asset.get("src")).path) == os.fsencode(path.resolve())


@pytest.mark.parametrize("suffix", [".srt", ".vtt"])
def test_chapter_files_have_one_cue_per_segment(named, tmp_path, suffix):
    _, plan = named
    assert len(pysubs2.load(str(export_alone(plan, tmp_path / "out", suffix)))) == 3


def test_chapter_list_and_plan_json(named, tmp_path):
    _, plan = named
    lines = export_alone(plan, tmp_path / "txt", ".txt").read_text().splitlines()
    assert len(lines) == 3 and all(re.match(r"^\d+:\d\d ", line) for line in lines)
    data = json.loads(export_alone(plan, tmp_path / "json", ".json").read_text())
    assert data["kept_segments"] == 3


def test_hostile_text_in_chapter_titles_stays_one_literal_cue(clip, tmp_path):
    # An LLM-read operation can carry any text; it reaches the chapter titles through the segment's reason.
    plan = plan_edit(clip, "cut 0:01 to 0:02")
    seg = plan.segments[0]
    plan.segments[0] = replace(seg, reason="a\nb {\\an8} <i>&</i>", operation=0)
    srt = pysubs2.load(str(export_alone(plan, tmp_path / "srt", ".srt")))
    assert len(srt) == 2 and "\n" not in srt[0].plaintext and "(/an8)" in srt[0].text
    vtt = export_alone(plan, tmp_path / "vtt", ".vtt").read_text()
    assert "&lt;i&gt;&amp;&lt;/i&gt;" in vtt and "<i>" not in vtt
    youtube = export_alone(plan, tmp_path / "txt", ".txt").read_text().splitlines()
    assert len(youtube) == 2


# --- the web UI's edit tab --------------------------------------------------------------------------------


@pytest.mark.parametrize("stem", list(UI_STEMS.values()), ids=list(UI_STEMS))
def test_ui_edit_tab_shows_hostile_names(clip, tmp_path, stem):
    os.environ.setdefault("GRADIO_ANALYTICS_ENABLED", "False")
    pytest.importorskip("gradio")
    from grounding_agent import Session
    from grounding_agent.grounders import GROUNDERS
    from grounding_agent.ui import app as ui

    root = tmp_path / "media"
    root.mkdir()
    video = root / f"{stem}.mp4"
    shutil.copy(clip, video)
    before = sha(video)
    app = ui.App(ui.UIConfig(root, tmp_path / "out"), lambda p: Session(p, GROUNDERS["uniform"]()))
    opened = app.open_video(video.name)
    key, status = opened[1], opened[-1]
    assert "\n" not in status and "<" not in status.replace("&lt;", "")
    rows, files, rendered, notes = app.edit(INSTRUCTION, key, False)
    assert [r[0] for r in rows] == ["keep", "cut", "keep", "cut", "keep"]
    assert {Path(f).suffix for f in files} == set(ui.EDIT_EXPORTS)  # 25 fps: every format holds it
    assert all(Path(f).parent == tmp_path / "out" / key and "\n" not in f for f in files)
    assert "<" not in notes.replace("&lt;", "") and all(line.startswith("- ") for line in notes.splitlines())
    assert sha(video) == before and sorted(p.name for p in root.iterdir()) == [video.name]


def test_a_file_name_that_is_not_utf8_is_one_line_and_untouched(clip, tmp_path, capsys):
    from tests.test_hostile_options import assert_one_line_error, run_cli

    bad = Path(os.fsdecode(bytes(tmp_path) + b"/take\xff.mp4"))
    shutil.copy(clip, bad)
    before = sha(bad)
    rc, _, err = run_cli(capsys, "probe", bad)
    assert_one_line_error(rc, err, "not valid UTF-8", "rename")
    rc, _, err = run_cli(capsys, "edit", bad, "cut 0:01 to 0:02", "--dry-run")
    assert_one_line_error(rc, err, "not valid UTF-8")
    assert sha(bad) == before and sorted(p.name for p in tmp_path.iterdir()) == [bad.name]
