"""Generated tasks for the ranking heads: short vs long videos (Less is More) and an engagement curve.

    python finetune/highlight_tasks_rank.py --out runs/rank_task [--seed 0]

Every video is a sequence of segments, one look each, at `fps` frames per second: *filler* (dim grey
backgrounds) or an *event* of kind "a" (bright warm backgrounds) or "b" (bright cool backgrounds). Every
segment has the same moving square and pixel noise, so motion alone does not tell events apart; scene
cuts happen in filler too. As Less is More assumes, short videos (< 15 s) are mostly events and long ones
(> 45 s) mostly filler. Engagement videos come with `engagement.csv` (`video,t_s,value`, one row a
second): a per-video scale times a bump per event (rising through it, decaying after) plus noise.

Held-out splits (videos no training run sees): `test/` (planted events, kinds a and b, for Less is More and
personalization) and `eng_test/` (planted events and their clean engagement curve). `labels.json` holds,
per held-out video, the per-2-s-clip event label, the kind-a label and the clean engagement value.
Outputs in OUT: `train/` (short_*.mp4, long_*.mp4), `eng_train/`, `test/`, `eng_test/`, `engagement.csv`
(eng_train only), `labels.json`, `manifest.json` (a matching manifest means the task is reused).
"""

from __future__ import annotations

import argparse
import colorsys
import hashlib
import json
import sys
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np

if __package__ in (
    None,
    "",
):  # run as `python finetune/highlight_tasks_rank.py`: make the checkout importable
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from finetune.config import run_recipe
from finetune.synthetic import encode
from grounding_agent.defaults import CLIP_LEN_S
from grounding_agent.errors import ConfigError
from grounding_agent.io import write_json_atomic, write_text_atomic

KINDS = ("filler", "a", "b")
QUALITY = ("-qp", "8")  # x264 rate options of `synthetic.encode`
HUES = {"a": (0.0, 0.14), "b": (0.45, 0.72)}  # warm / cool events, as colorsys hue fractions


@dataclass(frozen=True)
class RankTaskSpec:
    """What `make_rank_task` builds (the `data.synthetic` mapping of the ranking recipes' configs)."""

    out: str = "runs/rank_task"
    num_short: int = 16
    num_long: int = 8
    num_eng_train: int = 12
    num_test: int = 6
    num_eng_test: int = 6
    short_s: tuple[int, int] = (8, 12)
    long_s: tuple[int, int] = (50, 60)
    test_s: int = 48
    eng_s: tuple[int, int] = (30, 40)
    size: int = 64
    fps: int = 2
    seed: int = 0

    def key(self) -> str:
        fields = {k: v for k, v in asdict(self).items() if k != "out"}
        return hashlib.sha256(json.dumps(fields, sort_keys=True).encode()).hexdigest()[:16]

    @classmethod
    def from_config(cls, value: bool | dict) -> RankTaskSpec:
        if value is True:
            return cls()
        if not isinstance(value, dict):
            raise ConfigError(f"data.synthetic must be true or a mapping, got {value!r}")
        known = set(cls.__dataclass_fields__)
        unknown = set(value) - known
        if unknown:
            raise ConfigError(f"unknown key(s) {sorted(unknown)} in data.synthetic; allowed: {sorted(known)}")
        return cls(**{k: tuple(v) if isinstance(v, list) else v for k, v in value.items()})


# --- timelines: one kind per second ----------------------------------------------------------------


def plant(duration_s: int, events: list[tuple[str, int]], rng: np.random.Generator) -> list[str]:
    """A filler timeline of `duration_s` seconds with the events (kind, length_s) at random non-touching places."""
    kinds = ["filler"] * duration_s
    for kind, length in events:
        for _ in range(200):
            start = int(rng.integers(0, duration_s - length + 1))
            lo, hi = max(0, start - 2), min(duration_s, start + length + 2)
            if all(k == "filler" for k in kinds[lo:hi]):
                kinds[start : start + length] = [kind] * length
                break
    return kinds


def short_timeline(duration_s: int, rng: np.random.Generator) -> list[str]:
    """Mostly events (~75 %): a short video is what someone chose to keep."""
    kinds = [str(rng.choice(["a", "b"])) for _ in range(duration_s)]
    length = int(rng.integers(1, 4))
    start = int(rng.integers(0, duration_s - length + 1))
    kinds[start : start + length] = ["filler"] * length
    return kinds


def long_timeline(duration_s: int, rng: np.random.Generator) -> list[str]:
    """Mostly filler (~10 % events): a long video is raw footage."""
    n = max(1, round(0.1 * duration_s / 3))
    return plant(duration_s, [(str(rng.choice(["a", "b"])), 3) for _ in range(n)], rng)


def test_timeline(duration_s: int, rng: np.random.Generator) -> list[str]:
    """Three kind-a and two kind-b events of 4 s: kind a is what a user may like (personalization)."""
    events = [("a", 4)] * 3 + [("b", 4)] * 2
    return plant(duration_s, [events[i] for i in rng.permutation(len(events))], rng)


def eng_timeline(duration_s: int, rng: np.random.Generator) -> list[str]:
    n = int(rng.integers(2, 4))
    return plant(duration_s, [(str(rng.choice(["a", "b"])), int(rng.integers(3, 6))) for _ in range(n)], rng)


def engagement_curve(kinds: list[str], rng: np.random.Generator) -> np.ndarray:
    """Clean per-second engagement: 1 + gain * a bump per event (rising through it, decaying after)."""
    t = np.arange(len(kinds), dtype=np.float64) + 0.5
    curve = np.ones(len(kinds))
    i = 0
    while i < len(kinds):
        if kinds[i] == "filler":
            i += 1
            continue
        j = i
        while j < len(kinds) and kinds[j] == kinds[i]:
            j += 1
        peak, gain = (i + j) / 2, float(rng.uniform(1.0, 2.0))
        width = np.where(t < peak, (j - i) / 2, 1.5)  # the audience reacts during the event, fades after
        curve += gain * np.exp(-0.5 * ((t - peak) / width) ** 2)
        i = j
    return curve


# --- rendering -------------------------------------------------------------------------------------


def _background(kind: str, rng: np.random.Generator) -> np.ndarray:
    if kind == "filler":
        level = float(rng.uniform(45, 110))
        return np.clip(level + rng.uniform(-8, 8, size=3), 0, 255)
    hue = float(rng.uniform(*HUES[kind]))
    rgb = colorsys.hsv_to_rgb(hue, float(rng.uniform(0.75, 1.0)), float(rng.uniform(0.8, 1.0)))
    return np.array(rgb) * 255


def render(kinds: list[str], spec: RankTaskSpec, rng: np.random.Generator) -> np.ndarray:
    """(seconds * fps, size, size, 3) uint8 frames; a new background every segment (and every 3-8 s of filler)."""
    n = len(kinds) * spec.fps
    frames = np.empty((n, spec.size, spec.size, 3), np.float32)
    side = spec.size // 4
    colour, left = None, 0
    for f in range(n):
        second = f // spec.fps
        if (
            colour is None
            or left <= 0
            or (second and f % spec.fps == 0 and kinds[second] != kinds[second - 1])
        ):
            colour, left = _background(kinds[second], rng), int(rng.integers(3, 9)) * spec.fps
        left -= 1
        frames[f] = colour
        # The same moving square everywhere: lighter than its background by the same amount.
        x = int((f * 3) % (spec.size - side))
        y = int((spec.size - side) / 2 + (spec.size / 4) * np.sin(f / 3))
        frames[f, y : y + side, x : x + side] = np.clip(colour + 90, 0, 255)
    frames += rng.normal(0, 6, size=frames.shape)
    return np.clip(frames, 0, 255).astype(np.uint8)


def clip_labels(kinds: list[str], values: np.ndarray | None = None) -> dict[str, list[float]]:
    """Per 2-s clip: event share >= 0.5 (1/0), kind-a share >= 0.5, mean clean engagement (if given)."""
    n = int(np.ceil(len(kinds) / CLIP_LEN_S))
    step = int(CLIP_LEN_S)
    out: dict[str, list[float]] = {
        "event": [
            float(np.mean([k != "filler" for k in kinds[i * step : (i + 1) * step]]) >= 0.5) for i in range(n)
        ],
        "kind_a": [
            float(np.mean([k == "a" for k in kinds[i * step : (i + 1) * step]]) >= 0.5) for i in range(n)
        ],
    }
    if values is not None:
        out["engagement"] = [float(np.mean(values[i * step : (i + 1) * step])) for i in range(n)]
    return out


# --- the task --------------------------------------------------------------------------------------


def _split(
    spec: RankTaskSpec, name: str, count: int, make, rng: np.random.Generator
) -> list[tuple[str, list[str]]]:
    return [(f"{name}_{i:03d}", make(rng)) for i in range(count)]


def timelines(spec: RankTaskSpec) -> dict[str, list[tuple[str, list[str]]]]:
    """folder -> [(video name, per-second kinds)] for every split."""
    rng = np.random.default_rng(spec.seed)

    def dur(bounds: tuple[int, int]) -> int:
        return int(rng.integers(bounds[0], bounds[1] + 1))

    train = _split(spec, "short", spec.num_short, lambda r: short_timeline(dur(spec.short_s), r), rng)
    train += _split(spec, "long", spec.num_long, lambda r: long_timeline(dur(spec.long_s), r), rng)
    return {
        "train": train,
        "eng_train": _split(spec, "eng", spec.num_eng_train, lambda r: eng_timeline(dur(spec.eng_s), r), rng),
        "test": _split(spec, "test", spec.num_test, lambda r: test_timeline(spec.test_s, r), rng),
        "eng_test": _split(spec, "engtest", spec.num_eng_test, lambda r: eng_timeline(spec.test_s, r), rng),
    }


def make_rank_task(spec: RankTaskSpec) -> Path:
    """Build (or reuse, when the manifest matches) the task in `spec.out`; returns the folder."""
    out = Path(spec.out)
    manifest = out / "manifest.json"
    try:
        if json.loads(manifest.read_text())["key"] == spec.key():
            return out
    except (OSError, ValueError, KeyError):
        pass  # absent or another spec: build
    rng = np.random.default_rng(spec.seed + 1)
    labels: dict[str, dict] = {}
    rows = ["video,t_s,value"]
    for folder, videos in timelines(spec).items():
        for name, kinds in videos:
            encode(render(kinds, spec, rng), out / folder / f"{name}.mp4", spec.fps, QUALITY)
            clean = engagement_curve(kinds, rng) if folder.startswith("eng") else None
            if folder == "eng_train":
                scale = float(rng.uniform(50, 500))  # viewers of this stream: scales differ per video
                noisy = scale * (clean + rng.normal(0, 0.15, size=len(clean)))
                rows += [f"{name}.mp4,{t + 0.5:.1f},{v:.3f}" for t, v in enumerate(noisy)]
            if folder in ("test", "eng_test"):
                labels[f"{folder}/{name}.mp4"] = clip_labels(kinds, clean)
    write_text_atomic(out / "engagement.csv", "\n".join(rows) + "\n")
    write_json_atomic(out / "labels.json", labels)
    write_json_atomic(manifest, {"key": spec.key(), "spec": asdict(spec)})
    return out


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--out", default=RankTaskSpec.out, help="folder of the task")
    p.add_argument("--seed", type=int, default=RankTaskSpec.seed, help="seed of every draw")
    args = p.parse_args(argv)
    print(make_rank_task(RankTaskSpec(out=args.out, seed=args.seed)))
    return 0


if __name__ == "__main__":
    run_recipe(main)
