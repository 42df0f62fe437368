"""Engagement-supervised highlights: a head that learns where a business signal peaks, no manual labels.

    python finetune/engagement.py finetune/configs/tiny_engagement.yaml [training.loss=ranknet ...]
    grounding-agent finetune --recipe engagement finetune/configs/tiny_engagement.yaml        # the same

`data.csv` holds `video,t_s,value` rows (GMV, viewers, gifts, CTR over each stream's time line); `video` is
a file name (or stem) in `data.videos`. Each video's series is averaged per 2-s clip (gaps interpolated)
and standardised per video (stream scales differ). Each step draws `training.batch` videos and fits the
scorer f over their clips' CLIP features list-wise (`training.loss: listnet`, softmax(target / T)
cross-entropy) or pair-wise (`ranknet`). A CSV naming an unknown video, a bad row or a non-finite value is
refused in one line before anything is written. The head folder loads with `highlights --head DIR`.
"""

from __future__ import annotations

import csv
import math
import sys
from pathlib import Path

import numpy as np
import torch

if __package__ in (None, ""):  # run as `python finetune/engagement.py`: make the checkout importable
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from finetune.config import run_recipe
from finetune.rank_common import RankConfig, list_videos, train_and_save, video_tensors
from finetune.rank_eval import run
from grounding_agent.errors import ConfigError
from grounding_agent.highlights.head_rank import (
    ClipScorer,
    listnet_loss,
    ranknet_loss,
    resample_to_clips,
    standardise,
)
from grounding_agent.highlights.windows import num_clips

RECIPE = "engagement"
COLUMNS = ("video", "t_s", "value")


def _number(text: str | None, where: str, column: str) -> float:
    try:
        value = float(text or "")
    except ValueError:
        raise ConfigError(f"{where}: {column} {text!r} is not a number; fix the row or remove it") from None
    if not math.isfinite(value):
        raise ConfigError(f"{where}: {column} is {text!r}, not a finite number; fix the row or remove it")
    return value


def read_engagement(path: str | Path, videos: list[Path]) -> dict[Path, tuple[np.ndarray, np.ndarray]]:
    """video -> (t_s, value) arrays from a `video,t_s,value` CSV; every row checked, one-line errors."""
    path = Path(path)
    by_name = {v.name: v for v in videos} | {v.stem: v for v in videos}
    rows: dict[Path, list[tuple[float, float]]] = {}
    try:
        with path.open(encoding="utf-8", newline="") as fh:
            reader = csv.DictReader(fh)
            if reader.fieldnames is None or not set(COLUMNS) <= {c.strip() for c in reader.fieldnames}:
                raise ConfigError(f"{path}: the header must name the columns {','.join(COLUMNS)}")
            for line, row in enumerate(reader, start=2):
                row = {
                    (k or "").strip(): (v or "").strip() if isinstance(v, str) else v for k, v in row.items()
                }
                where = f"{path} line {line}"
                video = by_name.get(row.get("video") or "")
                if video is None:
                    raise ConfigError(
                        f"{where}: unknown video {row.get('video')!r}, not in {videos[0].parent}"
                    )
                t_s = _number(row.get("t_s"), where, "t_s")
                if t_s < 0:
                    raise ConfigError(f"{where}: t_s {t_s:g} is negative; times are seconds from the start")
                rows.setdefault(video, []).append((t_s, _number(row.get("value"), where, "value")))
    except FileNotFoundError:
        raise ConfigError(f"data.csv {path} not found; give a CSV of video,t_s,value rows") from None
    except (UnicodeDecodeError, csv.Error) as exc:
        raise ConfigError(
            f"{path} is not a UTF-8 CSV ({type(exc).__name__}); give video,t_s,value rows"
        ) from None
    if not rows:
        raise ConfigError(f"{path} has no rows; give video,t_s,value rows")
    return {v: (np.array([t for t, _ in r]), np.array([x for _, x in r])) for v, r in rows.items()}


def targets(series: tuple[np.ndarray, np.ndarray], duration_s: float) -> np.ndarray:
    """The series averaged per clip and standardised over the video."""
    return standardise(resample_to_clips(*series, num_clips(duration_s)))


def train(cfg: RankConfig, series: dict[Path, tuple[np.ndarray, np.ndarray]]) -> dict:
    videos, data = sorted(series), []
    for video, (x, duration_s) in zip(videos, video_tensors(cfg, videos)):
        y = torch.from_numpy(targets(series[video], duration_s)[: len(x)]).float()
        data.append((x, y.to(x.device)))
    dim = int(data[0][0].shape[1])
    torch.manual_seed(cfg.training.seed)  # the initial weights depend on the seed only
    scorer = ClipScorer(dim, cfg.model.hidden, cfg.model.dropout)
    t = cfg.training

    def step_loss(rng: np.random.Generator) -> torch.Tensor:
        picks = rng.choice(len(data), size=min(t.batch, len(data)), replace=False)
        losses = [
            listnet_loss(scorer(x), y, t.temperature) if t.loss == "listnet" else ranknet_loss(scorer(x), y)
            for x, y in (data[int(k)] for k in picks)
        ]
        return torch.stack(losses).mean()

    names = sorted(v.name for v in series)
    return train_and_save(
        cfg, {"scorer": scorer}, step_loss, names, dim, videos=len(data), loss=t.loss, steps=t.steps
    )


def fit(cfg: RankConfig, task: Path | None) -> None:
    """Train on the generated task's `eng_train` videos and CSV, or on data.videos and data.csv."""
    folder, table = (task / "eng_train", task / "engagement.csv") if task else (cfg.data.videos, cfg.data.csv)
    if folder is None or table is None:
        raise ConfigError(
            f"{cfg.source}: data.videos and data.csv are required (or set data.synthetic: true)"
        )
    train(cfg, read_engagement(table, list_videos(folder)))


def main(argv: list[str] | None = None) -> int:
    return run(RECIPE, argv, __doc__, "training.loss=ranknet", fit)


if __name__ == "__main__":
    run_recipe(main)
