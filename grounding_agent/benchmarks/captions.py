"""ActivityNet Captions and TACoS: one JSON object keyed by video, with `timestamps` and `sentences` lists.

- ActivityNet Captions: `val_1.json` / `val_2.json` (`{vid: {duration, timestamps: [[s, e]...],
  sentences: [...]}}`, seconds); `qid` is the 0-based running index over (video, sentence) in file order.
- TACoS: the common json (2D-TAN's `{video.avi: {num_frames, fps, timestamps: [[start_frame,
  end_frame]...], sentences}}`); times are frames / fps, the video id drops the extension; qids as above.
"""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path
from typing import Any

from grounding_agent.benchmarks.annotations import Annotation, Dataset, GTPolicy
from grounding_agent.benchmarks.reading import (
    finite,
    fix_window,
    positive_duration,
    read_json_object,
    report_changes,
    wrong_format_hint,
)
from grounding_agent.errors import DatasetError


def _per_video(
    path: Path,
    name: str,
    videos: Iterable[tuple[str, float, list[Any], list[Any], float]],
    policy: GTPolicy,
) -> Dataset:
    """Annotations from (vid, duration_s, timestamps, sentences, seconds per time unit) per video."""
    stats: dict[str, int] = {}
    out: list[Annotation] = []
    qid = 0
    for vid, duration_s, timestamps, sentences, unit_s in videos:
        where = f"{path}: video {vid}"
        if (
            not isinstance(timestamps, list)
            or not isinstance(sentences, list)
            or len(timestamps) != len(sentences)
        ):
            raise DatasetError(f"{where}: needs equally long 'timestamps' and 'sentences' lists")
        for ts, sentence in zip(timestamps, sentences):
            if not isinstance(ts, list) or len(ts) != 2 or not isinstance(sentence, str):
                raise DatasetError(f"{where}: timestamp {ts!r} / sentence {sentence!r} malformed")
            start, end = (finite(t, "GT time", where) * unit_s for t in ts)
            window = fix_window(start, end, duration_s, policy, stats, where)
            if window is not None:
                out.append(Annotation(qid, vid, sentence.strip(), duration_s, (window,)))
            qid += 1
    report_changes(path.name, stats)
    return Dataset(name, out, stats)


def load_activitynet_captions(json_path: str | Path, policy: GTPolicy = GTPolicy()) -> Dataset:
    """ActivityNet Captions grounding annotations (`val_1.json`, `val_2.json`, `train.json`)."""
    path = Path(json_path)
    data = read_json_object(path, "activitynet-captions")

    def videos():
        for vid, v in data.items():
            if "duration" not in v:
                raise DatasetError(
                    f"{path}: video {vid} has no 'duration'" + wrong_format_hint(path, "activitynet-captions")
                )
            yield (
                vid,
                positive_duration(v["duration"], f"{path}: video {vid}"),
                v.get("timestamps"),
                v.get("sentences"),
                1.0,
            )

    return _per_video(path, "activitynet-captions", videos(), policy)


def load_tacos(json_path: str | Path, policy: GTPolicy = GTPolicy()) -> Dataset:
    """TACoS annotations in the common json (times in frames; duration = num_frames / fps)."""
    path = Path(json_path)
    data = read_json_object(path, "tacos")

    def videos():
        for key, v in data.items():
            where = f"{path}: video {key}"
            if "num_frames" not in v or "fps" not in v:
                raise DatasetError(
                    f"{where}: needs 'num_frames' and 'fps'" + wrong_format_hint(path, "tacos")
                )
            fps = positive_duration(v["fps"], where)  # > 0 and finite, like a duration
            yield (
                Path(key).stem,
                positive_duration(v["num_frames"], where) / fps,
                v.get("timestamps"),
                v.get("sentences"),
                1.0 / fps,
            )

    return _per_video(path, "tacos", videos(), policy)
