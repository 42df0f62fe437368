"""Render a `Reel` with ffmpeg: frame-exact cuts of several sources, normalised and concatenated.

Each clip is `trim`med on its source's frame boundaries (between two frames' timestamps, as `rendering`
does for one source), then brought to the record format: scaled to fit the record size and padded (aspect
kept), square pixels, the record rate (`fps`, which keeps the timing), yuv420p. Each clip then holds exactly
its frames of `Reel.record_frames` (the last frame repeated if the rate change came up one short), so the
reel's length is the sum of its clips' within half a frame. Sound is resampled to one rate and stereo;
a source without sound gets silence of the clip's length; a reel whose sources are all silent has no sound.
The file is written beside the target, its duration checked (within one record frame), then renamed.
"""

from __future__ import annotations

import tempfile
import time
from pathlib import Path

from grounding_agent.defaults import EDIT, REELS
from grounding_agent.edit.paths import VIDEO_SUFFIXES, check_output
from grounding_agent.edit.reel import Reel, ReelClip
from grounding_agent.edit.rendering import (
    RenderResult,
    container_flags,
    ffmpeg_binary,
    filter_graph_args,
    run_ffmpeg,
)
from grounding_agent.errors import EditError
from grounding_agent.io import atomic_path


def render_reel(
    reel: Reel,
    out: str | Path,
    *,
    progress: bool | None = None,
    preset: str = EDIT.preset,
    crf: int = EDIT.crf,
    audio_rate: int = REELS.audio_rate,
) -> RenderResult:
    """Render `reel` to `out` (.mp4 .mov .m4v .mkv), re-encoded with libx264 (and AAC sound).

    Raises:
        EditError: ffmpeg failing, or a duration more than one frame off the reel's.
        OutputError: the path cannot be written.
    """
    for source in reel.sources:
        check_output(out, source, suffixes=VIDEO_SUFFIXES)
    started = time.perf_counter()
    frames = reel.record_frames()
    expected_s = frames[-1][1] / float(reel.record_rate)
    with atomic_path(out) as tmp, tempfile.TemporaryDirectory(prefix="ga-reel-") as work:
        args = _args(reel, tmp, Path(work), preset, crf, audio_rate)
        run_ffmpeg(args, expected_s, progress, Path(work))
        rendered = _check(reel, tmp, out, expected_s)
    total = frames[-1][1]
    return RenderResult(Path(out), "reel", expected_s, rendered.duration_s, time.perf_counter() - started,
                        total, rendered.num_frames, widened_s=expected_s, widened_frames=total)  # fmt: skip


def _args(reel: Reel, tmp: Path, work: Path, preset: str, crf: int, audio_rate: int) -> list[str]:
    from grounding_agent.media.audio import has_audio

    sources = reel.sources
    index = {s: i for i, s in enumerate(sources)}
    sound = {s: has_audio(s) for s in sources}
    any_sound = any(sound.values())
    uses: dict[Path, list[int]] = {s: [] for s in sources}
    for k, clip in enumerate(reel.clips):
        uses[Path(clip.video.path).resolve()].append(k)
    parts = []
    for s, ks in uses.items():  # each input's streams split once per clip that uses it
        j = index[s]
        parts.append(f"[{j}:v:0]split={len(ks)}" + "".join(f"[vs{k}]" for k in ks))
        if any_sound and sound[s]:
            parts.append(f"[{j}:a:0]asplit={len(ks)}" + "".join(f"[as{k}]" for k in ks))
    w, h = reel.record_size
    rate = reel.record_rate
    for k, (clip, (a, b)) in enumerate(zip(reel.clips, reel.record_frames(), strict=True)):
        n = b - a
        parts.append(
            f"[vs{k}]{_trim(clip)}setpts=PTS-STARTPTS,scale={w}:{h}:force_original_aspect_ratio=decrease,"
            f"pad={w}:{h}:(ow-iw)/2:(oh-ih)/2,setsar=1,fps={rate.numerator}/{rate.denominator},"
            f"format=yuv420p,tpad=stop_mode=clone:stop=-1,trim=end_frame={n},setpts=PTS-STARTPTS[v{k}]"
        )
        if any_sound:
            samples = round(n / rate * audio_rate)
            norm = f"aresample={audio_rate},aformat=sample_fmts=fltp:channel_layouts=stereo"
            if sound[Path(clip.video.path).resolve()]:
                parts.append(
                    f"[as{k}]{_atrim(clip)}asetpts=PTS-STARTPTS,{norm},apad,atrim=end_sample={samples},"
                    f"asetpts=PTS-STARTPTS[a{k}]"
                )
            else:  # silence as long as the clip
                parts.append(f"anullsrc=r={audio_rate}:cl=stereo,{norm},atrim=end_sample={samples}[a{k}]")
    inputs = "".join(f"[v{k}]" + (f"[a{k}]" if any_sound else "") for k in range(len(reel.clips)))
    parts.append(
        f"{inputs}concat=n={len(reel.clips)}:v=1:a={int(any_sound)}[v]" + ("[a]" if any_sound else "")
    )
    graph_args = filter_graph_args(parts, work)
    args = [ffmpeg_binary(), "-nostdin", "-hide_banner", "-loglevel", "error", "-y"]
    for s in sources:
        args += ["-i", str(s)]
    args += [*graph_args, "-map", "[v]", *(["-map", "[a]"] if any_sound else []),
             "-c:v", "libx264", "-preset", preset, "-crf", str(crf), "-pix_fmt", "yuv420p",
             "-r", f"{rate.numerator}/{rate.denominator}"]  # fmt: skip
    if any_sound:
        args += ["-c:a", "aac", "-b:a", "160k", "-ar", str(audio_rate)]
    return [*args, *container_flags(tmp), str(tmp)]


def _trim(clip: ReelClip) -> str:
    """The trim filter that keeps frames [start_frame, end_frame): its cuts fall between two frames'
    timestamps (on ffmpeg's clock: plan times plus the source's origin)."""
    from grounding_agent.media.video import time_origin

    offset = time_origin(clip.video).ffmpeg_s
    starts, n = clip.grid.starts_s + offset, clip.grid.num_frames
    bounds = []
    if clip.start_frame > 0:
        bounds.append(f"start={(starts[clip.start_frame - 1] + starts[clip.start_frame]) / 2:.6f}")
    if clip.end_frame < n:
        bounds.append(f"end={(starts[clip.end_frame - 1] + starts[clip.end_frame]) / 2:.6f}")
    return f"trim={':'.join(bounds)}," if bounds else ""


def _atrim(clip: ReelClip) -> str:
    from grounding_agent.media.video import time_origin

    offset = time_origin(clip.video).ffmpeg_s
    bounds = [f"start={clip.start_s + offset:.6f}"]
    if clip.end_frame < clip.grid.num_frames:
        bounds.append(f"end={clip.end_s + offset:.6f}")
    return f"atrim={':'.join(bounds)},"


def _check(reel: Reel, rendered: Path, out: str | Path, expected_s: float):
    from grounding_agent.media.video import open_video

    video = open_video(rendered)
    frame_s = 1.0 / float(reel.record_rate)
    if abs(video.duration_s - expected_s) > frame_s + 1e-3:
        raise EditError(
            f"{out}: rendered {video.duration_s:.3f} s but the reel lasts {expected_s:.3f} s (more than one "
            f"frame, {frame_s:.3f} s, apart); nothing was written - rerun with --debug"
        )
    if (video.width, video.height) != reel.record_size:
        raise EditError(
            f"{out}: rendered {video.width}x{video.height}, not {reel.record_size}; nothing was written"
        )
    return video
