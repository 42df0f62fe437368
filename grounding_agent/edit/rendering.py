"""Render an `EditPlan` with ffmpeg (argument lists, never a shell), into a temp file beside the target
that is checked, then renamed.

- accurate (default): re-encode; each kept segment is `trim`med on the decoder's frame boundaries (the
  cut falls between two frames' timestamps, so float rounding cannot move it) and the segments are
  concatenated, picture and sound.
- copy: stream copy through the concat demuxer; a stream can only be cut on keyframes, so each kept
  segment first moves out to the keyframes around it (`EditPlan.snapped_to_keyframes`) and the result
  says how far each cut moved.

The rendered file's duration is measured with `grounding_agent.media.video.open_video` and must equal the
plan's within one frame; otherwise the file is not put in place.

Plan times count from the first presented frame; ffmpeg's filters count from the container's start and the
concat demuxer's in / out points from the container's clock: `media.video.time_origin` gives the offsets
(an edit list, a negative timestamp offset or a stream starting late moves them off zero).
"""

from __future__ import annotations

import shutil
import subprocess
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from grounding_agent.defaults import EDIT
from grounding_agent.edit.paths import VIDEO_SUFFIXES, check_output
from grounding_agent.edit.plan import EditPlan
from grounding_agent.errors import EditError
from grounding_agent.io import atomic_path
from grounding_agent.types import Video

# Inline filter graphs up to this size; longer ones go through a script file (an argument is <= 128 KiB).
_INLINE_FILTER_CHARS = 100_000
# Cut points land this far past a keyframe's time, so a backward seek finds that keyframe.
_SEEK_PAST_S = 0.0005


@dataclass
class RenderResult:
    """What was rendered: where, how, the durations (planned vs measured) and, for copy, the shifts.

    `planned_s` / `planned_frames` are always the plan asked for; a copy render is checked against its
    keyframe-widened plan instead, `widened_s` / `widened_frames` (equal to the planned ones otherwise).
    """

    path: Path
    mode: str
    planned_s: float
    rendered_s: float
    elapsed_s: float
    planned_frames: int = 0
    rendered_frames: int = 0
    shifts: list[dict[str, Any]] = field(default_factory=list)
    plan: EditPlan | None = None
    widened_s: float = 0.0
    widened_frames: int = 0

    def __fspath__(self) -> str:  # usable wherever a path is: open(result), str(result), Path(result)
        return str(self.path)

    def __str__(self) -> str:
        return str(self.path)

    def to_dict(self) -> dict[str, Any]:
        return {
            "path": str(self.path),
            "mode": self.mode,
            "planned_s": round(self.planned_s, 6),
            "rendered_s": round(self.rendered_s, 6),
            "planned_frames": self.planned_frames,
            "rendered_frames": self.rendered_frames,
            "elapsed_s": round(self.elapsed_s, 3),
            **(
                {
                    "widened_s": round(self.widened_s, 6),
                    "widened_frames": self.widened_frames,
                    "keyframe_shifts": self.shifts,
                }
                if self.mode == "copy"
                else {}
            ),
        }


def ffmpeg_binary() -> str:
    found = shutil.which("ffmpeg")
    if not found:
        raise EditError("rendering needs ffmpeg on PATH: install it (e.g. apt-get install ffmpeg)")
    return found


def render(
    plan: EditPlan,
    out: str | Path,
    *,
    copy: bool = False,
    progress: bool | None = None,
    preset: str = EDIT.preset,
    crf: int = EDIT.crf,
    captions: Any = None,
    aspect: str | None = None,
) -> RenderResult:
    """Render the kept segments of `plan` to `out` (the container follows its suffix).

    Args:
        copy: stream copy on keyframes (fast, cuts move) instead of re-encoding (exact).
        progress: show a tqdm bar (None: only on a terminal).
        preset, crf: libx264 settings of the accurate mode.
        captions: a transcript of the source: its words are burnt in, word-timed (`edit.captions`).
        aspect: "9:16", "1:1", "4:5" or "16:9": reframed following faces (`edit.reframe`).

    Raises:
        EditError: nothing kept, output equal to the input, ffmpeg failing, or a duration off by more
            than one frame. OutputError: the path cannot be written.
    """
    if plan.keeps_nothing:
        raise EditError(f"{out}: the edit keeps nothing, so there is nothing to render")
    check_output(out, plan.video.path, suffixes=VIDEO_SUFFIXES)
    target_plan, shifts = plan.snapped_to_keyframes() if copy else (plan, [])
    if copy:
        _check_copyable(target_plan, out)
    if copy and (captions is not None or aspect):
        raise EditError("captions and --aspect draw on the picture: render without --copy")
    started = time.perf_counter()
    with atomic_path(out) as tmp, tempfile.TemporaryDirectory(prefix="ga-render-") as work:
        args = (
            _copy_args(target_plan, tmp, Path(work))
            if copy
            else _accurate_args(
                target_plan, tmp, Path(work), preset, crf, _look(plan, Path(work), captions, aspect)
            )
        )
        run_ffmpeg(args, target_plan.kept_s, progress, Path(work))
        rendered = _check_duration(target_plan, tmp, out)
    return RenderResult(Path(out), "copy" if copy else "accurate", plan.kept_s, rendered.duration_s,
                        time.perf_counter() - started, plan.kept_frames, rendered.num_frames,
                        shifts, target_plan, target_plan.kept_s, target_plan.kept_frames)  # fmt: skip


def _check_copyable(plan: EditPlan, out: str | Path) -> None:
    """A stream copy of the start of a file whose edit list hides its first pictures would show them."""
    pre_roll_s = _origin(plan).pre_roll_s
    if pre_roll_s > 0 and plan.kept and plan.kept[0].start_frame == 0:
        raise EditError(
            f"{out}: the video's first {pre_roll_s:.2f} s of pictures are hidden by an edit list (as "
            "`ffmpeg -ss X -c copy` writes); a stream copy of its start would show them: render without --copy"
        )


def _has_audio(plan: EditPlan) -> bool:
    from grounding_agent.media.audio import has_audio

    return has_audio(plan.video.path)


def _origin(plan: EditPlan) -> Any:
    from grounding_agent.media.video import time_origin

    return time_origin(plan.video)


def _look(plan: EditPlan, work: Path, captions: Any, aspect: str | None) -> str:
    """Filters drawn on the concatenated edit: the face-following crop, then the captions on top."""
    from grounding_agent.edit import captions as cap
    from grounding_agent.edit import reframe

    chain, size = [], (plan.video.width, plan.video.height)
    if aspect:
        track = reframe.track_faces(plan.video, reframe.parse_aspect(aspect))
        commands = reframe.crop_commands(plan, track, work / "crop.cmd")
        chain.append(reframe.crop_filter(plan, track, commands))
        size = (track.width, track.height)
    if captions is not None:
        ass = cap.write_ass(plan, captions, work / "captions.ass", size=size)
        chain.append(f"ass=filename={cap.filter_path(ass)}")
    return ",".join(chain)


def _accurate_args(plan: EditPlan, tmp: Path, work: Path, preset: str, crf: int, look: str = "") -> list[str]:
    grid, n, kept, audio = plan.grid, plan.grid.num_frames, plan.kept, _has_audio(plan)
    offset = _origin(plan).ffmpeg_s  # plan time 0 in the filters' timestamps
    starts = grid.starts_s + offset
    parts = [f"[0:v]split={len(kept)}" + "".join(f"[vs{i}]" for i in range(len(kept)))]
    if audio:
        parts.append(f"[0:a]asplit={len(kept)}" + "".join(f"[as{i}]" for i in range(len(kept))))
    for i, seg in enumerate(kept):
        # Between two frames' timestamps: frame `start_frame` is in, the one before is out.
        bounds = []
        if seg.start_frame > 0:
            bounds.append(f"start={(starts[seg.start_frame - 1] + starts[seg.start_frame]) / 2:.6f}")
        elif offset > _SEEK_PAST_S:  # frames before the first presented one (no timestamp of their own)
            bounds.append(f"start={starts[0] - 0.5 / float(grid.rate):.6f}")
        if seg.end_frame < n:
            bounds.append(f"end={(starts[seg.end_frame - 1] + starts[seg.end_frame]) / 2:.6f}")
        trim = f"trim={':'.join(bounds)}," if bounds else ""
        parts.append(f"[vs{i}]{trim}setpts=PTS-STARTPTS[v{i}]")
        if audio:
            abounds = [f"start={seg.start_s + offset:.6f}"]
            abounds += [f"end={seg.end_s + offset:.6f}"] if seg.end_frame < n else []
            parts.append(f"[as{i}]atrim={':'.join(abounds)},asetpts=PTS-STARTPTS[a{i}]")
    inputs = "".join(f"[v{i}]" + (f"[a{i}]" if audio else "") for i in range(len(kept)))
    parts.append(f"{inputs}concat=n={len(kept)}:v=1:a={int(audio)}[v]" + ("[a]" if audio else ""))
    if look:  # reframe / captions on the edited timeline
        parts[-1] = parts[-1].replace("[v]", "[cat]", 1)
        parts.append(f"[cat]{look}[v]")
    graph_args = filter_graph_args(parts, work)
    args = [ffmpeg_binary(), "-nostdin", "-hide_banner", "-loglevel", "error", "-y", "-i", str(plan.video.path),
            *graph_args, "-map", "[v]", *(["-map", "[a]"] if audio else []), "-fps_mode", "passthrough",
            "-c:v", "libx264", "-preset", preset, "-crf", str(crf), "-pix_fmt", "yuv420p"]  # fmt: skip
    if audio:
        args += ["-c:a", "aac", "-b:a", "160k"]
    return [*args, *container_flags(tmp), str(tmp)]


def filter_graph_args(parts: list[str], work: Path) -> list[str]:
    """ffmpeg's -filter_complex for the filter chains `parts`; a long graph goes through a script file in
    `work` (a command line has a length limit)."""
    graph = ";".join(parts)
    if len(graph) <= _INLINE_FILTER_CHARS:
        return ["-filter_complex", graph]
    script = work / "graph.txt"
    script.write_text(graph, encoding="utf-8")
    return ["-filter_complex_script", str(script)]


def _copy_args(plan: EditPlan, tmp: Path, work: Path) -> list[str]:
    """Stream copy: an ffconcat list naming the source once per kept segment, with in / out points."""
    src = str(Path(plan.video.path).resolve()).replace("'", "'\\''")
    ends = [seg.end_s for seg in plan.kept if seg.end_frame < plan.grid.num_frames]
    end_dts = dict(zip(ends, _keyframe_dts_s(plan, ends), strict=True))
    zero = _origin(plan).container_s  # in / out points are on the container's clock
    lines = ["ffconcat version 1.0"]
    for seg in plan.kept:
        lines.append(f"file '{src}'")
        # Always an in point, also at the start: the container's clock may not start at time zero.
        lines.append(f"inpoint {zero + seg.start_s + _SEEK_PAST_S:.6f}")
        if seg.end_frame < plan.grid.num_frames:
            # The demuxer stops at the first packet whose *decoding* time reaches the out point: with
            # B-frames the closing keyframe decodes before it is shown, so stop just before its DTS.
            lines.append(f"outpoint {end_dts[seg.end_s] - _SEEK_PAST_S:.6f}")
        # The next segment starts this much later in the output (else: out point - in point, too short).
        lines.append(f"duration {seg.duration_s:.6f}")
    listing = work / "segments.ffconcat"
    listing.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return [ffmpeg_binary(), "-nostdin", "-hide_banner", "-loglevel", "error", "-y", "-f", "concat", "-safe", "0",
            "-i", str(listing), "-map", "0:v:0", "-map", "0:a:0?", "-c", "copy",
            *container_flags(tmp), str(tmp)]  # fmt: skip


def _keyframe_dts_s(plan: EditPlan, times_s: list[float]) -> list[float]:
    """Decoding time, on the container's clock, of the keyframe shown at each of `times_s` (plan times;
    its presentation time when not found)."""
    import av

    if not times_s:
        return []
    half_frame = 0.5 / float(plan.grid.rate)
    zero = _origin(plan).container_s
    out = []
    with av.open(str(plan.video.path)) as container:
        stream = container.streams.video[0]
        tb = stream.time_base
        for t in (zero + t for t in times_s):
            container.seek(int((t + _SEEK_PAST_S) / tb), stream=stream, backward=True)
            dts = t
            for packet in container.demux(stream):
                if packet.pts is None or packet.dts is None:
                    continue
                if packet.is_keyframe and abs(float(packet.pts * tb) - t) < half_frame:
                    dts = float(packet.dts * tb)
                    break
                if float(packet.dts * tb) > t + 1.0:
                    break
            out.append(dts)
    return out


def container_flags(tmp: Path) -> list[str]:
    return ["-movflags", "+faststart"] if tmp.suffix.lower() in (".mp4", ".mov", ".m4v") else []


def run_ffmpeg(args: list[str], total_s: float, progress: bool | None, work: Path) -> None:
    """Run ffmpeg, reading its `-progress` key=value stream into a tqdm bar; errors become EditError."""
    from tqdm import tqdm

    args = [*args[:-1], "-progress", "pipe:1", "-nostats", args[-1]]
    log_path = work / "ffmpeg.log"
    with log_path.open("w+", encoding="utf-8") as log, tqdm(
        total=round(total_s, 2), unit="s", desc="render", disable=None if progress is None else not progress,
        bar_format="{l_bar}{bar}| {n:.1f}/{total:.1f} s [{elapsed}<{remaining}]",
    ) as bar:  # fmt: skip
        proc = subprocess.Popen(args, stdout=subprocess.PIPE, stderr=log, text=True)
        assert proc.stdout is not None
        for line in proc.stdout:
            key, _, value = line.strip().partition("=")
            if key == "out_time_us" and value.lstrip("-").isdigit():
                bar.update(max(0.0, min(int(value) / 1e6, bar.total) - bar.n))
        code = proc.wait()
        log.seek(0)
        errors = log.read().strip()
    if code != 0:
        last = errors.splitlines()[-1] if errors else f"exit status {code}"
        raise EditError(f"ffmpeg failed to render ({last[:300]})")


def _check_duration(plan: EditPlan, rendered: Path, out: str | Path) -> Video:
    """The rendered video's metadata; EditError if its duration is more than one frame off the plan."""
    from grounding_agent.media.video import open_video

    video = open_video(rendered)
    rendered_s = video.duration_s
    frame_s = 1.0 / float(plan.grid.rate)
    if abs(rendered_s - plan.kept_s) > frame_s + 1e-3:
        raise EditError(
            f"{out}: rendered {rendered_s:.3f} s but the plan keeps {plan.kept_s:.3f} s "
            f"(more than one frame, {frame_s:.3f} s, apart); nothing was written - rerun with --debug"
        )
    return video
