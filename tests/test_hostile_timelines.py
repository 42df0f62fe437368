"""Timelines exactly on frames: an hour-long edit at 23.976 / 29.97 / 59.94 / 25 fps, exported to every
timeline and chapter format and read back by this test's own parsers (not the adapters' readers: the FCPXML
reader truncates 29.97 to 29 fps), puts every time on a whole frame of the exact rate and every cut on the
planned frame, to 59+ minutes. The plans are built on a synthetic frame grid (no hour of video is decoded);
the clip they name is a real 1-s file, which no export may change."""

from __future__ import annotations

import hashlib
import json
import re
import xml.etree.ElementTree as ET
from fractions import Fraction
from pathlib import Path

import numpy as np
import pysubs2
import pytest

from grounding_agent.edit.plan import Operation, Span, apply_operations
from grounding_agent.edit.timeline import FrameGrid
from grounding_agent.types import Video
from tests.test_hostile_names import export_alone
from tests.videogen import make_video

RATES = {
    "23.976": Fraction(24000, 1001),
    "29.97": Fraction(30000, 1001),
    "59.94": Fraction(60000, 1001),
    "25": Fraction(25),
}
HOUR_S = 3600.0
# Cuts at times that are not on frames (nor half-way between two), spread over the hour, the last past 59 min.
CUTS = ((10.0, 12.51), (600.33, 607.13), (1800.71, 1801.07), (3540.21, 3555.55), (3590.0, 3596.07))


def sha(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


@pytest.fixture(scope="module")
def source(tmp_path_factory) -> Path:
    return make_video(tmp_path_factory.mktemp("hour") / "source.mp4", duration_s=1.0, fps=25, audio=True)


def hour_plan(source: Path, rate: Fraction):
    """An hour of constant-rate frames at `rate`, with the CUTS applied (frame times are n / rate)."""
    n = int(HOUR_S * rate)
    starts = np.arange(n, dtype=np.float64) * float(1 / rate)
    duration = float(n / rate)
    video = Video(source, duration, float(rate), n, 160, 120)
    grid = FrameGrid(starts, duration, rate, np.arange(0, n, 48, dtype=np.int64))
    ops = [Operation("cut", "range", start_s=a, end_s=b) for a, b in CUTS]
    return apply_operations(video, grid, "cuts over an hour", ops, lambda op: [Span(op.start_s, op.end_s)])


@pytest.fixture(scope="module", params=list(RATES), ids=list(RATES))
def hour(request, source):
    rate = RATES[request.param]
    return rate, hour_plan(source, rate)


def expected_kept(rate: Fraction) -> list[tuple[int, int]]:
    """[start, end) frames kept: each cut snaps to the frame boundary nearest its time."""
    n = int(HOUR_S * rate)
    cuts = [(round(Fraction(a) * rate), round(Fraction(b) * rate)) for a, b in CUTS]
    kept, pos = [], 0
    for a, b in cuts:
        if a > pos:
            kept.append((pos, a))
        pos = b
    return [*kept, (pos, n)]


def planned(plan) -> list[tuple[int, int]]:
    return [(s.start_frame, s.end_frame) for s in plan.kept]


def record_starts(kept: list[tuple[int, int]]) -> list[int]:
    return np.cumsum([0] + [b - a for a, b in kept])[:-1].tolist()


def test_the_plan_cuts_on_the_nearest_frames(hour):
    rate, plan = hour
    assert planned(plan) == expected_kept(rate)
    assert planned(plan)[-2][1] > 59 * 60 * rate  # a cut past 59 minutes


# --- OTIO ---------------------------------------------------------------------------------------------


def test_otio_holds_whole_frames_at_the_exact_rate(hour, tmp_path):
    rate, plan = hour
    data = json.loads(export_alone(plan, tmp_path / "out", ".otio").read_text())
    times = []

    def walk(node):
        if isinstance(node, dict):
            if node.get("OTIO_SCHEMA", "").startswith("RationalTime"):
                times.append(node)
            for value in node.values():
                walk(value)
        elif isinstance(node, list):
            for value in node:
                walk(value)

    walk(data)
    assert times and all(t["rate"] == float(rate) and float(t["value"]).is_integer() for t in times)
    for track in data["tracks"]["children"]:
        ranges = [c["source_range"] for c in track["children"]]
        got = [
            (int(r["start_time"]["value"]), int(r["start_time"]["value"] + r["duration"]["value"]))
            for r in ranges
        ]
        assert got == planned(plan), track["kind"]


# --- CMX 3600 EDL -------------------------------------------------------------------------------------

EVENT = re.compile(r"^(\d{3})\s+(\S+)\s+(?:V|B|AA/V)\s+C\s+(\S+)\s+(\S+)\s+(\S+)\s+(\S+)\s*$")


def timecode_frames(tc: str, rate: Fraction) -> int:
    """SMPTE timecode -> frame count; drop-frame (';') skips frame numbers 0..k-1 in each minute not divisible
    by 10 (k = 2 at 29.97, 4 at 59.94)."""
    nominal = round(rate)
    h, m, s, f = (int(x) for x in re.split(r"[:;]", tc))
    frames = ((h * 60 + m) * 60 + s) * nominal + f
    if ";" in tc:
        minutes = h * 60 + m
        frames -= (nominal // 15) * (minutes - minutes // 10)
    return frames


def test_timecode_parser_knows_drop_frame():
    ntsc = Fraction(30000, 1001)
    assert timecode_frames("00:01:00;02", ntsc) == 1800  # ;00 and ;01 do not exist at minute 1
    assert timecode_frames("01:00:00;00", ntsc) == 107892
    assert timecode_frames("01:00:00;00", Fraction(60000, 1001)) == 215784
    assert timecode_frames("00:59:59:23", Fraction(24000, 1001)) == 86399


def test_edl_timecodes_land_on_the_planned_frames(hour, tmp_path):
    rate, plan = hour
    text = export_alone(plan, tmp_path / "out", ".edl").read_text(encoding="ascii")
    events = [EVENT.match(line) for line in text.splitlines() if re.match(r"^\d{3}\s", line)]
    assert all(events), text[:2000]
    drop = rate.denominator == 1001 and round(rate) in (30, 60)
    assert all((";" in e.group(3)) == drop for e in events)
    source = [(timecode_frames(e.group(3), rate), timecode_frames(e.group(4), rate)) for e in events]
    record = [timecode_frames(e.group(5), rate) for e in events]
    assert source == planned(plan) == expected_kept(rate)
    assert record == record_starts(planned(plan))


# --- Final Cut Pro 7 XML ------------------------------------------------------------------------------


def test_fcp7_xml_frames_and_rate(hour, tmp_path):
    rate, plan = hour
    root = ET.parse(export_alone(plan, tmp_path / "out", ".xml")).getroot()
    for r in root.iter("rate"):
        timebase, ntsc = int(r.findtext("timebase")), r.findtext("ntsc") == "TRUE"
        assert Fraction(timebase) * (Fraction(1000, 1001) if ntsc else 1) == rate
    for tag in ("start", "end", "in", "out", "duration"):
        for el in root.iter(tag):
            assert re.fullmatch(r"-?\d+", el.text.strip()), (tag, el.text)
    items = root.findall("./project/children/sequence/media/video/track/clipitem")
    assert [(int(c.findtext("in")), int(c.findtext("out"))) for c in items] == expected_kept(rate)
    assert [int(c.findtext("start")) for c in items] == record_starts(expected_kept(rate))
    # The audio track links the same clip items (by id), one per kept segment.
    assert len(root.findall("./project/children/sequence/media/audio/track/clipitem")) == len(items)


# --- FCPXML -------------------------------------------------------------------------------------------


def fcpx_seconds(value: str) -> Fraction:
    assert re.fullmatch(r"\d+(/\d+)?s", value), value
    return Fraction(value[:-1])


def test_fcpxml_times_are_whole_frames_of_the_exact_duration(hour, tmp_path):
    rate, plan = hour
    root = ET.parse(export_alone(plan, tmp_path / "out", ".fcpxml")).getroot()
    frame = 1 / rate
    formats = root.findall(".//format")
    assert formats and all(fcpx_seconds(f.get("frameDuration")) == frame for f in formats)
    checked = 0
    for el in root.iter():
        for key in ("offset", "start", "duration", "tcStart"):
            if el.get(key) is not None:
                frames = fcpx_seconds(el.get(key)) / frame
                assert frames.denominator == 1, (el.tag, key, el.get(key))
                checked += 1
    assert checked > 10
    clips = root.findall(".//spine/clip")
    got = [
        (int(fcpx_seconds(c.get("start", "0s")) * rate), int(fcpx_seconds(c.get("duration")) * rate))
        for c in clips
    ]
    assert got == [(a, b - a) for a, b in expected_kept(rate)]
    offsets = [int(fcpx_seconds(c.get("offset")) * rate) for c in clips]
    assert offsets == record_starts(expected_kept(rate))
    # The sequence lasts exactly the kept frames.
    assert fcpx_seconds(root.find(".//sequence").get("duration")) * rate == plan.kept_frames


# --- chapters (milliseconds: each cue starts within half a millisecond of its frame) --------------------


@pytest.mark.parametrize("suffix", [".srt", ".vtt"])
def test_chapter_cues_start_on_the_edited_frames(hour, tmp_path, suffix):
    rate, plan = hour
    subs = pysubs2.load(str(export_alone(plan, tmp_path / "out", suffix)))
    starts = record_starts(planned(plan))
    ends = [s + (b - a) for s, (a, b) in zip(starts, planned(plan), strict=True)]
    assert len(subs) == len(starts)
    for cue, start, end in zip(subs, starts, ends, strict=True):
        assert abs(Fraction(cue.start) - Fraction(start) / rate * 1000) <= Fraction(1, 2)
        assert abs(Fraction(cue.end) - Fraction(end) / rate * 1000) <= Fraction(1, 2)
