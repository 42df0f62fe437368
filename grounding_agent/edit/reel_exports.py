"""Write a `Reel` (clips of several sources) as one timeline: each source its own media reference, reel or
asset.

By suffix: `.otio` (each clip on its source's own frame grid and rate; an audio track where sources have
sound, gaps as long as the picture where not), `.edl` (CMX 3600: one unique reel name of at most 8 letters
and digits a source; each event "B" / "AA/V" for a source with mono / more sound, "V" for a silent one),
`.xml` (Final Cut Pro 7: one `file` a source; picture and sound), `.fcpxml` (Final Cut Pro X: one asset a
source, saying its sound; each clip of a source with sound carries it as a connected clip), `.json` (the
reel itself). Every clip's sound is on its picture's source range and record place; a silent source stays
picture-only. EDL, FCP7 XML and FCPXML are single-rate formats: there every time is a
whole frame of the record rate (a 25 fps clip in a 29.97 reel is counted in 29.97 frames from its real
times), so the record rate must be one the format holds. Each file is written atomically.
"""

from __future__ import annotations

import re
import xml.etree.ElementTree as ET
from fractions import Fraction
from pathlib import Path
from typing import Any

from grounding_agent.defaults import REELS
from grounding_agent.edit.exports import (
    FCPX_HEADER,
    FCPX_RATE_KEYS,
    FCPX_TIME_ATTRIBUTES,
    ascii_line,
    edl_channels,
    fcpx_asset_audio,
    fcpx_connect_audio,
    fcpx_sequence_audio,
    fcpx_time,
    one_line,
    rate_problem,
    utf8_text,
)
from grounding_agent.edit.paths import check_output
from grounding_agent.edit.reel import Reel, ReelClip
from grounding_agent.edit.timeline import SourceAudio, source_audio
from grounding_agent.errors import EditError
from grounding_agent.io import atomic_path, write_json_atomic

REEL_EXPORTS = {
    ".otio": "OpenTimelineIO",
    ".edl": "CMX 3600 EDL",
    ".xml": "Final Cut Pro 7 XML",
    ".fcpxml": "Final Cut Pro X XML",
    ".json": "reel JSON",
}
_ADAPTERS = {".otio": "otio_json", ".edl": "cmx_3600", ".xml": "fcp_xml"}


def export_reel(reel: Reel, path: str | Path) -> Path:
    """Write `reel` to `path` in the format its suffix names.

    Raises:
        EditError: unknown suffix, or a single-rate format that cannot hold the record rate.
        OutputError: the path cannot be written.
    """
    import opentimelineio as otio

    suffix = Path(path).suffix.lower()
    if suffix not in REEL_EXPORTS:
        raise EditError(
            f"{path}: a reel exports to {', '.join(REEL_EXPORTS)}; got {suffix or '(no suffix)'!r}"
        )
    for source in reel.sources:
        check_output(path, source)
    if suffix == ".json":
        return write_json_atomic(path, reel.to_dict())
    problem = rate_problem(reel.record_rate, suffix)
    if problem is not None:
        raise EditError(
            f"{path}: {problem}; this reel runs at {float(reel.record_rate):g} fps: pass --fps 25"
        )
    sounds = {p: source_audio(p) for p in reel.sources}
    # As for one source (`exports.export`): the EDL and FCPXML adapters get the picture, and each clip's
    # sound is added to what they write, on the same source range.
    timeline = reel_timeline(reel, exact=suffix == ".otio", audio=suffix in (".otio", ".xml"))
    with atomic_path(path) as tmp:
        try:
            if suffix == ".fcpxml":
                tmp.write_text(_fcpx(timeline, reel, sounds), encoding="utf-8")
            elif suffix == ".edl":
                _edl_names(timeline, reel)
                text = otio.adapters.write_to_string(timeline, adapter_name="cmx_3600")
                clip_sounds = [sounds[Path(c.video.path).resolve()] for c in reel.clips]
                tmp.write_text(edl_channels(text, clip_sounds), encoding="utf-8")
            else:
                otio.adapters.write_to_file(timeline, str(tmp), adapter_name=_ADAPTERS[suffix])
        except (otio.exceptions.OTIOError, ValueError, KeyError, TypeError, SyntaxError) as exc:
            raise EditError(f"{path}: the {REEL_EXPORTS[suffix]} writer failed ({exc})") from None
    return Path(path)


def reel_timeline(reel: Reel, *, exact: bool = True, audio: bool = True) -> Any:
    """An OTIO `Timeline` of the reel: a video track (and an audio track when a source has sound) whose
    clips reference their sources. exact: each clip on its source's grid and rate; else every time in
    whole frames of the record rate (the single-rate formats)."""
    import opentimelineio as otio

    timeline = otio.schema.Timeline(name="reel")
    timeline.global_start_time = otio.opentime.RationalTime(0, _otio_rate(reel.record_rate))
    timeline.metadata["grounding_agent"] = {"sources": [utf8_text(str(s)) for s in reel.sources]}
    sounds = {p: source_audio(p) for p in reel.sources} if audio else {}
    kinds = [otio.schema.TrackKind.Video]
    if any(s is not None for s in sounds.values()):
        kinds.append(otio.schema.TrackKind.Audio)
    record = reel.record_frames()
    for kind in kinds:
        track = otio.schema.Track(name="V1" if kind == otio.schema.TrackKind.Video else "A1", kind=kind)
        for i, (clip, (a, b)) in enumerate(zip(reel.clips, record, strict=True)):
            item = _clip(reel, clip, i, (a, b), exact)
            if kind == otio.schema.TrackKind.Audio and sounds.get(Path(clip.video.path).resolve()) is None:
                # As long as the picture it stands under (on its source's rate when exact), or the sound
                # after it would drift out of sync.
                length = item.source_range.duration
                item = otio.schema.Gap(source_range=_range(0, length.value, length.rate))
            track.append(item)
        timeline.tracks.append(track)
    return timeline


def _clip(reel: Reel, clip: ReelClip, i: int, record: tuple[int, int], exact: bool) -> Any:
    import opentimelineio as otio

    path = Path(clip.video.path).resolve()
    if exact:
        rate = clip.grid.rate
        start, length, total = _frames(clip.start_s, rate), None, _frames(clip.video.duration_s, rate)
        length = _frames(clip.end_s, rate) - start
    else:  # the record rate: the source's real start counted in record frames, the record length
        rate = reel.record_rate
        start, length, total = (
            _frames(clip.start_s, rate),
            record[1] - record[0],
            _frames(clip.video.duration_s, rate),
        )
    otio_rate = _otio_rate(rate)
    reference = otio.schema.ExternalReference(
        target_url=path.as_uri(), available_range=_range(0, total, otio_rate)
    )
    item = otio.schema.Clip(
        name=f"{one_line(path.stem)}_{i + 1:03d}",
        media_reference=reference,
        source_range=_range(start, length, otio_rate),
    )
    item.metadata["grounding_agent"] = {
        "clip": i,
        "source": utf8_text(str(path)),
        "source_rate": f"{clip.grid.rate.numerator}/{clip.grid.rate.denominator}",
        "start_frame": clip.start_frame,
        "end_frame": clip.end_frame,
        "start_s": clip.start_s,
        "end_s": clip.end_s,
        "reason": utf8_text(clip.reason),
    }
    return item


def _range(start: int, length: int, rate: float) -> Any:
    from opentimelineio.opentime import RationalTime, TimeRange

    return TimeRange(RationalTime(start, rate), RationalTime(length, rate))


def _frames(seconds: float, rate: Fraction) -> int:
    return round(Fraction(seconds) * rate)


def _otio_rate(rate: Fraction) -> float:
    return float(rate)


def edl_reel_names(reel: Reel) -> dict[Path, str]:
    """One CMX 3600 reel name a source: its stem's letters and digits, at most 8, unique (a clash gets a
    number in its last places), "AX" + a number when nothing is left."""
    names: dict[Path, str] = {}
    for source in reel.sources:
        base = re.sub(r"[^A-Za-z0-9]", "", ascii_line(source.stem)).upper()[:8] or "AX"
        name, k = base, 1
        while name in names.values():
            k += 1
            name = base[: 8 - len(str(k))] + str(k)
        names[source] = name
    return names


def _edl_names(timeline: Any, reel: Reel) -> None:
    """ASCII names on one line, and each clip its source's reel name."""
    names = edl_reel_names(reel)
    timeline.name = ascii_line(timeline.name)
    for clip in timeline.find_clips():
        clip.name = ascii_line(clip.name)
        source = Path(clip.metadata["grounding_agent"]["source"])
        clip.metadata.setdefault("cmx_3600", {})["reel"] = names[source]


def _fcpx(timeline: Any, reel: Reel, sounds: dict[Path, SourceAudio | None]) -> str:
    """The FCPXML adapter's document with exact rational times and the real names (as `exports` does for
    one source: placeholder names keep apostrophes out of the adapter's XPath lookups). Each clip of a
    source with sound carries it as a connected clip; each asset says its own source's sound (`hasAudio`);
    the sequence's is what `render_reel` makes of them (stereo at `REELS.audio_rate`)."""
    import opentimelineio as otio

    rate = reel.record_rate
    written_rate = FCPX_RATE_KEYS.get(float(rate), float(rate))
    for clip in timeline.find_clips():  # the adapter looks NTSC rates up by rounded keys
        r = clip.source_range
        clip.source_range = _range(round(r.start_time.value), round(r.duration.value), written_rate)
        a = clip.media_reference.available_range
        clip.media_reference.available_range = _range(0, round(a.duration.value), written_rate)
    names = {"ga-timeline": timeline.name}
    timeline.name = "ga-timeline"
    for i, clip in enumerate(timeline.find_clips()):
        names[f"ga-clip-{i}"], clip.name = clip.name, f"ga-clip-{i}"
    root = ET.fromstring(otio.adapters.write_to_string(timeline, adapter_name="fcpx_xml"))
    _fcpx_sound(root, reel, sounds)
    written, frame = Fraction(str(written_rate)), 1 / rate
    for element in root.iter():
        for key in FCPX_TIME_ATTRIBUTES:
            value = element.get(key)
            if value is not None:
                element.set(key, fcpx_time(round(Fraction(value.removesuffix("s")) * written) * frame))
        if element.tag == "format":
            element.set("frameDuration", fcpx_time(frame))
            element.set("width", str(reel.record_size[0]))
            element.set("height", str(reel.record_size[1]))
        if element.get("name") in names:
            element.set("name", names[element.get("name")])
    sources = {p.as_uri(): p for p in reel.sources}
    for asset in root.iter("asset"):  # the adapter names an asset after its first clip; it is a source
        asset.set("name", one_line(sources[asset.get("src", "")].name))
    ET.indent(root, space="    ")
    return FCPX_HEADER + ET.tostring(root, encoding="unicode") + "\n"


def _fcpx_sound(root: ET.Element, reel: Reel, sounds: dict[Path, SourceAudio | None]) -> None:
    """Connected sound under each clip whose source has some; every asset (one a source, named after it)
    and the sequence say what sound they have."""
    by_url = {p.as_uri(): sound for p, sound in sounds.items()}
    for asset in root.iter("asset"):
        fcpx_asset_audio(asset, by_url[asset.get("src", "")])
    for i, clip in enumerate(reel.clips):
        if sounds[Path(clip.video.path).resolve()] is not None:
            fcpx_connect_audio(root.find(f".//spine/clip[@name='ga-clip-{i}']"))
    if any(s is not None for s in sounds.values()):
        fcpx_sequence_audio(root.find(".//sequence"), SourceAudio(2, REELS.audio_rate, "stereo"))
