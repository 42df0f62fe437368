"""Convert grounding benchmarks into SFT samples (jsonl), validate them, split train/val deterministically.

    python finetune/data.py charades-sta --annotations charades_sta_train.txt --videos DIR --out data/sft
    python finetune/data.py qvhighlights --annotations qvh_train.jsonl --videos DIR --out data/qvh_sft

One `SFTSample` per query: the video reference, the frame-sampling spec, the grounder prompt (style and
version of prompts/grounding*.yaml) and the target answer in the format
`grounding_agent.grounders.parsing.format_moment` writes, which `parse_moments` reads back exactly. Ground-truth
times are rounded to 0.01 s first, so the target *is* the ground truth. The prompt text itself is rendered
at training time by the grounders' own `build_request` from the sampled frames (finetune/collator.py), so
training and inference prompts are the same bytes.
The split is by video (no video in both splits), decided by a seeded hash of the video id: the same
video always lands in the same split, whatever the order or size of the input.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import sys
from collections import Counter
from collections.abc import Iterable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

if __package__ in (None, ""):  # run as `python finetune/data.py`: make the checkout importable
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from finetune.config import run_recipe
from grounding_agent.benchmarks.datasets import Annotation, load_dataset
from grounding_agent.defaults import SAMPLING
from grounding_agent.errors import ConfigError, DatasetError, VideoError
from grounding_agent.grounders.parsing import format_moment, format_moments, parse_moments
from grounding_agent.grounders.qwen_inputs import PROMPTS
from grounding_agent.io import atomic_path
from grounding_agent.types import TIME_EPS_S, Moment
from grounding_agent.utils.prompts import load_prompt

VIDEO_EXTENSIONS = (".mp4", ".mkv", ".webm", ".avi", ".mov")


@dataclass(frozen=True)
class Sampling:
    """How frames are taken from the video (the arguments of `grounding_agent.media.video.sample_frames`)."""

    fps: float = SAMPLING.fps
    max_frames: int = SAMPLING.max_frames
    max_pixels: int | None = None


@dataclass
class SFTSample:
    """One supervised example: (video frames + prompt) -> target answer.

    Attributes:
        id: "<dataset>:<qid>", unique.
        vid, video: video id and file path.
        duration_s: the video's duration (as the dataset states it).
        query: the sentence.
        windows_s: ground-truth [start_s, end_s] windows, rounded to 0.01 s.
        prompt: the grounder prompt style ("grounding": one moment, "multi": several, best first);
        prompt_version: the version of its prompts/*.yaml file when the sample was made.
        target: the answer the model is trained to write, in video time (the collator shifts it into the
            model's time when the input mode starts the clock at the first frame).
        sampling: frame-sampling spec.
    """

    id: str
    dataset: str
    qid: int | str
    vid: str
    video: str
    duration_s: float
    query: str
    windows_s: list[list[float]]
    prompt: str
    prompt_version: str
    target: str
    sampling: dict[str, Any] = field(default_factory=lambda: asdict(Sampling()))

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, row: dict[str, Any]) -> SFTSample:
        return cls(**row)

    def moments(self) -> list[Moment]:
        return [Moment(s, e) for s, e in self.windows_s]


def prompt_version(style: str) -> str:
    """Version of the prompt file behind a grounder prompt style (see qwen_inputs.PROMPTS)."""
    return load_prompt(PROMPTS[style]).version


def find_video(videos_dir: Path, vid: str) -> Path | None:
    for ext in VIDEO_EXTENSIONS:
        path = videos_dir / f"{vid}{ext}"
        if path.is_file():
            return path
    return None


def target_text(moments: list[Moment]) -> str:
    """The answer to train on: "s - e seconds"; several moments one per line, each with confidence (1.00)."""
    return format_moment(moments[0]) if len(moments) == 1 else format_moments(moments, with_score=True)


def to_sample(ann: Annotation, dataset: str, video: Path | str, sampling: Sampling) -> SFTSample:
    """An annotation -> SFT sample (single-moment prompt for one GT window, multi-moment for several)."""
    windows = sorted((round(s, 2), round(e, 2)) for s, e in ann.windows_s)
    if not windows:
        raise DatasetError(f"{dataset}:{ann.qid} has no ground-truth window; it cannot be a training target")
    style = "grounding" if len(windows) == 1 else "multi"
    return SFTSample(
        id=f"{dataset}:{ann.qid}", dataset=dataset, qid=ann.qid, vid=ann.vid, video=str(video),
        duration_s=ann.duration_s, query=ann.query, windows_s=[list(w) for w in windows], prompt=style,
        prompt_version=prompt_version(style), target=target_text([Moment(s, e) for s, e in windows]),
        sampling=asdict(sampling),
    )  # fmt: skip


def convert(
    dataset: str,
    annotations: str | Path,
    videos_dir: str | Path,
    *,
    durations: str | Path | None = None,
    sampling: Sampling = Sampling(),
    vids: Iterable[str] | None = None,
) -> tuple[list[SFTSample], list[dict[str, Any]]]:
    """Annotations of `dataset` (a key of grounding_agent.benchmarks.datasets.DATASETS) -> (samples, rejects).

    Queries whose video file is missing under `videos_dir` are rejected (reason recorded), not fatal.
    """
    data = load_dataset(dataset, annotations, durations)
    keep = set(vids) if vids is not None else None
    videos_dir = Path(videos_dir)
    samples, rejects = [], []
    for ann in data.annotations:
        if keep is not None and ann.vid not in keep:
            continue
        video = find_video(videos_dir, ann.vid)
        if video is None:
            rejects.append({"id": f"{dataset}:{ann.qid}", "vid": ann.vid, "reason": "video file not found"})
            continue
        samples.append(to_sample(ann, dataset, video, sampling))
    return samples, rejects


def check_sample(sample: SFTSample, video_duration_s: float | None, tolerance_s: float = 0.5) -> str | None:
    """Why `sample` is unusable, or None. `video_duration_s`: the decoded file's duration (None: unknown)."""
    if not sample.query.strip():
        return "empty query"
    if not sample.duration_s > 0:
        return f"non-positive duration {sample.duration_s}"
    for s, e in sample.windows_s:
        if not 0 <= s < e <= sample.duration_s + TIME_EPS_S:
            return f"window {s} - {e} s not inside 0 - {sample.duration_s} s"
        if video_duration_s is not None and e > video_duration_s + tolerance_s:
            return f"window ends at {e} s but the video file lasts {video_duration_s:.2f} s"
    if [[m.start_s, m.end_s] for m in parse_moments(sample.target, sample.duration_s)] != sample.windows_s:
        return f"target {sample.target!r} does not parse back to {sample.windows_s}"
    return None


def validate(
    samples: list[SFTSample], *, check_videos: bool = True, tolerance_s: float = 0.5
) -> tuple[list[SFTSample], list[dict[str, Any]]]:
    """Keep samples whose times lie inside the duration, whose target round-trips, whose video decodes.

    Each distinct video is opened once (`grounding_agent.media.video.open_video`); an unreadable one rejects
    all its samples with the decoder's one-line reason.
    """
    durations: dict[str, float | str] = {}
    if check_videos:
        from grounding_agent.media.video import open_video  # decord only when videos are checked

        for path in sorted({s.video for s in samples}):
            try:
                durations[path] = open_video(path).duration_s
            except VideoError as exc:
                durations[path] = f"unreadable video: {exc}"
    good, rejects = [], []
    for sample in samples:
        known = durations.get(sample.video)
        reason = known if isinstance(known, str) else check_sample(sample, known, tolerance_s)
        if reason:
            rejects.append({"id": sample.id, "vid": sample.vid, "reason": reason})
        else:
            good.append(sample)
    return good, rejects


def split_by_video(
    samples: list[SFTSample], val_fraction: float, seed: int = 0
) -> tuple[list[SFTSample], list[SFTSample]]:
    """Deterministic (train, val): a video goes to val when sha256(f"{seed}/{vid}") falls below the fraction.

    With at least two videos and val_fraction > 0, val gets at least one video (the lowest hash).
    """
    if not 0 <= val_fraction < 1:
        raise ConfigError(f"val_fraction must be in [0, 1), got {val_fraction}")

    def unit(vid: str) -> float:
        return int(hashlib.sha256(f"{seed}/{vid}".encode()).hexdigest()[:12], 16) / 16**12

    vids = sorted({s.vid for s in samples}, key=unit)
    val_vids = {v for v in vids if unit(v) < val_fraction}
    if not val_vids and val_fraction > 0 and len(vids) >= 2:
        val_vids = {vids[0]}
    train = [s for s in samples if s.vid not in val_vids]
    val = [s for s in samples if s.vid in val_vids]
    return train, val


def write_jsonl(rows: Iterable[dict[str, Any]], path: str | Path) -> Path:
    """Write rows atomically (temp file + os.replace): a reader never sees half a file."""
    path = Path(path)
    with atomic_path(path) as tmp, open(tmp, "w", encoding="utf-8") as f:
        f.writelines(json.dumps(row, ensure_ascii=False) + "\n" for row in rows)
    return path


def read_samples(path: str | Path) -> list[SFTSample]:
    """SFT samples from a jsonl written by this module.

    Raises:
        DatasetError: missing file or a line that is not an SFT sample.
    """
    path = Path(path)
    if not path.is_file():
        raise DatasetError(f"{path}: not found; write it with `python finetune/data.py ... --out DIR`")
    out = []
    for lineno, line in enumerate(path.read_text(encoding="utf-8").splitlines(), start=1):
        if not line.strip():
            continue
        try:
            out.append(SFTSample.from_dict(json.loads(line)))
        except (json.JSONDecodeError, TypeError) as exc:
            raise DatasetError(f"{path}:{lineno}: not an SFT sample ({exc})") from None
    return out


def build(
    dataset: str,
    annotations: str | Path,
    videos_dir: str | Path,
    out_dir: str | Path,
    *,
    durations: str | Path | None = None,
    sampling: Sampling = Sampling(),
    val_fraction: float = 0.05,
    seed: int = 0,
    vids: Iterable[str] | None = None,
    check_videos: bool = True,
) -> dict[str, Any]:
    """Convert + validate + split; write train/val/rejects.jsonl and manifest.json; return the manifest."""
    samples, missing = convert(
        dataset, annotations, videos_dir, durations=durations, sampling=sampling, vids=vids
    )
    good, invalid = validate(samples, check_videos=check_videos)
    train, val = split_by_video(good, val_fraction, seed)
    out_dir = Path(out_dir)
    rejects = missing + invalid
    write_jsonl((s.to_dict() for s in train), out_dir / "train.jsonl")
    write_jsonl((s.to_dict() for s in val), out_dir / "val.jsonl")
    write_jsonl(rejects, out_dir / "rejects.jsonl")
    manifest = {
        "dataset": dataset,
        "annotations": str(annotations),
        "videos_dir": str(videos_dir),
        "sampling": asdict(sampling),
        "val_fraction": val_fraction,
        "seed": seed,
        "counts": {"train": len(train), "val": len(val), "rejected": len(rejects)},
        "videos": {"train": len({s.vid for s in train}), "val": len({s.vid for s in val})},
        "reject_reasons": dict(Counter(r["reason"].split(":")[0] for r in rejects)),
        "prompts": sorted({f"{PROMPTS[s.prompt]}@{s.prompt_version}" for s in good}),
    }
    manifest_tmp = out_dir / ".manifest.json.tmp"
    manifest_tmp.write_text(json.dumps(manifest, indent=2) + "\n", encoding="utf-8")
    os.replace(manifest_tmp, out_dir / "manifest.json")
    return manifest


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(
        description="Convert grounding annotations into SFT jsonl (train/val split by video)."
    )
    p.add_argument("dataset", choices=["charades-sta", "qvhighlights"])
    p.add_argument(
        "--annotations", required=True, help="charades_sta_train.txt or a QVHighlights train/val jsonl"
    )
    p.add_argument("--durations", help="Charades_v1_<split>.csv (default: beside the txt)")
    p.add_argument("--videos", required=True, help="folder with <vid>.mp4 files")
    p.add_argument("--out", required=True, help="output folder")
    p.add_argument("--fps", type=float, default=SAMPLING.fps)
    p.add_argument("--max-frames", type=int, default=SAMPLING.max_frames)
    p.add_argument("--max-pixels", type=int, default=None)
    p.add_argument("--val-fraction", type=float, default=0.05)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument(
        "--no-check-videos", action="store_true", help="skip decoding each video (faster, less safe)"
    )
    args = p.parse_args(argv)
    manifest = build(
        args.dataset, args.annotations, args.videos, args.out, durations=args.durations,
        sampling=Sampling(args.fps, args.max_frames, args.max_pixels), val_fraction=args.val_fraction,
        seed=args.seed, check_videos=not args.no_check_videos,
    )  # fmt: skip
    print(json.dumps(manifest, indent=2))
    return 0


if __name__ == "__main__":
    run_recipe(main)
