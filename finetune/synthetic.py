"""A synthetic grounding task a tiny random-init model can learn on CPU: "when is the red square visible?"

    python finetune/synthetic.py make --out data/synthetic            # videos + SFT jsonl + Charades-style GT
    python finetune/synthetic.py eval --data data/synthetic --model M [--adapter A] [--prior]

Each video is `duration_s` seconds at 1 frame per second on a flat grey background (its level varies per
video); one coloured square (colour, size and position vary) is visible from `start_s` to `end_s`, both
whole seconds, with `end_s < duration_s`. Sampled at 1 fps with timestamped frames ("images" mode), the
answer is two frame labels the model has seen: the first frame showing the square and the first frame
after it. The query names the colour. Train and held-out videos come from disjoint seeds, so no held-out
video is seen in training (their (start, end) pairs come from the same small set: the task is reading the
frames, not extrapolating to new times).

Outputs in OUT: `videos/*.mp4`, `train.jsonl` / `val.jsonl` (`finetune.data.SFTSample`),
`charades_sta_{train,test}.txt` + `Charades_v1_{train,test}.csv` (so `grounding-agent eval run --dataset
charades-sta` and the blind prior read them too) and `manifest.json` (the spec; a matching manifest means
the set is reused, not rebuilt).
"""

from __future__ import annotations

import argparse
import hashlib
import json
import shutil
import subprocess
import sys
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path
from typing import Any

import numpy as np

if __package__ in (None, ""):  # run as `python finetune/synthetic.py`: make the checkout importable
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from finetune.config import run_recipe
from finetune.data import Sampling, SFTSample, to_sample, write_jsonl
from grounding_agent.benchmarks.datasets import Annotation
from grounding_agent.errors import ConfigError
from grounding_agent.io import atomic_path, write_json_atomic, write_text_atomic

COLOURS: dict[str, tuple[int, int, int]] = {
    "red": (220, 30, 30),
    "green": (30, 200, 40),
    "blue": (40, 60, 230),
    "yellow": (230, 220, 30),
}
QUERIES = (
    "when is the {c} square visible?",
    "the {c} square is on screen",
    "a {c} square appears",
    "when can you see the {c} square?",
)
FPS = 1  # one frame per second: every sampled frame is one second, every answer a frame label


@dataclass(frozen=True)
class SyntheticSpec:
    """What `make_synthetic` builds (the `data.synthetic` config section, when it is a mapping)."""

    out: str = "runs/synthetic"
    num_train: int = 400
    num_val: int = 64
    duration_s: int = 8
    size: int = 56  # square frames; 56x56 = 4 merged visual tokens per frame for Qwen2/2.5-VL
    seed: int = 0

    def key(self) -> str:
        return hashlib.sha256(json.dumps(asdict(self), sort_keys=True).encode()).hexdigest()[:12]

    @classmethod
    def from_config(cls, value: Any) -> SyntheticSpec:
        if value is True:
            return cls()
        if not isinstance(value, dict):
            raise ConfigError(
                f"data.synthetic must be true or a mapping of {sorted(cls.fields())}, got {value!r}"
            )
        unknown = set(value) - cls.fields()
        if unknown:
            raise ConfigError(
                f"unknown key(s) {sorted(unknown)} in data.synthetic; allowed: {sorted(cls.fields())}"
            )
        spec = cls(**value)
        if spec.duration_s < 2 or spec.num_train < 1 or spec.num_val < 1 or spec.size < 28:
            raise ConfigError(
                f"data.synthetic: need duration_s >= 2, num_train/num_val >= 1, size >= 28; got {spec}"
            )
        return spec

    @staticmethod
    def fields() -> set[str]:
        return {f.name for f in fields(SyntheticSpec)}


@dataclass(frozen=True)
class Event:
    """One video: the square's colour and where it is, the background level, and its visible window."""

    vid: str
    colour: str
    start_s: int
    end_s: int
    background: int
    box: tuple[int, int, int]  # x, y, side in pixels
    query: str = field(default="")


def draw_events(spec: SyntheticSpec, n: int, seed: int, prefix: str) -> list[Event]:
    """`n` random events; start in [0, D-2], end in [start+1, D-1] (the end is always a frame label)."""
    rng = np.random.default_rng(seed)
    d = spec.duration_s
    events = []
    for i in range(n):
        start = int(rng.integers(0, d - 1))
        end = int(rng.integers(start + 1, d))
        colour = list(COLOURS)[int(rng.integers(len(COLOURS)))]
        side = int(rng.integers(spec.size // 2, spec.size * 3 // 4 + 1))
        x, y = (int(v) for v in rng.integers(0, spec.size - side + 1, size=2))
        query = QUERIES[int(rng.integers(len(QUERIES)))].format(c=colour)
        background = int(rng.integers(40, 110))
        events.append(Event(f"{prefix}{i:04d}", colour, start, end, background, (x, y, side), query))
    return events


def render(event: Event, spec: SyntheticSpec) -> np.ndarray:
    """(duration_s, size, size, 3) uint8 frames, one per second."""
    frames = np.full((spec.duration_s, spec.size, spec.size, 3), event.background, dtype=np.uint8)
    x, y, side = event.box
    frames[event.start_s : event.end_s, y : y + side, x : x + side] = COLOURS[event.colour]
    return frames


def encode(
    frames: np.ndarray, path: Path, fps: int = FPS, quality: tuple[str, ...] = ("-qp", "4", "-g", "1")
) -> Path:
    """(n, h, w, 3) uint8 frames -> H.264 yuv444p mp4 at `fps`, written atomically; `quality`: the x264
    rate options (default: near-lossless, every frame a keyframe). The generated tasks all encode here."""
    ffmpeg = shutil.which("ffmpeg")
    if ffmpeg is None:
        raise ConfigError("ffmpeg is not on PATH; install it (apt-get install ffmpeg) to make the videos")
    n, h, w, _ = frames.shape
    with atomic_path(path) as tmp:
        cmd = [
            ffmpeg, "-nostdin", "-hide_banner", "-loglevel", "error", "-y",
            "-f", "rawvideo", "-pix_fmt", "rgb24", "-s", f"{w}x{h}", "-r", str(fps), "-i", "-",
            "-c:v", "libx264", "-preset", "ultrafast", *quality, "-pix_fmt", "yuv444p", str(tmp),
        ]  # fmt: skip
        proc = subprocess.run(cmd, input=frames.tobytes(), capture_output=True, check=False)
        if proc.returncode != 0:
            raise ConfigError(f"ffmpeg failed on {path.name}: {proc.stderr.decode(errors='replace')[-300:]}")
    return path


def annotation(event: Event, spec: SyntheticSpec) -> Annotation:
    window = (float(event.start_s), float(event.end_s))
    return Annotation(event.vid, event.vid, event.query, float(spec.duration_s), (window,))


def make_synthetic(spec: SyntheticSpec) -> dict[str, Path]:
    """Build (or reuse, when the manifest matches) the synthetic set; the paths of its files."""
    out = Path(spec.out)
    paths = {
        "train": out / "train.jsonl",
        "val": out / "val.jsonl",
        "train_gt": out / "charades_sta_train.txt",
        "test_gt": out / "charades_sta_test.txt",
        "manifest": out / "manifest.json",
    }
    try:
        if json.loads(paths["manifest"].read_text())["key"] == spec.key():
            return paths
    except (OSError, ValueError, KeyError):
        pass  # absent or from another spec: rebuild
    sampling = Sampling(fps=float(FPS), max_frames=spec.duration_s, max_pixels=spec.size * spec.size)
    splits = {
        "train": draw_events(spec, spec.num_train, spec.seed * 2, "syn_train_"),
        "val": draw_events(spec, spec.num_val, spec.seed * 2 + 1, "syn_val_"),
    }
    for split, events in splits.items():
        samples: list[SFTSample] = []
        for event in events:
            video = encode(render(event, spec), out / "videos" / f"{event.vid}.mp4")
            samples.append(to_sample(annotation(event, spec), "synthetic", video, sampling))
        write_jsonl((s.to_dict() for s in samples), paths[split])
        tag = "train" if split == "train" else "test"
        lines = [f"{e.vid} {e.start_s:.1f} {e.end_s:.1f}##{e.query}" for e in events]
        write_text_atomic(paths[f"{tag}_gt"], "\n".join(lines) + "\n")
        csv = ["id,length"] + [f"{e.vid},{spec.duration_s:.2f}" for e in events]
        write_text_atomic(out / f"Charades_v1_{tag}.csv", "\n".join(csv) + "\n")
    write_json_atomic(paths["manifest"], {"key": spec.key(), "spec": asdict(spec), "counts": {
        k: len(v) for k, v in splits.items()}})  # fmt: skip
    return paths


# --- eval: the learning table ------------------------------------------------------------------------


def evaluate(
    data_dir: str | Path,
    *,
    model: str | None = None,
    adapter: str | None = None,
    prior: bool = False,
    limit: int | None = None,
    mode: str = "images",
) -> dict[str, Any]:
    """R1@{0.3,0.5,0.7} and mIoU on the held-out split: the blind prior (fit on the train GT) or a model
    (+ adapter) through the library's `HFGrounder`, scored by `grounding_agent.benchmarks.metrics`."""
    from finetune.collator import sample_frames_for
    from finetune.data import read_samples
    from grounding_agent.benchmarks.metrics import charades_sta_metrics
    from grounding_agent.grounders.baselines import BlindPriorGrounder
    from grounding_agent.media.video import open_video

    data_dir = Path(data_dir)
    val = read_samples(data_dir / "val.jsonl")[:limit]
    anns = [Annotation(s.qid, s.vid, s.query, s.duration_s, tuple(map(tuple, s.windows_s))) for s in val]
    if prior:
        train = read_samples(data_dir / "train.jsonl")
        grounder: Any = BlindPriorGrounder.from_annotations(
            [Annotation(s.qid, s.vid, s.query, s.duration_s, tuple(map(tuple, s.windows_s))) for s in train]
        )
    elif model:
        from grounding_agent.grounders.hf import HFGrounder

        grounder = HFGrounder(model, adapter=adapter, dtype="float32", mode=mode, max_new_tokens=24)
    else:
        raise ConfigError("evaluate: pass a model (and optionally an adapter) or prior=True")
    predictions, failures = {}, 0
    for s in val:
        frames = None if prior else sample_frames_for(s)
        grounding = grounder.ground(open_video(s.video), s.query, top_k=1, frames=frames)
        failures += bool(grounding.failures)
        predictions[s.qid] = grounding.to_prediction(s.qid, s.vid, s.query)
    metrics = charades_sta_metrics(anns, predictions, allow_missing=True)
    return {"grounder": "prior" if prior else (adapter or model), "queries": len(val),
            "parse_failures": failures, "metrics": metrics}  # fmt: skip


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    sub = parser.add_subparsers(dest="command", required=True)
    make = sub.add_parser("make", help="build the synthetic set")
    make.add_argument("--out", default=SyntheticSpec.out)
    make.add_argument("--num-train", type=int, default=SyntheticSpec.num_train)
    make.add_argument("--num-val", type=int, default=SyntheticSpec.num_val)
    make.add_argument("--seed", type=int, default=SyntheticSpec.seed)
    ev = sub.add_parser("eval", help="R1/mIoU on the held-out split")
    ev.add_argument("--data", default=SyntheticSpec.out)
    ev.add_argument("--model", help="base model folder or hub id")
    ev.add_argument("--adapter", help="PEFT adapter folder")
    ev.add_argument("--prior", action="store_true", help="the blind prior baseline instead of a model")
    ev.add_argument("--limit", type=int)
    args = parser.parse_args(argv)
    if args.command == "make":
        spec = SyntheticSpec.from_config(
            {"out": args.out, "num_train": args.num_train, "num_val": args.num_val, "seed": args.seed}
        )
        print(json.dumps({k: str(v) for k, v in make_synthetic(spec).items()}, indent=2))
    else:
        result = evaluate(
            args.data, model=args.model, adapter=args.adapter, prior=args.prior, limit=args.limit
        )
        print(json.dumps(result, indent=2))
    return 0


if __name__ == "__main__":
    run_recipe(main)
