"""Edits across clips (`edit.reel`): exports with several sources read back through OTIO's adapters, and
renders of mixed sizes and rates that are frame-exact, as long as their clips, at the record format."""

from __future__ import annotations

import subprocess
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


def _encode(path: Path, size: str, rate: str, audio: bool) -> Path:
    args = ["ffmpeg", "-nostdin", "-loglevel", "error", "-y", "-f", "lavfi",
            "-i", f"testsrc=size={size}:rate={rate}:duration=4"]  # fmt: skip
    if audio:
        args += ["-f", "lavfi", "-i", "sine=frequency=440:sample_rate=44100:duration=4", "-c:a", "aac"]
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
    """Two clips of different sizes and rates: 640x360 at 25 fps with sound, 1280x720 at 29.97 without."""
    folder = tmp_path_factory.mktemp("reel")
    return {
        "small": _encode(folder / "small clip.mp4", "640x360", "25", audio=True),
        "large": _encode(folder / "large.mp4", "1280x720", "30000/1001", audio=False),
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
    back = otio.adapters.read_from_file(str(edl), rate=25)
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
