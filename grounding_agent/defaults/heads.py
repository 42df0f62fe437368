"""Learned highlight heads (VCL, Less is More, engagement, TaoHighlight): loading, personalization."""

from __future__ import annotations

from dataclasses import dataclass

__all__: list[str] = []


@dataclass(frozen=True)
class HeadDefaults:
    """Learned highlight heads: the on-disk format and the ranking heads' (Less is More, engagement) knobs.

    Attributes:
        format: the `format` field of every head_config.json.
        version: the head folder format version this package reads and writes.
        hidden: width of the ranking scorer's hidden layer.
        dropout: dropout of the scorer and the confidence net while training.
        short_max_s: Less is More: a video shorter than this is "short" (its clips rank high).
        long_min_s: Less is More: a video longer than this is "long" (its clips rank low).
        pairs_per_step: (short clip, long clip) pairs drawn per training step.
        margin: the hinge loss margin, max(0, margin - f(x_i) + f(x_j)).
        lr: AdamW learning rate.
        weight_decay: AdamW weight decay.
        steps: training steps.
        save_every: checkpoint every this many steps (a killed run resumes from the last one).
        seed: sampling and initialisation seed.
        listwise_temperature: engagement: ListNet target = softmax(value / temperature) over a video's clips.
        max_likes: the most liked spans `--like` accepts.
    """

    format: str = "grounding-agent-head"
    version: int = 1
    hidden: int = 64
    dropout: float = 0.1
    short_max_s: float = 15.0
    long_min_s: float = 45.0
    pairs_per_step: int = 256
    margin: float = 1.0
    lr: float = 3e-3
    weight_decay: float = 1e-4
    steps: int = 200
    save_every: int = 50
    seed: int = 0
    listwise_temperature: float = 0.1
    max_likes: int = 5


HEADS = HeadDefaults()
__all__ += ["HEADS", "HeadDefaults"]
