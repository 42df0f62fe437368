"""Generated task for the query / title heads (VCL, TaoHighlight): videos with one planted product event.

    python finetune/highlight_tasks.py --out runs/highlight_task [--seed 0]

Every video is `duration_s` seconds (a whole number of 2-s clips) at `fps`, `size` x `size` pixels: a
muted background of drifting stripes and pixel noise (its palette varies per video), and once, for 4 to 8
seconds starting on a clip boundary, a product: a bright square ("gift box") or disc ("ball") of one of
four colours, bobbing a little. The query names what is shown ("the red ball is on screen"), the title
names the product as a shop would ("Red ball - bouncy and tough - 20% off"). Labels are QVHighlights-shaped:
`relevant_windows` = the event, `relevant_clip_ids` its clips, `saliency_scores` three annotators (4 4 4
inside, 4 3 3 on the first and last clip). Train and held-out videos come from disjoint seeds.

Outputs in OUT: `videos/{vid}.mp4`, `train.jsonl`, `val.jsonl` (QVHighlights rows plus "title") and
`manifest.json` (a matching manifest means the task is reused, not rebuilt).
"""

from __future__ import annotations

import argparse
import json
import sys
from dataclasses import asdict, dataclass, fields
from pathlib import Path
from typing import Any

import numpy as np

if __package__ in (None, ""):  # run as `python finetune/highlight_tasks.py`: make the checkout importable
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from finetune.config import run_recipe
from finetune.synthetic import encode
from grounding_agent.defaults import CLIP_LEN_S
from grounding_agent.errors import ConfigError
from grounding_agent.io import write_json_atomic, write_text_atomic

COLOURS: dict[str, tuple[int, int, int]] = {
    "red": (235, 40, 40),
    "green": (40, 220, 60),
    "blue": (50, 80, 245),
    "yellow": (245, 225, 40),
}
PRODUCTS = {"square": "gift box", "disc": "ball"}
QUERIES = ("the {c} {p} is on screen", "a {c} {p} appears", "when is the {c} {p} shown?")
TITLES = ("{C} {p} - limited offer", "{C} {p}, bouncy and tough - 20% off", "New: the {c} {p}")
TASK_VERSION = 2
QUALITY = ("-crf", "18")  # x264 rate options of `synthetic.encode`: near-lossless


@dataclass(frozen=True)
class PlantedSpec:
    """What `make_planted_task` builds (the `data.generated` mapping of the VCL / TaoHighlight configs)."""

    out: str = "runs/highlight_task"
    num_train: int = 24
    num_val: int = 12
    min_clips: int = 10  # videos of 10..16 two-second clips (20..32 s)
    max_clips: int = 16
    fps: int = 4
    size: int = 64
    seed: int = 0

    @classmethod
    def from_config(cls, value: Any) -> PlantedSpec:
        if value is True:
            return cls()
        if not isinstance(value, dict):
            raise ConfigError(f"data.generated must be true or a mapping, got {type(value).__name__}")
        unknown = set(value) - {f.name for f in fields(cls)}
        if unknown:
            raise ConfigError(f"unknown key(s) {sorted(unknown)} in data.generated")
        spec = cls(**value)
        if not 3 <= spec.min_clips <= spec.max_clips or spec.num_train < 1 or spec.num_val < 1:
            raise ConfigError("data.generated: need 3 <= min_clips <= max_clips and num_train, num_val >= 1")
        return spec


@dataclass(frozen=True)
class Planted:
    vid: str
    n_clips: int
    first_clip: int  # the event covers clips first_clip .. first_clip + len_clips - 1
    len_clips: int
    colour: str
    shape: str
    query: str
    title: str


def draw(spec: PlantedSpec, n: int, seed: int, prefix: str) -> list[Planted]:
    """`n` videos' plans from `seed` (train and held-out splits use different seeds)."""
    rng = np.random.default_rng(seed)
    out = []
    for i in range(n):
        n_clips = int(rng.integers(spec.min_clips, spec.max_clips + 1))
        length = int(rng.integers(2, 5))  # 4..8 s
        first = int(rng.integers(0, n_clips - length + 1))
        colour, shape = str(rng.choice(list(COLOURS))), str(rng.choice(list(PRODUCTS)))
        noun = PRODUCTS[shape]
        query = str(rng.choice(QUERIES)).format(c=colour, p=noun)
        title = str(rng.choice(TITLES)).format(C=colour.capitalize(), c=colour, p=noun)
        out.append(Planted(f"{prefix}{i:03d}", n_clips, first, length, colour, shape, query, title))
    return out


def render(plan: Planted, spec: PlantedSpec, seed: int) -> np.ndarray:
    """(frames, size, size, 3) uint8."""
    rng = np.random.default_rng(seed)
    n_frames = int(plan.n_clips * CLIP_LEN_S * spec.fps)
    s = spec.size
    y, x = np.mgrid[0:s, 0:s].astype(np.float32)
    base = rng.uniform(50, 130, size=3).astype(np.float32)
    stripe = rng.uniform(15, 35, size=3).astype(np.float32)
    t = np.arange(n_frames, dtype=np.float32)[:, None, None] / spec.fps
    wave = np.sin((x[None] * 0.35 + y[None] * 0.15) + t * rng.uniform(1.0, 2.5))
    frames = base + stripe * wave[..., None] + rng.normal(0, 8, size=(n_frames, s, s, 3))
    start = int(plan.first_clip * CLIP_LEN_S * spec.fps)
    stop = int((plan.first_clip + plan.len_clips) * CLIP_LEN_S * spec.fps)
    cx, cy = rng.uniform(0.35 * s, 0.65 * s, size=2)
    half = s * 0.22
    for f in range(start, stop):
        bob = 2.0 * np.sin(f / spec.fps * 3.0)
        dx, dy = x - cx, y - (cy + bob)
        inside = (np.abs(dx) < half) & (np.abs(dy) < half)
        if plan.shape == "disc":
            inside = dx * dx + dy * dy < half * half
        frames[f][inside] = COLOURS[plan.colour]
    return np.clip(frames, 0, 255).astype(np.uint8)


def row(plan: Planted, qid: int) -> dict[str, Any]:
    """The QVHighlights jsonl row (plus "title") of one planted video."""
    ids = list(range(plan.first_clip, plan.first_clip + plan.len_clips))
    scores = [[4, 3, 3] if c in (ids[0], ids[-1]) else [4, 4, 4] for c in ids]
    window = [plan.first_clip * CLIP_LEN_S, (plan.first_clip + plan.len_clips) * CLIP_LEN_S]
    return {
        "qid": qid,
        "query": plan.query,
        "title": plan.title,
        "vid": plan.vid,
        "duration": plan.n_clips * CLIP_LEN_S,
        "relevant_windows": [window],
        "relevant_clip_ids": ids,
        "saliency_scores": scores,
    }


def make_planted_task(spec: PlantedSpec) -> dict[str, Path]:
    """Build (or reuse, when the manifest matches) the task; paths of train.jsonl, val.jsonl, videos/."""
    out = Path(spec.out)
    paths = {"train": out / "train.jsonl", "val": out / "val.jsonl", "videos": out / "videos"}
    manifest = {"task": "planted", "version": TASK_VERSION, **asdict(spec)}
    manifest_path = out / "manifest.json"
    if manifest_path.is_file() and json.loads(manifest_path.read_text()) == manifest:
        return paths
    splits = {
        "train": draw(spec, spec.num_train, spec.seed * 2, "train_"),
        "val": draw(spec, spec.num_val, spec.seed * 2 + 1, "val_"),
    }
    qid = 0
    for split, plans in splits.items():
        lines = []
        for i, plan in enumerate(plans):
            seed = spec.seed * 100_003 + (0 if split == "train" else 50_000) + i
            encode(render(plan, spec, seed), paths["videos"] / f"{plan.vid}.mp4", spec.fps, QUALITY)
            lines.append(json.dumps(row(plan, qid)))
            qid += 1
        write_text_atomic(paths[split], "\n".join(lines) + "\n")
    write_json_atomic(manifest_path, manifest)  # last: a half-built task is rebuilt
    return paths


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", default=PlantedSpec.out, help="output folder")
    parser.add_argument("--seed", type=int, default=PlantedSpec.seed, help="task seed")
    args = parser.parse_args(argv)
    paths = make_planted_task(PlantedSpec(out=args.out, seed=args.seed))
    print(json.dumps({k: str(v) for k, v in paths.items()}))
    return 0


if __name__ == "__main__":
    run_recipe(main)
