"""Edits across clips (`edit.reel`): exports with several sources read back through OTIO's adapters (each clip's
sound on its picture's source range and record place, frame-exact; a silent source picture-only), and renders
of mixed sizes and rates that are frame-exact, as long as their clips, at the record format."""

from __future__ import annotations

import re
import subprocess
import xml.etree.ElementTree as ET
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path

import av
import numpy as np
import opentimelineio as otio
import pytest

from grounding_agent.cli import main
from grounding_agent.edit.reel import Reel, ReelClip
from grounding_agent.edit.reel_exports import edl_reel_names, export_reel
from grounding_agent.edit.reel_render import render_reel
from grounding_agent.edit.timeline import FrameGrid
from grounding_agent.errors import EditError
from grounding_agent.media.video import open_video
from grounding_agent.types import Evidence


@dataclass(frozen=True)
class HitStandIn:
    """A stand-in for the library's SearchHit (plain data: what a reel reads of a hit)."""

    path: Path
    start_s: float
    end_s: float
    score: float
    evidence: tuple[Evidence, ...] = ()


def _encode(path: Path, size: str, rate: str, audio: bool, stereo: bool = False) -> Path:
    args = ["ffmpeg", "-nostdin", "-loglevel", "error", "-y", "-f", "lavfi",
            "-i", f"testsrc=size={size}:rate={rate}:duration=4"]  # fmt: skip
    if audio:
        hz = 48000 if stereo else 44100
        args += ["-f", "lavfi", "-i", f"sine=frequency=440:sample_rate={hz}:duration=4", "-c:a", "aac"]
        args += ["-ac", "2"] if stereo else []
    args += [
        "-c:v",
        "libx264",
        "-preset",
        "ultrafast",
        "-pix_fmt",
        "yuv420p",
        "-g",
        "12",
        "-shortest",
        str(path),
    ]
    subprocess.run(args, check=True)
    return path


@pytest.fixture(scope="session")
def sources(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """Clips of different sizes, rates and sound: 640x360 at 25 fps with mono 44.1 kHz sound, 1280x720 at
    29.97 without sound, 320x240 at 25 with stereo 48 kHz sound."""
    folder = tmp_path_factory.mktemp("reel")
    return {
        "small": _encode(folder / "small clip.mp4", "640x360", "25", audio=True),
        "large": _encode(folder / "large.mp4", "1280x720", "30000/1001", audio=False),
        "stereo": _encode(folder / "stereo.mp4", "320x240", "25", audio=True, stereo=True),
    }


def _clip(path: Path, start_s: float, end_s: float) -> ReelClip:
    video = open_video(path)
    grid = FrameGrid.from_video(video)
    return ReelClip(video, grid, *grid.frames(start_s, end_s), reason="test")


@pytest.fixture(scope="session")
def reel(sources: dict[str, Path]) -> Reel:
    return Reel([_clip(sources["small"], 1.0, 2.0), _clip(sources["large"], 0.5005, 2.5025),
                 _clip(sources["small"], 2.4, 3.2)])  # fmt: skip


def test_from_hits_merges_overlaps_keeps_the_budget_and_plays_by_source(sources: dict[str, Path]) -> None:
    small, large = sources["small"], sources["large"]
    hits = [HitStandIn(large, 0.5, 1.5, 0.9), HitStandIn(small, 1.0, 2.0, 0.8),
            HitStandIn(large, 1.2, 2.0, 0.7), HitStandIn(small, 2.8, 3.6, 0.6), HitStandIn(small, 0.0, 1.0, 0.5)]  # fmt: skip
    reel = Reel.from_hits(hits, total_s=3.0, min_clip_s=0.5)
    assert [Path(c.video.path).name for c in reel.clips] == ["large.mp4", "small clip.mp4", "small clip.mp4"]
    assert reel.clips[0].start_s == pytest.approx(0.5005, abs=0.02)  # hits 1 and 3 merged: 0.5-2.0
    assert reel.clips[0].end_s == pytest.approx(2.0, abs=0.02)
    assert reel.duration_s == pytest.approx(3.0, abs=0.05)  # the budget, the last clip cut short
    assert any("cut short" in n for n in reel.notes) and any("left out" in n for n in reel.notes)
    best_first = Reel.from_hits(hits, total_s=None, min_clip_s=0.5, order="score")
    # Best first; the small clip's 0-1 and 1-2 s hits touch, so they play as one clip from 0 s.
    assert [round(c.start_s, 1) for c in best_first.clips] == [0.5, 0.0, 2.8]
    with pytest.raises(EditError, match="found nothing"):
        Reel.from_hits([])


def test_otio_reads_back_each_source_frame_exact(
    reel: Reel, tmp_path: Path, sources: dict[str, Path]
) -> None:
    timeline = otio.adapters.read_from_file(str(export_reel(reel, tmp_path / "reel.otio")))
    video, audio = timeline.tracks
    clips = list(video.find_clips())
    assert [Path(otio.url_utils.filepath_from_url(c.media_reference.target_url)) for c in clips] == [
        sources["small"].resolve(),
        sources["large"].resolve(),
        sources["small"].resolve(),
    ]
    ranges = [(c.source_range.start_time.value, c.source_range.duration.value, c.source_range.start_time.rate)
              for c in clips]  # fmt: skip
    assert ranges == [(25, 25, 25), (15, 60, pytest.approx(29.97, abs=0.01)), (60, 20, 25)]
    assert [c.metadata["grounding_agent"]["start_frame"] for c in clips] == [25, 15, 60]
    # The silent source's place on the sound track is a gap as long as its picture.
    assert [type(item).__name__ for item in audio] == ["Clip", "Gap", "Clip"]
    assert audio[1].duration().to_seconds() == pytest.approx(2.002, abs=0.04)


def test_edl_fcp7_and_fcpxml_parse_back_with_one_reel_or_asset_per_source(reel: Reel, tmp_path: Path) -> None:
    edl = export_reel(reel, tmp_path / "reel.edl")
    names = edl_reel_names(reel)
    assert len(set(names.values())) == 2 and all(len(n) <= 8 and n.isalnum() for n in names.values())
    back = otio.adapters.read_from_file(str(edl), rate=25).video_tracks()[0]
    assert [c.metadata["cmx_3600"]["reel"] for c in back.find_clips()] == ["SMALLCLI", "LARGE", "SMALLCLI"]
    # One record rate (the first source's): the 29.97 clip's real 0.5005-2.5025 s is 25 fps frames 13-63.
    assert [(c.source_range.start_time.value, c.source_range.duration.value) for c in back.find_clips()] == [
        (25, 25),
        (13, 50),
        (60, 20),
    ]
    for suffix, adapter in ((".xml", "fcp_xml"), (".fcpxml", "fcpx_xml")):
        doc = otio.adapters.read_from_file(
            str(export_reel(reel, tmp_path / f"reel{suffix}")), adapter_name=adapter
        )
        picture = doc.video_tracks()[0]
        urls = {c.media_reference.target_url for c in picture.find_clips()}
        assert len(urls) == 2, suffix
        assert [round(c.source_range.duration.to_seconds(), 3) for c in picture.find_clips()] == [
            1.0,
            2.0,
            0.8,
        ]


# --- sound in every export: each clip's sound on its picture's source range -----------------------------------


@pytest.fixture(scope="session")
def sound_reel(sources: dict[str, Path]) -> Reel:
    """Mono, silent, stereo, mono again: four clips, three sources, at the record rate of the first (25)."""
    return Reel([_clip(sources["small"], 1.0, 2.0), _clip(sources["large"], 0.5005, 2.5025),
                 _clip(sources["stereo"], 0.4, 1.2), _clip(sources["small"], 2.4, 3.2)])  # fmt: skip


def _frames_at(t: otio.opentime.RationalTime, rate: float) -> int:
    """`t` in whole frames of `rate`; fails unless it is one (frame-exact)."""
    frames = t.value_rescaled_to(rate)
    assert frames == pytest.approx(round(frames), abs=1e-6)
    return round(frames)


def _track_clips(timeline, kind: str) -> list[list[tuple[str, int, int, float]]]:
    """Per track of `kind`: (clip name, source in, source frames, record in) of each clip: source times in
    whole frames of the clip's own rate, record in as seconds from the track's start (as the adapters place
    it: the EDL reader starts a track at its first event and says so in its source range)."""
    out = []
    for track in timeline.tracks:
        if track.kind != kind:
            continue
        shift = track.source_range.start_time if track.source_range is not None else None
        rows = []
        for clip in track.find_clips():
            rate = clip.source_range.start_time.rate
            record = clip.range_in_parent().start_time - (shift or otio.opentime.RationalTime(0, rate))
            r = clip.source_range
            rows.append((clip.name, _frames_at(r.start_time, rate), _frames_at(r.duration, rate),
                         round(record.to_seconds(), 6)))  # fmt: skip
        out.append(rows)
    return out


@pytest.mark.parametrize("suffix", [".edl", ".fcpxml", ".xml", ".otio"])
def test_every_export_carries_each_clips_sound_on_its_pictures_range(
    sound_reel: Reel, suffix: str, tmp_path: Path
) -> None:
    path = export_reel(sound_reel, tmp_path / f"reel{suffix}")
    timeline = otio.adapters.read_from_file(str(path), **({"rate": 25} if suffix == ".edl" else {}))
    (picture,) = _track_clips(timeline, otio.schema.TrackKind.Video)
    sound = _track_clips(timeline, otio.schema.TrackKind.Audio)
    assert [name.rsplit("_", 1)[0] for name, *_ in picture] == ["small clip", "large", "stereo", "small clip"]
    if suffix != ".otio":  # the single-rate formats: the 29.97 clip's 0.5005-2.5025 s is 25 fps frames 13-63
        assert [row[1:] for row in picture] == [(25, 25, 0), (13, 50, 1), (10, 20, 3), (60, 20, 3.8)]
    by_name = {row[0]: row for row in picture}
    heard = [name for name, *_ in picture if not name.startswith("large")]
    # Sound on A1 for every clip whose source has some, at the same source range and record place.
    assert sound[0] == [by_name[name] for name in heard]
    if suffix == ".edl":  # AA/V: the stereo clip's second channel on A2
        assert sound[1:] == [[by_name["stereo_003"]]]
    else:
        assert len(sound) == 1


def test_edl_events_say_each_sources_channels(sound_reel: Reel, tmp_path: Path) -> None:
    text = export_reel(sound_reel, tmp_path / "reel.edl").read_text()
    events = re.findall(r"^\d{3}\s+(\S+)\s+(\S+)\s+C\s", text, re.MULTILINE)
    # B: picture and mono sound; V: picture only (a silent source); AA/V: picture and two sound channels.
    assert events == [("SMALLCLI", "B"), ("LARGE", "V"), ("STEREO", "AA/V"), ("SMALLCLI", "B")]


def test_fcpxml_assets_say_each_sources_sound(sound_reel: Reel, tmp_path: Path) -> None:
    root = ET.parse(export_reel(sound_reel, tmp_path / "reel.fcpxml")).getroot()
    assets = {a.get("name"): a for a in root.iter("asset")}
    assert set(assets) == {"small clip.mp4", "large.mp4", "stereo.mp4"}  # one a source, named after it
    described = {
        name: (a.get("hasAudio"), a.get("audioChannels"), a.get("audioRate")) for name, a in assets.items()
    }
    assert described == {"small clip.mp4": ("1", "1", "44100"), "large.mp4": ("0", None, None),
                         "stereo.mp4": ("1", "2", "48000")}  # fmt: skip
    sequence = root.find(".//sequence")  # what the render makes of them
    assert (sequence.get("audioLayout"), sequence.get("audioRate")) == ("stereo", "48k")
    spine = root.findall(".//spine/clip")
    connected = [[(c.get("start"), c.get("duration"), c.get("offset")) for c in clip.findall("clip[@lane='-1']")]
                 for clip in spine]  # fmt: skip
    # Each sound clip spans its picture's source range; its offset (on the parent's timeline) is its start.
    assert connected == [
        [(c.get("start"), c.get("duration"), c.get("start"))] if not c.get("name").startswith("large") else []
        for c in spine
    ]


def test_a_reel_of_silent_sources_is_picture_only_everywhere(
    sources: dict[str, Path], tmp_path: Path
) -> None:
    silent = Reel([_clip(sources["large"], 0.5005, 2.5025), _clip(sources["large"], 3.0, 3.5)])
    for suffix, kwargs in ((".edl", {"rate": 30000 / 1001}), (".xml", {}), (".otio", {})):
        timeline = otio.adapters.read_from_file(str(export_reel(silent, tmp_path / f"s{suffix}")), **kwargs)
        assert len(_track_clips(timeline, otio.schema.TrackKind.Video)[0]) == 2, suffix
        assert _track_clips(timeline, otio.schema.TrackKind.Audio) == [], suffix
    root = ET.parse(export_reel(silent, tmp_path / "s.fcpxml")).getroot()
    assert not root.findall(".//clip[@lane='-1']") and root.find(".//sequence").get("audioLayout") is None
    assert [a.get("hasAudio") for a in root.iter("asset")] == ["0"]


def test_a_rate_the_format_cannot_hold_is_refused_and_nothing_written(reel: Reel, tmp_path: Path) -> None:
    odd = Reel(reel.clips, rate=Fraction(25, 2))
    with pytest.raises(EditError, match="SMPTE"):
        export_reel(odd, tmp_path / "odd.edl")
    assert not list(tmp_path.iterdir())


def _frames(path: Path) -> list[np.ndarray]:
    with av.open(str(path)) as container:
        return [f.to_ndarray(format="rgb24").astype(np.int16) for f in container.decode(video=0)]


@pytest.mark.slow
def test_render_is_frame_exact_and_as_long_as_its_clips(sources: dict[str, Path], tmp_path: Path) -> None:
    small = sources["small"]
    reel = Reel([_clip(small, 1.0, 2.0), _clip(small, 2.4, 3.2)])
    result = render_reel(reel, tmp_path / "same.mp4")
    assert result.rendered_frames == 45 and abs(result.rendered_s - 1.8) <= 1 / 25
    out, src = _frames(tmp_path / "same.mp4"), _frames(small)
    # Output frame k is source frame 25 + k, then 60 + (k - 25): each closer to its own than to a neighbour.
    for k, j in ((0, 25), (24, 49), (25, 60), (44, 79)):
        here = np.abs(out[k] - src[j]).mean()
        assert (
            here < 6
            and here < np.abs(out[k] - src[j + 1]).mean()
            and here < np.abs(out[k] - src[j - 1]).mean()
        )


@pytest.mark.slow
def test_mixed_sizes_and_rates_are_normalised(reel: Reel, tmp_path: Path) -> None:
    first = render_reel(reel, tmp_path / "first.mp4")  # to the first source: 640x360 at 25
    video = open_video(tmp_path / "first.mp4")
    assert (video.width, video.height) == (640, 360) and video.avg_fps == pytest.approx(25)
    assert abs(video.duration_s - reel.duration_s) <= 1 / 25 + 1e-3 and first.rendered_frames == 95
    with av.open(str(tmp_path / "first.mp4")) as c:  # sound throughout: the silent source's part is silence
        assert c.streams.audio and c.streams.audio[0].sample_rate == 48000
        assert float(c.streams.audio[0].duration * c.streams.audio[0].time_base) == pytest.approx(
            3.8, abs=0.05
        )
    hd = Reel(reel.clips, rate=Fraction(30000, 1001), size=(1280, 720))
    render_reel(hd, tmp_path / "hd.mp4")
    video = open_video(tmp_path / "hd.mp4")
    assert (video.width, video.height, video.num_frames) == (1280, 720, 114)
    assert abs(video.duration_s - hd.duration_s) <= 1001 / 30000 + 1e-3


def test_cli_writes_every_output_or_none(sources: dict[str, Path], tmp_path: Path, capsys) -> None:
    clips = ["--clip", f"{sources['small']}@1-2", "--clip", f"{sources['large']}@0:00.5-0:01.5"]
    assert (
        main(["reel", *clips, "--export", str(tmp_path / "r.otio"), "--export", str(tmp_path / "r.json")])
        == 0
    )
    assert (tmp_path / "r.otio").is_file() and (tmp_path / "r.json").is_file()
    # The EDL cannot hold 12.5 fps: neither it nor the .otio before it is written.
    bad = [
        "reel",
        *clips,
        "--fps",
        "12.5",
        "--export",
        str(tmp_path / "b.otio"),
        "--export",
        str(tmp_path / "b.edl"),
    ]
    assert main(bad) == 2
    assert not (tmp_path / "b.otio").exists() and not (tmp_path / "b.edl").exists()
    assert "SMPTE" in capsys.readouterr().err
    assert main(["reel", "--clip", f"{sources['small']}@2-1"]) == 2
    assert main(["reel", "--clip", "nonsense"]) == 2
    assert main(["reel", *clips, "--export", str(tmp_path / "r.mp3")]) == 2
