"""Audio in every timeline export, read back and compared to the plan; honest --copy reports; rate refusals
that suggest only formats that work.

Clips are generated (tests/videogen.py): a tone with digital silence between, AAC mono 16 kHz, at 25 and
29.97 fps; a stereo 48 kHz remux of the 25 fps one; the same picture without any audio.
"""

from __future__ import annotations

import json
import re
import subprocess
import xml.etree.ElementTree as ET
from fractions import Fraction

import av
import opentimelineio as otio
import pytest

from grounding_agent.cli import main
from grounding_agent.edit import export, plan_edit
from grounding_agent.errors import EditError
from tests.videogen import FFMPEG, make_edit_video

RATES = {"25": Fraction(25), "ntsc": Fraction(30000, 1001)}
INSTRUCTIONS = {
    "25": "remove the silences, then cut 0:01.08 to 0:01.32",
    "ntsc": "cut 0:01 to 0:02, then cut 0:03.1 to 0:03.5",
}
EDL_EVENT = re.compile(r"^(\d{3,})\s+(\S+)\s+(\S+)\s+C\s+(\S+) (\S+) (\S+) (\S+)$", re.MULTILINE)


@pytest.fixture(scope="module")
def clips(tmp_path_factory):
    folder = tmp_path_factory.mktemp("audio-exports")
    mono25 = make_edit_video(folder / "tone25.mp4")
    stereo = folder / "stereo48k.mp4"
    subprocess.run([FFMPEG, "-nostdin", "-loglevel", "error", "-y", "-i", str(mono25), "-c:v", "copy", "-c:a",
                    "aac", "-ac", "2", "-ar", "48000", str(stereo)], check=True)  # fmt: skip
    return {
        "25": mono25,
        "ntsc": make_edit_video(
            folder / "tone2997.mp4",
            duration_s=4.0,
            fps="30000/1001",
            loud_spans=((0.0, 1.0), (2.0, 4.0)),
            colours=((0.0, "red"), (2.0, "blue")),
        ),  # fmt: skip
        "stereo": stereo,
        "silent": make_edit_video(folder / "silent25.mp4", audio=False),
    }


def plan_for(clips, name):
    return plan_edit(clips[name], INSTRUCTIONS["ntsc" if name == "ntsc" else "25"])


def planned(plan):
    return [(s.start_frame, s.num_frames) for s in plan.kept]


def track_ranges(timeline, kind, rate):
    return [
        [
            (round(c.source_range.start_time.to_frames(rate)), round(c.source_range.duration.to_frames(rate)))
            for c in track.find_clips()
        ]  # fmt: skip
        for track in timeline.tracks
        if track.kind == kind
    ]


def stream(path):
    with av.open(str(path)) as container:
        a = container.streams.audio[0]
        return a.channels, a.sample_rate


def fcpx_frames(element, key, rate):
    value = element.get(key, "0s")
    return int(Fraction(value.removesuffix("s")) * rate)


def read_fcpxml(path, rate):
    """(picture ranges, sound ranges, asset) from the FCPXML's rational times, in frames of `rate`."""
    root = ET.parse(path).getroot()
    video, audio = [], []
    for clip in root.findall(".//spine/clip"):
        video.append((fcpx_frames(clip, "start", rate), fcpx_frames(clip, "duration", rate)))
        for sound in clip.findall("clip[@lane='-1']"):
            assert sound.find("gap/audio").get("ref") == clip.find("video").get("ref")
            # A connected clip's offset is on its parent's timeline: equal to the parent's start = in sync.
            assert fcpx_frames(sound, "offset", rate) == fcpx_frames(clip, "start", rate)
            audio.append((fcpx_frames(sound, "start", rate), fcpx_frames(sound, "duration", rate)))
    return video, audio, root.find(".//resources/asset"), root.find(".//sequence")


def edl_events(path, rate):
    """[(channel field, source in frame, source frames)] from the EDL's event lines."""
    fps = float(rate)
    out = []
    for _, _, channel, src_in, src_out, _, _ in EDL_EVENT.findall(path.read_text()):
        a = otio.opentime.from_timecode(src_in, fps).to_frames()
        out.append((channel, a, otio.opentime.from_timecode(src_out, fps).to_frames() - a))
    return out


# --- audio in every export --------------------------------------------------------------------------------


@pytest.mark.parametrize("name", ["25", "ntsc"])
@pytest.mark.parametrize("suffix", [".otio", ".xml", ".edl"])
def test_adapters_read_back_sound_cut_as_the_picture(clips, name, suffix, tmp_path):
    plan, rate = plan_for(clips, name), RATES[name]
    path = export(plan, tmp_path / f"edit{suffix}")
    kwargs = {"rate": float(rate)} if suffix == ".edl" else {}
    timeline = otio.adapters.read_from_file(str(path), **kwargs)
    assert len(plan.kept) >= 2
    assert track_ranges(timeline, otio.schema.TrackKind.Video, float(rate)) == [planned(plan)]
    assert track_ranges(timeline, otio.schema.TrackKind.Audio, float(rate)) == [planned(plan)]


@pytest.mark.parametrize("name", ["25", "ntsc"])
def test_edl_events_carry_picture_and_sound(clips, name, tmp_path):
    plan, rate = plan_for(clips, name), RATES[name]
    events = edl_events(export(plan, tmp_path / "edit.edl"), rate)
    assert events == [("B", start, n) for start, n in planned(plan)]  # B: picture and audio 1 (mono)


@pytest.mark.parametrize("name", ["25", "ntsc"])
def test_fcpxml_connects_the_sound_and_describes_the_stream(clips, name, tmp_path):
    plan, rate = plan_for(clips, name), RATES[name]
    video, audio, asset, sequence = read_fcpxml(export(plan, tmp_path / "edit.fcpxml"), rate)
    assert video == audio == planned(plan)
    channels, sample_rate = stream(clips[name])
    assert (channels, sample_rate) == (1, 16000)
    assert asset.get("hasAudio") == "1" and asset.get("hasVideo") == "1"
    assert asset.get("audioSources") == "1"
    assert (asset.get("audioChannels"), asset.get("audioRate")) == (str(channels), str(sample_rate))
    assert sequence.get("audioLayout") == "mono" and sequence.get("audioRate") is None  # 16k: no DTD value


def test_fcpxml_adapter_reads_the_sound_back_as_a_track(clips, tmp_path):
    # The adapter's reader truncates 29.97 to 29 fps, so only the 25 fps clip is read back through it.
    plan = plan_for(clips, "25")
    timeline = otio.adapters.read_from_file(str(export(plan, tmp_path / "edit.fcpxml")))
    assert track_ranges(timeline, otio.schema.TrackKind.Video, 25) == [planned(plan)]
    assert track_ranges(timeline, otio.schema.TrackKind.Audio, 25) == [planned(plan)]


def test_stereo_48k_source_is_described_as_it_is(clips, tmp_path):
    plan = plan_for(clips, "stereo")
    assert stream(clips["stereo"]) == (2, 48000)
    _, audio, asset, sequence = read_fcpxml(export(plan, tmp_path / "s.fcpxml"), 25)
    assert audio == planned(plan)
    assert (asset.get("audioChannels"), asset.get("audioRate")) == ("2", "48000")
    assert (sequence.get("audioLayout"), sequence.get("audioRate")) == ("stereo", "48k")
    edl = export(plan, tmp_path / "s.edl")
    assert edl_events(edl, 25) == [("AA/V", start, n) for start, n in planned(plan)]
    timeline = otio.adapters.read_from_file(str(edl), rate=25)
    assert sorted(t.name for t in timeline.tracks) == ["A1", "A2", "V"]
    assert track_ranges(timeline, otio.schema.TrackKind.Audio, 25) == [planned(plan)] * 2


def test_a_clip_without_audio_stays_picture_only(clips, tmp_path):
    plan = plan_edit(clips["silent"], "cut 0:01.08 to 0:01.32, then cut 0:05 to 0:06")
    assert len(plan.kept) == 3
    for suffix in (".otio", ".xml"):
        timeline = otio.adapters.read_from_file(str(export(plan, tmp_path / f"q{suffix}")))
        assert track_ranges(timeline, otio.schema.TrackKind.Video, 25) == [planned(plan)]
        assert track_ranges(timeline, otio.schema.TrackKind.Audio, 25) == []
    assert edl_events(export(plan, tmp_path / "q.edl"), 25) == [("V", s, n) for s, n in planned(plan)]
    video, audio, asset, sequence = read_fcpxml(export(plan, tmp_path / "q.fcpxml"), 25)
    assert (video, audio) == (planned(plan), [])
    assert asset.get("hasAudio") == "0" and asset.get("audioChannels") is None
    assert sequence.get("audioLayout") is None


# --- rate refusals suggest only what works ------------------------------------------------------------------


@pytest.mark.parametrize(("fps", "refused"), [("9.53", {".edl", ".xml"}), ("12.5", {".edl", ".xml"}),
                                              ("10", {".edl", ".xml"}), ("24000/1001", set()),
                                              ("48000/1001", {".edl"})])  # fmt: skip
def test_rate_refusals_suggest_only_formats_that_work(fps, refused, tmp_path):
    clip = make_edit_video(tmp_path / "odd.mp4", duration_s=6.0, fps=fps, loud_spans=((0.0, 2.0), (4.0, 6.0)),
                           colours=((0.0, "red"),))  # fmt: skip
    plan = plan_edit(clip, "remove the silences")
    works, suggested = set(), {}
    for suffix in (".otio", ".edl", ".xml", ".fcpxml"):
        try:
            export(plan, tmp_path / f"edit{suffix}")
            works.add(suffix)
        except EditError as exc:
            assert not (tmp_path / f"edit{suffix}").exists()
            said = re.search(r"; export (.+) instead$", str(exc))
            assert said, exc
            suggested[suffix] = set(re.findall(r"\.\w+", said.group(1)))
    assert set(suggested) == refused
    assert works == {".otio", ".edl", ".xml", ".fcpxml"} - refused
    for suffix, formats in suggested.items():
        assert formats == works, (suffix, formats)  # every suggestion works, and every working one is named


# --- --copy reports the plan asked for, and the widening apart ---------------------------------------------


@pytest.fixture(scope="module")
def gop2s(tmp_path_factory):
    """12 s at 25 fps, a keyframe every 2 s."""
    return make_edit_video(tmp_path_factory.mktemp("gop") / "gop2s.mp4", gop=50)


def test_copy_render_reports_the_plan_and_the_widening_apart(gop2s, tmp_path, capsys):
    # Kept [0, 1) and [5, 12) = 8 s asked; the keyframes at 2 s and 4 s widen them to [0, 2) and [4, 12).
    args = ["edit", str(gop2s), "cut 0:01 to 0:05", "--render", str(tmp_path / "c.mp4"), "--copy"]
    assert main([*args, "--json"]) == 0
    render = json.loads(capsys.readouterr().out)["outputs"]["render"]
    assert (render["planned_s"], render["planned_frames"]) == (8.0, 200)
    assert (render["widened_s"], render["widened_frames"]) == (10.0, 250)
    assert abs(render["rendered_s"] - 10.0) <= 0.04 and render["rendered_frames"] == 250
    assert [(s["start_shift_s"], s["end_shift_s"]) for s in render["keyframe_shifts"]] == [
        (0, 1.0),
        (-1.0, 0),
    ]
    assert main([*args[:-2], str(tmp_path / "d.mp4"), "--copy"]) == 0
    text = capsys.readouterr().out
    assert re.search(r"\(copy\): 10\.0\d\d s, plan 8\.000 s$", text, re.MULTILINE), text
    assert "cut on keyframes: 10.000 s copied (+2.000 s against the plan)" in text
    assert "segment 1: start moved +0.000 s, end moved +1.000 s (to keyframes)" in text


def test_accurate_render_has_no_widening(gop2s, tmp_path, capsys):
    assert main(["edit", str(gop2s), "cut 0:01 to 0:05", "--render", str(tmp_path / "a.mp4"), "--json"]) == 0
    render = json.loads(capsys.readouterr().out)["outputs"]["render"]
    assert render["planned_frames"] == render["rendered_frames"] == 200
    assert "widened_s" not in render and "keyframe_shifts" not in render
