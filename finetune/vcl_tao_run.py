"""A VCL or TaoHighlight run from its command line (`finetune/vcl.py`, `finetune/taohighlight.py`): what the
two recipes do differently is a `HeadRecipe`; `run` trains it with `vcl_tao_train`'s loop, writes the head
and, on a val split, the table against zero-shot CLIP (and heuristic fusion) into eval.json and stdout.
"""

from __future__ import annotations

import sys
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch

from finetune.vcl_tao_train import (
    FeatureSource,
    RunConfig,
    Sample,
    baselines,
    load_samples,
    report,
    score,
    start,
    train_and_save,
)


def clip_scores(head: Any, samples: list[Sample]) -> tuple[dict[Any, np.ndarray], dict[str, Any]]:
    """The head's clip scores by qid, and nothing more to report."""
    return {s.qid: head.score_clips(s.features, s.text) for s in samples}, {}


@dataclass(frozen=True)
class HeadRecipe:
    """What the VCL and TaoHighlight runs do differently; `run` does the rest the same way."""

    name: str  # the recipe, as the head folder records it
    title: str  # the trained head's row in the printed table
    usage: str  # printed when no CONFIG is given
    defaults: dict[str, Any]  # the head, loss, training and eval sections under the YAML
    text_field: str  # what a row's text is: "query" or "title"
    build: Callable[[str, dict[str, Any]], tuple[Any, Any, int]]  # (clip_model, head) -> net, tokenizer, dim
    head: Callable[..., Any]  # (net, tokenizer, clip_model=, feature_dim=) -> the head that scores
    batch_loss: Callable[[Any, Any, RunConfig, torch.device], Callable[[list[Sample]], torch.Tensor]]
    describe: Callable[[Any, RunConfig], str]  # the line that says what trains
    evaluate: Callable[[Any, list[Sample]], tuple[dict, dict[str, Any]]] = clip_scores  # (scores, more)
    footer: Callable[[dict[str, Any]], str] | None = None  # a line after the table, from `evaluate`'s more


def run(recipe: HeadRecipe, argv: list[str] | None) -> int:
    """`CONFIG [a.b=value ...]`: train (resuming a checkpoint), write the head, then on a val split the
    table of the head against zero-shot CLIP (and heuristic fusion) into eval.json and stdout."""
    args = sys.argv[1:] if argv is None else argv
    if not args:
        print(recipe.usage, file=sys.stderr)
        return 2
    cfg, state, device, train_pairs, val_pairs = start(recipe.name, args, recipe.defaults, recipe.text_field)
    net, tokenizer, feature_dim = recipe.build(cfg.clip_model, cfg.head)
    source = FeatureSource(cfg)
    train_set = load_samples(train_pairs, source, feature_dim)
    print(recipe.describe(net, cfg), flush=True)
    batch_loss = recipe.batch_loss(net, tokenizer, cfg, device)
    train_and_save(recipe.name, net, train_set, batch_loss, cfg, state, device, feature_dim)
    if val_pairs:
        val_set = load_samples(val_pairs, source, feature_dim)
        head = recipe.head(net, tokenizer, clip_model=cfg.clip_model, feature_dim=feature_dim)
        scores, more = recipe.evaluate(head, val_set)
        rows = {"head": score(val_set, scores)}
        if cfg.eval.get("baselines"):
            rows.update(baselines(val_set, source))
        report(cfg, recipe.title, rows, {"recipe": recipe.name, "steps": int(cfg.training["steps"]), **more})
        if recipe.footer is not None:
            print(recipe.footer(more))
    return 0
