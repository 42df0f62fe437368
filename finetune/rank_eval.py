"""Held-out table of the ranking heads on their generated tasks (finetune/highlight_tasks_rank.py), and
the ranking recipes' run that writes it after training (`run`).

    python finetune/rank_eval.py --task runs/rank_task --clip-model .tiny-models/clip \
        --head runs/tiny_less_is_more --head runs/tiny_engagement --out runs/rank_eval.json

Per held-out video, per 2-s clip, each method's score: zero-shot (CLIP similarity to the generic highlight
prompts, averaged), heuristic fusion (`generic_highlights`: CLIP prompts, motion, scene, audio), and each
trained head. Metrics, averaged over videos: HIT@1 (the top clip is an event), mAP (`ranking_ap` against
the event labels) and Kendall's tau (against the clean engagement curve on `eng_test`, the event labels on
`test`). Personalization (`test` split): the user likes the first clip of 1..3 kind-a events; the ranking
(min-max base + min-max `personalize` score) is scored against kind a on the clips not liked.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

if __package__ in (None, ""):  # run as `python finetune/rank_eval.py`: make the checkout importable
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from finetune.config import run_recipe
from finetune.rank_common import RankConfig, load_saliency, parse_run
from grounding_agent.benchmarks.metrics import ranking_ap
from grounding_agent.defaults import CLIP_LEN_S, HIGHLIGHTS
from grounding_agent.errors import ConfigError
from grounding_agent.highlights.heads import HighlightHead, clip_features, load_head
from grounding_agent.highlights.personalize import personalize
from grounding_agent.io import write_json_atomic
from grounding_agent.types import minmax

TASK_OF = {"less-is-more": "test", "engagement": "eng_test"}  # each head's own held-out split


def scores_metrics(scores: np.ndarray, labels: np.ndarray, graded: np.ndarray) -> dict[str, float]:
    """HIT@1, AP and Kendall tau of one video's clip scores."""
    from scipy.stats import kendalltau

    n = min(len(scores), len(labels))
    s, y, g = np.asarray(scores[:n], float), np.asarray(labels[:n], float), np.asarray(graded[:n], float)
    tau = kendalltau(s, g).statistic if np.ptp(s) > 0 and np.ptp(g) > 0 else 0.0
    return {"hit1": float(y[int(np.argmax(s))]), "map": float(ranking_ap(y, s)), "tau": float(tau)}


def _mean(rows: list[dict[str, float]]) -> dict[str, float]:
    return {k: round(100 * float(np.mean([r[k] for r in rows])), 1) for k in rows[0]}


class TaskVideos:
    """The held-out videos of one split, their labels and clip features (computed once)."""

    def __init__(self, task: Path, split: str, saliency: Any):
        labels = json.loads((task / "labels.json").read_text(encoding="utf-8"))
        self.items = [
            (task / name, lab) for name, lab in sorted(labels.items()) if name.startswith(f"{split}/")
        ]
        if not self.items:
            raise ConfigError(f"{task}/labels.json has no {split!r} videos; rebuild the task")
        from grounding_agent.media.video import open_video

        self.saliency = saliency
        self.features = [
            clip_features(saliency.embed(path), open_video(path).duration_s) for path, _ in self.items
        ]
        self.graded_key = "engagement" if split == "eng_test" else "event"

    def zero_shot(self) -> list[np.ndarray]:
        text = self.saliency.embed_texts(list(HIGHLIGHTS.prompts))
        return [(f @ text.T).mean(axis=1) for f in self.features]

    def heuristic(self) -> list[np.ndarray]:
        from grounding_agent.highlights.windows import generic_highlights

        return [
            np.asarray(generic_highlights(path, saliency=self.saliency).prediction.pred_saliency_scores)
            for path, _ in self.items
        ]

    def head(self, head: HighlightHead) -> list[np.ndarray]:
        return [head.score_clips(f) for f in self.features]

    def score(self, per_video: list[np.ndarray]) -> dict[str, float]:
        rows = [
            scores_metrics(s, np.asarray(lab["event"]), np.asarray(lab[self.graded_key]))
            for s, (_, lab) in zip(per_video, self.items, strict=True)
        ]
        return _mean(rows)


def liked_clips(kind_a: np.ndarray, count: int) -> list[int]:
    """The first clip of each of the first `count` kind-a events."""
    starts = [i for i in range(len(kind_a)) if kind_a[i] and (i == 0 or not kind_a[i - 1])]
    return starts[:count]


def personalization(
    videos: TaskVideos, base: list[np.ndarray], counts: list[int]
) -> dict[str, dict[str, float]]:
    """Metrics against kind a (on the clips not liked): the base ranking, then base + `personalize` per count."""
    out: dict[str, dict[str, float]] = {}
    for count in [0, *counts]:
        rows = []
        for scores, feats, (_, lab) in zip(base, videos.features, videos.items, strict=True):
            kind_a = np.asarray(lab["kind_a"])[: len(feats)]
            liked = liked_clips(kind_a, count) if count else liked_clips(kind_a, max(counts))
            ranked = minmax(np.asarray(scores, float)[: len(feats)])
            if count:
                likes = [(c * CLIP_LEN_S, (c + 1) * CLIP_LEN_S) for c in liked]
                ranked = ranked + minmax(personalize(feats, likes))
            keep = np.setdiff1d(np.arange(len(feats)), liked)  # the same clips with or without likes
            rows.append(scores_metrics(ranked[keep], kind_a[keep], kind_a[keep]))
        out["no likes" if not count else f"{count} like{'s' if count > 1 else ''}"] = _mean(rows)
    return out


def evaluate(task: Path, saliency: Any, heads: dict[str, HighlightHead], likes: list[int]) -> dict[str, Any]:
    """{split: {method: metrics}} for the splits of the heads given, plus personalization on `test`."""
    result: dict[str, Any] = {}
    for split in sorted({TASK_OF[h.recipe] for h in heads.values()}):
        videos = TaskVideos(task, split, saliency)
        table = {"zero-shot": videos.score(videos.zero_shot()), "heuristic": videos.score(videos.heuristic())}
        for name, head in heads.items():
            table[f"head:{name}"] = videos.score(videos.head(head))
        result[split] = table
        lim = [h for h in heads.values() if h.recipe == "less-is-more"]
        if split == "test" and lim and likes:
            result["personalization"] = personalization(videos, videos.head(lim[0]), likes)
    return result


def markdown(result: dict[str, Any]) -> str:
    """The README table: one row per (task, method)."""
    lines = ["| task (held-out) | method | HIT@1 | mAP | Kendall τ |", "|---|---|---|---|---|"]
    names = {"test": "short vs long", "eng_test": "engagement", "personalization": "like kind a"}
    for split, table in result.items():
        for method, m in table.items():
            lines.append(f"| {names.get(split, split)} | {method} | {m['hit1']} | {m['map']} | {m['tau']} |")
    return "\n".join(lines)


def write_eval(cfg: RankConfig, task: Path) -> dict[str, Any]:
    """After a recipe: its head vs zero-shot and heuristic on its own held-out split -> `output_dir/eval.json`."""
    head = load_head(cfg.output_dir, expect=cfg.recipe)
    result = evaluate(task, load_saliency(cfg), {cfg.recipe: head}, cfg.eval.likes)
    write_json_atomic(cfg.output_dir / "eval.json", result)
    print(markdown(result))
    return result


def run(
    recipe: str,
    argv: list[str] | None,
    doc: str,
    example: str,
    fit: Callable[[RankConfig, Path | None], None],
) -> int:
    """A ranking recipe's run (Less is More, engagement): its `CONFIG [KEY=VALUE ...]` (`parse_run`; `example`
    shows an override in --help), `fit` (the recipe reads its data, from the generated task when there is
    one, trains and saves the head), then on a generated task the held-out table (`eval.after_training`)."""
    cfg, task = parse_run(recipe, argv, doc, example)
    fit(cfg, task)
    print(f"head written to {cfg.output_dir}")
    if task is not None and cfg.eval.after_training:
        write_eval(cfg, task)
    return 0


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--task", required=True, help="folder made by finetune/highlight_tasks_rank.py")
    p.add_argument("--clip-model", required=True, help="the CLIP model the heads were trained on")
    p.add_argument("--backend", default="torch", help="vision backend (torch | onnx | onnx-int8)")
    p.add_argument("--head", action="append", default=[], help="a trained head folder (repeatable)")
    p.add_argument("--likes", default="1,3", help="personalization: liked-span counts to measure")
    p.add_argument("--out", help="write the results as JSON here")
    args = p.parse_args(argv)
    from grounding_agent.highlights.clip import ClipSaliency

    heads = {Path(d).name: load_head(d) for d in args.head}
    saliency = ClipSaliency.from_pretrained(args.clip_model, backend=args.backend)
    likes = [int(x) for x in args.likes.split(",") if x.strip()]
    result = evaluate(Path(args.task), saliency, heads, likes)
    if args.out:
        write_json_atomic(args.out, result)
    print(markdown(result))
    return 0


if __name__ == "__main__":
    run_recipe(main)
