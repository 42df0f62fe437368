"""Summaries (`summarize`): shots, the budget (default 15 % of the video), diversity, knapsack."""

from __future__ import annotations

from dataclasses import dataclass

__all__: list[str] = []


@dataclass(frozen=True)
class SummaryDefaults:
    """A keyshot summary: shots cut by PySceneDetect, scored by saliency, picked by a 0/1 knapsack.

    Attributes:
        ratio: the budget as a share of the video when no `seconds` is given (TVSum/SumMe use 15 %).
        max_shot_s: a longer shot (or a video with one long scene) is split into pieces at most this long.
        min_shot_s: a shorter shot is merged into its neighbour (a flash or a cut artefact is not a shot).
        scene_threshold: PySceneDetect ContentDetector's threshold (its own default is 27).
        diversity: lambda of `score - lambda * similarity` (similarity to the more important shot most like it).
        hist_bins: colour-histogram bins per channel of a shot's feature (its mean colour histogram).
        detect_fps: frames per second the shot detector reads (each cut is then put on its exact frame).
        max_snap_s: a boundary moves at most this far to reach a sentence end (else to a word gap).
        split_penalty: cost of one more piece when a long shot is split where the highlight signals change,
            in units of the signal's variance over the video (higher: fewer, longer pieces).
    """

    ratio: float = 0.15
    max_shot_s: float = 8.0
    min_shot_s: float = 1.0
    scene_threshold: float = 27.0
    diversity: float = 0.3
    hist_bins: int = 8
    detect_fps: float = 5.0
    max_snap_s: float = 3.0
    split_penalty: float = 1.0


SUMMARY = SummaryDefaults()
__all__ += ["SUMMARY", "SummaryDefaults"]
