"""Per-2-s-clip highlight scores for a summary (`highlights.windows.generic_highlights`), cached on disk.

The generic detector decodes the whole video for motion and scene change and reads its audio (about 13 s
for 10 minutes of 720p on two cores); a summary asked again (another budget, another export) reads its
per-clip scores back instead, keyed by the file's content, the CLIP model's fingerprint, the transcript,
the title, extra per-clip scores (a learned head's) and the signals. CLIP frame embeddings have their own
cache (`highlights.embedding_cache`).
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from grounding_agent.highlights.embedding_cache import EmbeddingCache, cache_key, model_fingerprint
from grounding_agent.highlights.result import HighlightResult
from grounding_agent.highlights.windows import MIN_SPAN, SIGNALS, HighlightWeights, generic_highlights
from grounding_agent.types import Prediction
from grounding_agent.utils.cache import cache_folder, file_fingerprint

if TYPE_CHECKING:
    from grounding_agent.highlights.clip import ClipSaliency
    from grounding_agent.media.transcript import Transcript

# Bump when a signal's computation changes (the key holds the signals' names, weights and spans, not code).
CACHE_VERSION = 1


def highlight_result(
    path: str | Path,
    *,
    saliency: ClipSaliency | None = None,
    transcript: Transcript | None = None,
    title: str | None = None,
    extra_clip_scores: Mapping[str, np.ndarray] | None = None,
    cache: bool = True,
) -> HighlightResult:
    """Generic highlights of the video at `path` (see the module docstring). A result read back from the
    cache has its per-clip scores, weights and absent signals (what `HighlightResult.evidence` reads), not
    its windows, raw curves or describers."""
    extra = {k: np.asarray(v, dtype=np.float64) for k, v in (extra_clip_scores or {}).items()}
    store = EmbeddingCache(cache_folder("summaries")) if cache else None
    key = cache_key(
        kind="highlight-scores", v=CACHE_VERSION, video=file_fingerprint(path), signals=list(SIGNALS),
        weights=repr(HighlightWeights()), spans=MIN_SPAN,
        clip=None if saliency is None else [model_fingerprint(saliency.model, saliency.model_id), saliency.backend],
        transcript=_digest(transcript.to_dict()) if transcript is not None else None, title=title,
        extra={k: _digest(v.tolist()) for k, v in sorted(extra.items())},
    )  # fmt: skip
    if store is not None and (hit := store.load(key)) is not None:
        return _unpack(hit, Path(path))
    result = generic_highlights(
        path, saliency=saliency, transcript=transcript, title=title, extra_clip_scores=extra or None
    )
    if store is not None:
        store.save(key, _pack(result))
    return result


def _digest(data: object) -> str:
    return hashlib.sha256(json.dumps(data, sort_keys=True, default=str).encode()).hexdigest()[:16]


def _pack(result: HighlightResult) -> dict[str, np.ndarray]:
    arrays = {f"clip.{name}": np.asarray(v, dtype=np.float64) for name, v in result.clip_scores.items()}
    arrays["weight_names"] = np.asarray(list(result.weights), dtype=str)
    arrays["weight_values"] = np.asarray(list(result.weights.values()), dtype=np.float64)
    arrays["absent_names"] = np.asarray(list(result.absent), dtype=str)
    arrays["absent_reasons"] = np.asarray(list(result.absent.values()), dtype=str)
    arrays["duration_s"] = np.asarray(result.duration_s)
    return arrays


def _unpack(arrays: Mapping[str, np.ndarray], path: Path) -> HighlightResult:
    clips = {k.removeprefix("clip."): v for k, v in arrays.items() if k.startswith("clip.")}
    weights = dict(zip(arrays["weight_names"].tolist(), arrays["weight_values"].tolist(), strict=True))
    absent = dict(zip(arrays["absent_names"].tolist(), arrays["absent_reasons"].tolist(), strict=True))
    prediction = Prediction(0, path.stem, "", [])
    return HighlightResult(prediction, [], clips, {}, weights, absent, float(arrays["duration_s"]))
