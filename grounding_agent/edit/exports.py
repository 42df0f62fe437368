"""Write an `EditPlan` where editors can use it: OpenTimelineIO timelines and chapter files.

By suffix: `.otio` (OpenTimelineIO JSON), `.edl` (CMX 3600), `.xml` (Final Cut Pro 7 / Premiere /
Resolve XML), `.fcpxml` (Final Cut Pro X) - all through OpenTimelineIO and its adapters -, `.srt` /
`.vtt` chapter cues (pysubs2), `.txt` a YouTube-style chapter list, `.json` the plan itself.
Timelines cut the source on its frame grid: clip i is frames [start, end) of the source at the nominal
rate (the decoder's frame indices on a constant-rate video; on a variable-rate one, the frames of the
nominal rate at the segments' real times); chapters are in the edited video's time. Every file is written
atomically. Timelines carry the source's sound, cut as the picture, when it has any: an OTIO / FCP7 audio
track, FCPXML connected audio and the asset's channels and rate, EDL channel "B" or "AA/V".

Every timeline time is a whole number of frames of the exact rate (24000/1001, not 23.976 or 23.98): OTIO
holds frame counts; the FCPXML adapter writes float seconds at a rounded NTSC rate, so its times are read back
as frame counts and rewritten as exact rationals. Names that would break a format are made safe: one line of
printable text everywhere (a newline in a file name cannot add EDL events), ASCII and CMX 3600 reel names in
an EDL, and no name ever reaches the FCPXML adapter's XPath lookups (it cannot quote an apostrophe).
"""

from __future__ import annotations

import re
import unicodedata
import xml.etree.ElementTree as ET
from fractions import Fraction
from pathlib import Path
from typing import Any

from grounding_agent.edit.paths import check_output
from grounding_agent.edit.plan import EditPlan
from grounding_agent.edit.timeline import STANDARD_RATES, SourceAudio, is_smpte_rate, source_audio
from grounding_agent.errors import EditError
from grounding_agent.io import atomic_path, write_json_atomic, write_text_atomic

EXPORTS = {
    ".otio": "OpenTimelineIO",
    ".edl": "CMX 3600 EDL",
    ".xml": "Final Cut Pro 7 XML",
    ".fcpxml": "Final Cut Pro X XML",
    ".srt": "SRT chapters",
    ".vtt": "WebVTT chapters",
    ".txt": "YouTube chapter list",
    ".json": "edit plan JSON",
}
_OTIO_ADAPTERS = {".otio": "otio_json", ".edl": "cmx_3600", ".xml": "fcp_xml", ".fcpxml": "fcpx_xml"}
# The FCPXML adapter looks NTSC rates up by these rounded keys (its times are then rewritten exactly).
FCPX_RATE_KEYS = {24000 / 1001: 23.98, 30000 / 1001: 29.97, 60000 / 1001: 59.94}
FCPX_TIME_ATTRIBUTES = ("offset", "start", "duration", "tcStart")
FCPX_HEADER = '<?xml version="1.0" encoding="UTF-8"?>\n<!DOCTYPE fcpxml>\n'
# A sequence's audio as FCPXML's DTD spells it (an asset's audioRate is plain hertz).
_FCPX_SEQUENCE_RATES = {32000: "32k", 44100: "44.1k", 48000: "48k", 88200: "88.2k", 96000: "96k",
                        176400: "176.4k", 192000: "192k"}  # fmt: skip
_TIMELINE_FORMATS = (".otio", ".edl", ".xml", ".fcpxml")
_FCP7_RATES = tuple(sorted({*STANDARD_RATES, Fraction(48000, 1001)}))  # OTIO's SMPTE timecode rates
# A CMX 3600 event line as the adapter writes it: number, reel, channel field "V" padded to 5, C or D.
_EDL_VIDEO_EVENT = re.compile(r"^(\d{3,}\s+\S+\s+)V {4}(?= [CD]\s)", re.MULTILINE)
# Characters XML 1.0 cannot hold, and C0/C1 controls; lone surrogates (undecodable file-name bytes) too.
_UNPRINTABLE = re.compile(r"[\x00-\x1f\x7f-\x9f\ud800-\udfff\ufffe\uffff]+")


def export_format(path: str | Path) -> str:
    """The format a path's suffix asks for; raises EditError for an unknown one."""
    suffix = Path(path).suffix.lower()
    if suffix not in EXPORTS:
        known = ", ".join(EXPORTS)
        raise EditError(f"{path}: unknown export format {suffix or '(no suffix)'!r}; use one of {known}")
    return suffix


def export(plan: EditPlan, path: str | Path) -> Path:
    """Write `plan` to `path` in the format its suffix names.

    Raises:
        EditError: unknown suffix, nothing kept, or a format that cannot hold this video's rate.
        OutputError: the path cannot be written.
    """
    suffix = export_format(path)
    check_output(path, plan.video.path)
    if suffix == ".json":
        return write_json_atomic(path, plan.to_dict())
    if plan.keeps_nothing:
        raise EditError(f"{path}: the edit keeps nothing, so there is nothing to export")
    if suffix in (".srt", ".vtt"):
        return write_text_atomic(path, chapters_subtitles(plan, suffix[1:]))
    if suffix == ".txt":
        return write_text_atomic(path, youtube_chapters(plan))
    import opentimelineio as otio

    _check_rate(plan, path, suffix)
    audio = source_audio(plan.video.path)
    # The EDL and FCPXML adapters get the picture; its sound is added to what they write (the EDL adapter
    # writes one track's events, and the FCPXML one cannot place connected audio at rates like 12.5 fps).
    timeline = to_timeline(plan, fcpx=suffix == ".fcpxml", audio=suffix in (".otio", ".xml"))
    with atomic_path(path) as tmp:
        try:
            if suffix == ".fcpxml":
                tmp.write_text(_fcpx_xml(timeline, plan, audio), encoding="utf-8")
            elif suffix == ".edl":
                _edl_names(timeline)
                text = otio.adapters.write_to_string(timeline, adapter_name="cmx_3600")
                tmp.write_text(_edl_channels(text, audio, len(plan.kept)), encoding="utf-8")
            else:
                otio.adapters.write_to_file(timeline, str(tmp), adapter_name=_OTIO_ADAPTERS[suffix])
        except (otio.exceptions.OTIOError, ValueError, KeyError, TypeError, SyntaxError) as exc:
            raise EditError(f"{path}: the {EXPORTS[suffix]} writer failed ({exc})") from None
    return Path(path)


def rate_problem(rate: Fraction, suffix: str) -> str | None:
    """Why the timeline format `suffix` cannot hold `rate` (its times would drift), or None if it can."""
    from opentimelineio.opentime import RationalTime

    if suffix == ".edl" and not is_smpte_rate(rate):
        return f"an EDL needs a SMPTE frame rate ({_rates_text(STANDARD_RATES)})"
    # FCP7 XML says a rate as a whole timebase and an NTSC flag (timebase x 1000/1001), and its adapter
    # writes SMPTE timecodes, which OTIO makes only at these rates (10 or 12.5 fps fail inside it).
    if suffix == ".xml" and not RationalTime.is_valid_timecode_rate(float(rate)):
        return f"Final Cut Pro 7 XML needs a SMPTE timecode rate ({_rates_text(_FCP7_RATES)})"
    return None


def _rates_text(rates: tuple[Fraction, ...]) -> str:
    return ", ".join(f"{float(r):.3f}".rstrip("0").rstrip(".") for r in rates)


def _check_rate(plan: EditPlan, path: str | Path, suffix: str) -> None:
    """Refuse a format whose frame grid cannot hold this video's rate, naming only formats that can."""
    rate = plan.grid.rate
    problem = rate_problem(rate, suffix)
    if problem is not None:
        usable = [s for s in _TIMELINE_FORMATS if rate_problem(rate, s) is None]
        either = ", ".join(usable[:-1]) + f" or {usable[-1]}"
        raise EditError(
            f"{path}: {problem} and this video runs at {float(rate):g} fps; export {either} instead"
        )


def otio_rate(plan: EditPlan, *, fcpx: bool = False) -> float:
    rate = float(plan.grid.rate)
    return FCPX_RATE_KEYS.get(rate, rate) if fcpx else rate


def one_line(text: str) -> str:
    """`text` as one line of printable text: controls (newlines included) and undecodable bytes become
    spaces, runs of white space one space."""
    return " ".join(_UNPRINTABLE.sub(" ", str(text)).split())


def clip_name(plan: EditPlan, i: int) -> str:
    """The name of kept segment i's clip: the source's stem (one line) and the segment's number."""
    return f"{one_line(Path(plan.video.path).stem)}_{i + 1:03d}"


def to_timeline(plan: EditPlan, *, fcpx: bool = False, audio: bool = True) -> Any:
    """An OTIO `Timeline`: one video track (and an audio track when the source has audio) of the kept
    segments as clips of the source, frames on the nominal rate; each clip's metadata says why."""
    import opentimelineio as otio
    from opentimelineio.opentime import RationalTime, TimeRange

    rate, exact = otio_rate(plan, fcpx=fcpx), plan.grid.rate
    path = Path(plan.video.path).resolve()
    timeline = otio.schema.Timeline(name=f"{one_line(path.stem)} edit")
    timeline.metadata["grounding_agent"] = {
        "instruction": utf8_text(plan.instruction),
        "source": utf8_text(str(path)),
    }
    kinds = [otio.schema.TrackKind.Video]
    sound = source_audio(path) if audio else None
    if sound is not None:
        kinds.append(otio.schema.TrackKind.Audio)
    total = _frames(plan.video.duration_s, exact)
    for kind in kinds:
        track = otio.schema.Track(name="V1" if kind == otio.schema.TrackKind.Video else "A1", kind=kind)
        if kind == otio.schema.TrackKind.Audio and sound is not None:
            track.metadata["grounding_agent"] = {"channels": sound.channels, "sample_rate": sound.sample_rate}
        for i, seg in enumerate(plan.kept):
            # Whole frames of the nominal rate at the segment's real times: the decoder's frame index on a
            # constant-rate video, and still the right time on a variable-rate one.
            start, end = _frames(seg.start_s, exact), _frames(seg.end_s, exact)
            reference = otio.schema.ExternalReference(
                target_url=path.as_uri(),
                available_range=TimeRange(RationalTime(0, rate), RationalTime(total, rate)),
            )
            clip = otio.schema.Clip(
                name=clip_name(plan, i),
                media_reference=reference,
                source_range=TimeRange(RationalTime(start, rate), RationalTime(end - start, rate)),
            )
            clip.metadata["grounding_agent"] = {
                "segment": i,
                "reason": utf8_text(seg.reason),
                "start_s": seg.start_s,
                "end_s": seg.end_s,
            }
            track.append(clip)
        timeline.tracks.append(track)
    return timeline


def _frames(seconds: float, rate: Fraction) -> int:
    """The frame boundary of the exact `rate` nearest `seconds`."""
    return round(Fraction(seconds) * rate)


def utf8_text(text: str) -> str:
    """`text` with undecodable file-name bytes (lone surrogates) replaced: OTIO stores UTF-8."""
    return text.encode("utf-8", "replace").decode("utf-8")


# --- format-specific names and times --------------------------------------------------------------------


def _edl_names(timeline: Any) -> None:
    """CMX 3600 is ASCII, one event per line: names become printable ASCII on one line, and each clip gets
    an explicit reel name (at most 8 letters and digits, else AX, "auxiliary source")."""
    timeline.name = ascii_line(timeline.name)
    for clip in timeline.find_clips():
        clip.name = ascii_line(clip.name)
        stem = clip.name.rsplit("_", 1)[0]
        reel = re.sub(r"[^A-Za-z0-9]", "", stem)[:8] or "AX"
        clip.metadata.setdefault("cmx_3600", {})["reel"] = reel


def _edl_channels(text: str, audio: SourceAudio | None, events: int) -> str:
    return edl_channels(text, [audio] * events)


def edl_channels(text: str, sounds: list[SourceAudio | None]) -> str:
    """The adapter's picture events, event i also given the sound of its source, `sounds[i]`, when it has
    some: CMX 3600's channel field "B" (picture and audio 1) for mono, "AA/V" (picture and audio 1 and 2)
    for more; "V" (picture only) where the source is silent."""
    if all(sound is None for sound in sounds):
        return text
    fields = iter(["V" if a is None else "B" if a.channels == 1 else "AA/V" for a in sounds])
    found = len(_EDL_VIDEO_EVENT.findall(text))
    if found != len(sounds):  # the adapter wrote a line this does not know: never a half-audio EDL
        raise ValueError(f"found {found} picture events for {len(sounds)} clips")
    return _EDL_VIDEO_EVENT.sub(lambda m: m.group(1) + next(fields).ljust(5), text)


def ascii_line(text: str) -> str:
    """One line of printable ASCII: accents dropped (é -> e), anything else non-ASCII as '_'."""
    text = unicodedata.normalize("NFKD", one_line(text))
    text = "".join(c for c in text if not unicodedata.combining(c))
    return re.sub(r"[^\x20-\x7e]+", "_", text)


def _fcpx_xml(timeline: Any, plan: EditPlan, audio: SourceAudio | None) -> str:
    """The FCPXML adapter's document with exact times and the real names.

    The adapter finds elements again by XPath predicates built from names (an apostrophe breaks them), so
    it gets placeholder names, and the real ones go in afterwards. It writes each time as float seconds of
    `otio_rate` frames (23.98 for 24000/1001): each is read back as that frame count and rewritten as that
    many frames of the exact rate, and every format's frameDuration is the exact 1 / rate. The source's
    sound (the adapter's connected audio clips) is described on its asset as the stream really is.
    """
    import opentimelineio as otio

    names = {"ga-timeline": timeline.name}
    timeline.name = "ga-timeline"
    for i, clip in enumerate(timeline.find_clips()):
        names[f"ga-clip-{i}"], clip.name = clip.name, f"ga-clip-{i}"
    root = ET.fromstring(otio.adapters.write_to_string(timeline, adapter_name="fcpx_xml"))
    if audio is not None:
        _fcpx_connect_audio(root)
    written = Fraction(str(otio_rate(plan, fcpx=True)))
    frame = 1 / plan.grid.rate
    for element in root.iter():
        for key in FCPX_TIME_ATTRIBUTES:
            value = element.get(key)
            if value is not None:
                frames = round(Fraction(value.removesuffix("s")) * written)
                element.set(key, fcpx_time(frames * frame))
        if element.tag == "format":
            element.set("frameDuration", fcpx_time(frame))
        if element.get("name") in names:
            element.set("name", names[element.get("name")])
        _fcpx_audio(element, audio)
    ET.indent(root, space="    ")
    return FCPX_HEADER + ET.tostring(root, encoding="unicode") + "\n"


def _fcpx_connect_audio(root: ET.Element) -> None:
    for clip in root.findall(".//spine/clip"):
        fcpx_connect_audio(clip)


def fcpx_connect_audio(clip: ET.Element) -> None:
    """A picture clip of the spine gets its sound as a connected clip below it (lane -1), spanning the same
    source range, in the form the adapter writes and reads back as an audio track."""
    video = clip.find("video")
    if video is not None:
        times = {k: clip.get(k) for k in ("start", "duration") if clip.get(k) is not None}
        # A connected clip's offset is on its parent's timeline, which begins at the parent's start.
        sound = ET.SubElement(clip, "clip", {"name": clip.get("name", ""), "offset": clip.get("start", "0s"),
                                             **times, "lane": "-1"})  # fmt: skip
        media = {"offset": "0s", "duration": video.get("duration", "0s")}
        gap = ET.SubElement(sound, "gap", {"name": "Gap", **media})
        ET.SubElement(gap, "audio", {**media, "ref": video.get("ref", ""), "lane": "-1"})


def _fcpx_audio(element: ET.Element, audio: SourceAudio | None) -> None:
    """An asset's and the sequence's sound as the source's stream has it (or none, said so)."""
    if element.tag == "asset":
        fcpx_asset_audio(element, audio)
    if element.tag == "sequence":
        fcpx_sequence_audio(element, audio)


def fcpx_asset_audio(asset: ET.Element, audio: SourceAudio | None) -> None:
    """`hasAudio` and, with sound, its sources, channels and rate as the stream has them."""
    asset.set("hasAudio", "0" if audio is None else "1")
    if audio is not None:
        asset.set("audioSources", "1")
        asset.set("audioChannels", str(audio.channels))
        asset.set("audioRate", str(audio.sample_rate))


def fcpx_sequence_audio(sequence: ET.Element, audio: SourceAudio | None) -> None:
    """The sequence's audio layout and rate (the rate only where the DTD has a value for it)."""
    if audio is not None:
        sequence.set("audioLayout", {1: "mono", 2: "stereo"}.get(audio.channels, "surround"))
        if audio.sample_rate in _FCPX_SEQUENCE_RATES:
            sequence.set("audioRate", _FCPX_SEQUENCE_RATES[audio.sample_rate])


def fcpx_time(seconds: Fraction) -> str:
    """FCPXML's rational seconds: '0s', '10s', '1001/30000s'."""
    if seconds.denominator == 1:
        return f"{seconds.numerator}s"
    return f"{seconds.numerator}/{seconds.denominator}s"


def _chapter_title(plan: EditPlan, i: int) -> str:
    seg, grid = plan.kept[i], plan.grid
    why = "" if seg.operation is None else f": {one_line(seg.reason)}"
    return f"Part {i + 1}{why} (source {grid.timecode(seg.start_frame)} - {grid.timecode(seg.end_frame)})"


# pysubs2 reads cue text as ASS: braces are override tags and backslashes escapes (\N is a line break).
_ASS_LITERAL = str.maketrans({"{": "(", "}": ")", "\\": "/"})
# WebVTT cue text escapes these as entities; SRT has no escape, and players read <...> as tags.
_CUE_TEXT = {"vtt": str.maketrans({"&": "&amp;", "<": "&lt;", ">": "&gt;"}), "srt": str.maketrans("<>", "‹›")}


def chapters_subtitles(plan: EditPlan, fmt: str) -> str:
    """One cue per kept segment, in the edited video's time (ms), titled with why and the source timecodes."""
    import pysubs2

    subs = pysubs2.SSAFile()
    for i, (seg, start) in enumerate(zip(plan.kept, plan.output_starts_s(), strict=True)):
        start_ms = round(start * 1000)
        end_ms = round((start + seg.duration_s) * 1000)
        text = _chapter_title(plan, i).translate(_ASS_LITERAL).translate(_CUE_TEXT.get(fmt, {}))
        subs.append(pysubs2.SSAEvent(start=start_ms, end=end_ms, text=text))
    return subs.to_string(fmt)


def youtube_chapters(plan: EditPlan) -> str:
    """'0:00 title' lines (YouTube's chapter list: it wants the first at 0:00, three or more, each >= 10 s)."""
    lines = []
    for i, start in enumerate(plan.output_starts_s()):
        whole = int(start)
        h, rest = divmod(whole, 3600)
        m, s = divmod(rest, 60)
        stamp = f"{h}:{m:02d}:{s:02d}" if h else f"{m}:{s:02d}"
        lines.append(f"{stamp} {_chapter_title(plan, i)}")
    return "\n".join(lines) + "\n"


def youtube_warnings(plan: EditPlan) -> list[str]:
    """Why YouTube would not show these chapters (it needs >= 3 chapters of >= 10 s each)."""
    out = []
    if len(plan.kept) < 3:
        out.append(f"YouTube shows chapters only with 3 or more; this edit has {len(plan.kept)}")
    short = sum(1 for s in plan.kept if s.duration_s < 10)
    if short:
        out.append(f"YouTube needs chapters of 10 s or more; {short} are shorter")
    return out
