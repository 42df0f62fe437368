"""Benchmark editing on a long video: plan + export + render, accurate (re-encode) vs stream copy.

    .venv/bin/python bench/edit.py                       # 10-min 720p video (generated once, cached)
    .venv/bin/python bench/edit.py --minutes 2 --instruction "cut 0:10 to 0:20, then trim the last 5 seconds"

The video: testsrc2 1280x720 at 25 fps, libx264 (preset veryfast, B-frames, x264's default GOP of 250
frames = 10 s) with AAC audio that is a 440 Hz tone except for a 3-s silence every 20 s; cached under
~/.cache/grounding-agent/bench/. Stages, each timed (wall seconds; min / median / max of --rounds rounds,
each from a cold start): open (decoder index), plan (parse + audio loudness + frame snapping), every
export format, the accurate render (libx264 veryfast, CRF 18), the copy render; plus the rendered
duration vs the plan (frames, the same in every round), and how far copy moved the cuts.
Prints a table and writes bench/results/edit.json.

`--short-form` times what short-form editors ask for on the same edit, one render each: burnt-in captions
(`render(captions=...)`: the ASS file, libass drawing every frame) and the 9:16 face-following reframe
(`render(aspect="9:16")`: dlib's face detector over the whole source at 4 fps, then the crop), and both
together. The video has no speech, so the captions are a transcript of one made-up word every 0.4 s (a
fast talker's 150 words a minute): what is timed is the drawing, not speech recognition. testsrc2 has no
face, so the reframe times the detector's full pass and a centred crop.

    .venv/bin/python bench/edit.py --short-form --minutes 10 --out bench/results/edit_short_form.json
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from bench._common import cold_caches, machine, now, spread
from grounding_agent.io import write_json_atomic

CACHE = Path(os.environ.get("GA_CACHE_DIR", Path.home() / ".cache" / "grounding-agent")) / "bench"
DEFAULT_INSTRUCTION = "remove the silences, then cut 1:00 to 2:00"
# What every round's render must repeat exactly (paths and elapsed time differ).
SAME = ("mode", "planned_s", "rendered_s", "planned_frames", "rendered_frames")
EXPORTS = (".otio", ".edl", ".xml", ".fcpxml", ".srt", ".vtt", ".txt", ".json")


def make_video(minutes: float, path: Path) -> Path:
    """Generate the benchmark video once (atomically: a killed run leaves no half file)."""
    if path.is_file():
        return path
    path.parent.mkdir(parents=True, exist_ok=True)
    duration = minutes * 60
    loud = "lt(mod(t,20),17)"  # 17 s of tone, then 3 s of silence, every 20 s
    tmp = path.with_suffix(".tmp.mp4")
    cmd = [
        "ffmpeg", "-nostdin", "-hide_banner", "-loglevel", "error", "-y",
        "-f", "lavfi", "-i", f"testsrc2=size=1280x720:rate=25:duration={duration}",
        "-f", "lavfi", "-i", f"aevalsrc='if({loud},0.4*sin(2*PI*440*t),0)':s=48000:d={duration}",
        "-c:v", "libx264", "-preset", "veryfast", "-crf", "23", "-pix_fmt", "yuv420p",
        "-c:a", "aac", "-b:a", "128k", "-movflags", "+faststart", str(tmp),
    ]  # fmt: skip
    print(f"generating {path} ({minutes:g} min, 720p; once) ...", file=sys.stderr)
    subprocess.run(cmd, check=True)
    os.replace(tmp, path)
    return path


def timed(fn, *args, **kwargs):
    t0 = time.perf_counter()
    out = fn(*args, **kwargs)
    return out, time.perf_counter() - t0


def one_round(
    video_path: Path, instruction: str, preset: str
) -> tuple[dict[str, float], object, object, object]:
    """Every stage once from a cold start (no decoder index in memory): seconds per stage, the plan and
    the two render results."""
    from grounding_agent.edit import export, plan_edit, render
    from grounding_agent.media.video import open_video

    cold_caches()
    video, t_open = timed(open_video, video_path)
    plan, t_plan = timed(plan_edit, video, instruction)
    seconds: dict[str, float] = {"open (decoder index)": t_open, "plan": t_plan}
    with tempfile.TemporaryDirectory(prefix="ga-bench-edit-") as work:
        work = Path(work)
        for suffix in EXPORTS:
            _, seconds[f"export {suffix}"] = timed(export, plan, work / f"edit{suffix}")
        accurate, seconds["render accurate"] = timed(
            render, plan, work / "accurate.mp4", progress=False, preset=preset
        )
        copy, seconds["render copy"] = timed(render, plan, work / "copy.mp4", copy=True, progress=False)
    return seconds, plan, accurate, copy


def run(minutes: float, instruction: str, preset: str, rounds: int) -> dict:
    from grounding_agent.media.video import open_video

    video_path = make_video(minutes, CACHE / f"edit_{minutes:g}min_720p.mp4")
    video = open_video(video_path)
    per_stage: dict[str, list[float]] = {}
    renders = []
    for r in range(rounds):
        seconds, plan, accurate, copy = one_round(video_path, instruction, preset)
        for stage, s in seconds.items():
            per_stage.setdefault(stage, []).append(s)
        renders.append(tuple({k: v for k, v in x.to_dict().items() if k in SAME} for x in (accurate, copy)))
        print(f"round {r + 1}/{rounds} done", file=sys.stderr, flush=True)
    if any(x != renders[0] for x in renders[1:]):
        raise SystemExit("the renders differ between rounds: a plan or render is not deterministic")
    shifts = [
        abs(s["start_shift_s"]) for s in copy.shifts if s["segment"] > 0 or plan.kept[0].start_frame > 0
    ]
    shifts += [abs(s["end_shift_s"]) for s in copy.shifts]
    stages = {k: spread(v) for k, v in per_stage.items()}
    return {
        "bench": "edit", "when": now(), "rounds": rounds,
        "video": {"path": str(video_path), "duration_s": video.duration_s, "frames": video.num_frames,
                  "size": f"{video.width}x{video.height}", "fps": video.avg_fps},
        "instruction": instruction,
        "plan": {"kept_s": plan.kept_s, "kept_frames": plan.kept_frames, "kept_segments": len(plan.kept),
                 "operations": [op.describe() for op in plan.operations]},
        "seconds": stages,
        "seconds_all": {k: [round(x, 3) for x in v] for k, v in per_stage.items()},
        "accurate": accurate.to_dict(),
        "copy": {**{k: v for k, v in copy.to_dict().items() if k != "keyframe_shifts"},
                 "kept_segments": len(copy.plan.kept) if copy.plan else None,
                 "mean_cut_shift_s": round(sum(shifts) / len(shifts), 3) if shifts else 0.0,
                 "max_cut_shift_s": round(max(shifts), 3) if shifts else 0.0},
        "speedup_copy_vs_accurate": round(
            stages["render accurate"]["median"] / max(stages["render copy"]["median"], 1e-9), 1
        ),
        "machine": machine(),
        "accurate_preset": preset,
    }  # fmt: skip


def words_transcript(duration_s: float, every_s: float = 0.4):
    """One made-up word every `every_s`, sentences of eight words: captions' drawing load, not ASR."""
    from grounding_agent.media.transcript import Segment, Transcript, Word

    words = [Word(f"word{i}", i * every_s, i * every_s + 0.3, 1.0) for i in range(int(duration_s / every_s))]
    segments = tuple(
        Segment(" ".join(w.text for w in words[k : k + 8]), words[k].start_s, words[min(k + 7, len(words) - 1)].end_s,
                1.0, tuple(words[k : k + 8]))
        for k in range(0, len(words), 8)
    )  # fmt: skip
    return Transcript(segments=segments, duration_s=duration_s, language="en")


def run_short_form(minutes: float, instruction: str, preset: str) -> dict:
    """Captions, 9:16 reframe and both, one render each on the same edit (plus the plain render)."""
    from grounding_agent.edit import plan_edit, render
    from grounding_agent.edit.reframe import track_faces
    from grounding_agent.media.video import open_video

    video_path = make_video(minutes, CACHE / f"edit_{minutes:g}min_720p.mp4")
    video = open_video(video_path)
    plan = plan_edit(video, instruction)
    transcript = words_transcript(video.duration_s)
    seconds, sizes = {}, {}
    _, seconds["face track 9:16 (detector at 4 fps)"] = timed(track_faces, video, (9, 16))
    runs = {"render plain": {}, "render captions": {"captions": transcript}, "render reframe 9:16": {"aspect": "9:16"},
            "render captions + reframe 9:16": {"captions": transcript, "aspect": "9:16"}}  # fmt: skip
    with tempfile.TemporaryDirectory(prefix="ga-bench-short-") as work:
        for name, extra in runs.items():
            out = Path(work) / f"{len(seconds)}.mp4"
            result, seconds[name] = timed(render, plan, out, progress=False, preset=preset, **extra)
            rendered = open_video(out)
            sizes[name] = {"size": f"{rendered.width}x{rendered.height}", "rendered_s": result.rendered_s}
            print(f"{name}: {seconds[name]:.1f} s", file=sys.stderr, flush=True)
    return {
        "bench": "edit", "mode": "short_form", "when": now(), "rounds": 1,
        "video": {"path": str(video_path), "duration_s": video.duration_s, "frames": video.num_frames,
                  "size": f"{video.width}x{video.height}", "fps": video.avg_fps},
        "instruction": instruction, "kept_s": plan.kept_s, "caption_words": len(transcript.words),
        "seconds": {k: round(v, 3) for k, v in seconds.items()}, "outputs": sizes,
        "machine": machine(), "accurate_preset": preset,
    }  # fmt: skip


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--minutes", type=float, default=10.0, help="video length (default 10)")
    ap.add_argument(
        "--instruction", default=DEFAULT_INSTRUCTION, help=f"edit (default: {DEFAULT_INSTRUCTION!r})"
    )
    ap.add_argument("--preset", default="veryfast", help="libx264 preset of the accurate render")
    ap.add_argument("--rounds", type=int, default=3, help="rounds of every stage (default 3)")
    ap.add_argument("--out", type=Path, default=REPO / "bench" / "results" / "edit.json")
    ap.add_argument(
        "--short-form", action="store_true", help="time captions and 9:16 reframe renders instead"
    )
    args = ap.parse_args()
    if args.short_form:
        result = run_short_form(args.minutes, args.instruction, args.preset)
        for stage, x in result["seconds"].items():
            print(f"{stage:36s} {x:9.2f} s")
        write_json_atomic(args.out, result)
        print(f"wrote {args.out}")
        return 0
    result = run(args.minutes, args.instruction, args.preset, args.rounds)
    print(f"\n{result['video']['duration_s']:.0f} s {result['video']['size']} video, "
          f"'{result['instruction']}': kept {result['plan']['kept_s']:.1f} s in {result['plan']['kept_segments']} segments")  # fmt: skip
    print(f"{'stage':28s} {'seconds, median (min-max) of ' + str(result['rounds']) + ' rounds':>40s}")
    for stage, x in result["seconds"].items():
        print(f"{stage:28s} {x['median']:9.3f}  ({x['min']:.3f}-{x['max']:.3f})")
    for mode in ("accurate", "copy"):
        r = result[mode]
        print(f"{mode:9s} render: {r['rendered_frames']} frames rendered vs {r['planned_frames']} planned, "
              f"{r['rendered_s']:.3f} s vs {r['planned_s']:.3f} s")  # fmt: skip
    c = result["copy"]
    print(f"copy moved cuts to keyframes: mean {c['mean_cut_shift_s']:.2f} s, max {c['max_cut_shift_s']:.2f} s "
          f"({c['kept_segments']} segments after merging); copy is {result['speedup_copy_vs_accurate']}x faster")  # fmt: skip
    write_json_atomic(args.out, result)
    print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
