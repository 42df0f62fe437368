"""Write an `EditPlan` where editors can use it: OpenTimelineIO timelines and chapter files.

By suffix: `.otio` (OpenTimelineIO JSON), `.edl` (CMX 3600), `.xml` (Final Cut Pro 7 / Premiere /
Resolve XML), `.fcpxml` (Final Cut Pro X) - all through OpenTimelineIO and its adapters -, `.srt` /
`.vtt` chapter cues (pysubs2), `.txt` a YouTube-style chapter list, `.json` the plan itself.
Timelines cut the source on its frame grid: clip i is frames [start, end) of the source at the nominal
rate (the decoder's frame indices on a constant-rate video; on a variable-rate one, the frames of the
nominal rate at the segments' real times); chapters are in the edited video's time. Every file is written atomically.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from grounding_agent.edit.paths import check_output
from grounding_agent.edit.plan import EditPlan
from grounding_agent.edit.timeline import is_smpte_rate
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
# The FCPXML adapter looks NTSC rates up by these rounded keys.
_FCPX_RATE_KEYS = {24000 / 1001: 23.98, 30000 / 1001: 29.97, 60000 / 1001: 59.94}


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

    if suffix == ".edl" and not is_smpte_rate(plan.grid.rate):
        raise EditError(
            f"{path}: an EDL needs a SMPTE frame rate (23.976, 24, 25, 29.97, 30, 50, 59.94, 60) and this video "
            f"runs at {float(plan.grid.rate):g} fps; export .otio or .xml instead"
        )
    # EDL and FCPXML get the picture track only (their adapters would repeat each event for the audio).
    timeline = to_timeline(plan, fcpx=suffix == ".fcpxml", audio=suffix in (".otio", ".xml"))
    with atomic_path(path) as tmp:
        try:
            otio.adapters.write_to_file(timeline, str(tmp), adapter_name=_OTIO_ADAPTERS[suffix])
        except (otio.exceptions.OTIOError, ValueError, KeyError, TypeError) as exc:
            raise EditError(f"{path}: the {EXPORTS[suffix]} writer failed ({exc})") from None
    return Path(path)


def otio_rate(plan: EditPlan, *, fcpx: bool = False) -> float:
    rate = float(plan.grid.rate)
    return _FCPX_RATE_KEYS.get(rate, rate) if fcpx else rate


def to_timeline(plan: EditPlan, *, fcpx: bool = False, audio: bool = True) -> Any:
    """An OTIO `Timeline`: one video track (and an audio track when the source has audio) of the kept
    segments as clips of the source, frames on the nominal rate; each clip's metadata says why."""
    import opentimelineio as otio
    from opentimelineio.opentime import RationalTime, TimeRange

    from grounding_agent.media.audio import has_audio

    rate = otio_rate(plan, fcpx=fcpx)
    path = Path(plan.video.path).resolve()
    timeline = otio.schema.Timeline(name=f"{path.stem} edit")
    timeline.metadata["grounding_agent"] = {"instruction": plan.instruction, "source": str(path)}
    kinds = [otio.schema.TrackKind.Video]
    if audio and has_audio(path):
        kinds.append(otio.schema.TrackKind.Audio)
    for kind in kinds:
        track = otio.schema.Track(name="V1" if kind == otio.schema.TrackKind.Video else "A1", kind=kind)
        for i, seg in enumerate(plan.kept):
            # Frames of the nominal rate at the segment's real times: the decoder's frame index on a
            # constant-rate video, and still the right time on a variable-rate one.
            start, end = round(seg.start_s * float(plan.grid.rate)), round(seg.end_s * float(plan.grid.rate))
            total = round(plan.video.duration_s * float(plan.grid.rate))
            reference = otio.schema.ExternalReference(
                target_url=path.as_uri(),
                available_range=TimeRange(RationalTime(0, rate), RationalTime(total, rate)),
            )
            clip = otio.schema.Clip(
                name=f"{path.stem}_{i + 1:03d}",
                media_reference=reference,
                source_range=TimeRange(RationalTime(start, rate), RationalTime(end - start, rate)),
            )
            clip.metadata["grounding_agent"] = {
                "segment": i,
                "reason": seg.reason,
                "start_s": seg.start_s,
                "end_s": seg.end_s,
            }
            track.append(clip)
        timeline.tracks.append(track)
    return timeline


def _chapter_title(plan: EditPlan, i: int) -> str:
    seg, grid = plan.kept[i], plan.grid
    why = "" if seg.operation is None else f": {seg.reason}"
    return f"Part {i + 1}{why} (source {grid.timecode(seg.start_frame)} - {grid.timecode(seg.end_frame)})"


def chapters_subtitles(plan: EditPlan, fmt: str) -> str:
    """One cue per kept segment, in the edited video's time (ms), titled with why and the source timecodes."""
    import pysubs2

    subs = pysubs2.SSAFile()
    for i, (seg, start) in enumerate(zip(plan.kept, plan.output_starts_s(), strict=True)):
        start_ms = round(start * 1000)
        end_ms = round((start + seg.duration_s) * 1000)
        subs.append(pysubs2.SSAEvent(start=start_ms, end=end_ms, text=_chapter_title(plan, i)))
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
