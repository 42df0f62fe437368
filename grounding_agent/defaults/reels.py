"""Edits across clips: multi-source plans, normalised renders, scale-out (Ray) settings."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class ReelDefaults:
    """Knobs of `grounding_agent.edit.reel` and `grounding-agent reel`.

    Attributes:
        total_s: the longest reel made from search hits ("a 30-second reel").
        max_clips: the most clips one reel takes.
        min_clip_s: a hit shorter than this is widened around its middle (a cut shorter reads as a glitch).
        search_k: hits asked of the library before they are cut down to `total_s`.
        audio_rate: the sample rate every source's sound is resampled to in a render.
    """

    total_s: float = 30.0
    max_clips: int = 20
    min_clip_s: float = 1.0
    search_k: int = 50
    audio_rate: int = 48000


@dataclass(frozen=True)
class RayDefaults:
    """Scale-out on a Ray cluster (`index --ray`, `eval run --ray`).

    Attributes:
        num_cpus: CPUs one indexing or eval task asks of the cluster.
        batch_size: rows per Ray Data batch in the indexing job.
    """

    num_cpus: float = 1.0
    batch_size: int = 1


REELS = ReelDefaults()
RAY = RayDefaults()

__all__: list[str] = ["RAY", "REELS", "RayDefaults", "ReelDefaults"]
