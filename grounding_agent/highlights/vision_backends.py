"""Runtimes for the CLIP vision tower (`BACKENDS`): torch fp32 (the reference), ONNX fp32, ONNX int8.

int8 checks itself against fp32 on its first batch and stays on fp32 if any cosine is below MIN_COSINE;
an ONNX export or session that fails falls back to torch. The graphs come from `onnx_export`.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

from grounding_agent.highlights.onnx_export import VisionEncoder, features, vision_sessions

log = logging.getLogger(__name__)

# A faster backend must give every frame an embedding this close (cosine) to fp32 torch's.
MIN_COSINE = 0.99


def unit(x: np.ndarray) -> np.ndarray:
    """Rows scaled to unit L2 norm (float32)."""
    x = np.asarray(x, dtype=np.float32)
    return x / np.maximum(np.linalg.norm(x, axis=-1, keepdims=True), 1e-12)


def _torch_encoder(model: Any, work_dir: Path) -> VisionEncoder:
    import torch

    def encode(pixel_values: np.ndarray) -> np.ndarray:
        with torch.inference_mode():
            return (
                features(model.get_image_features(pixel_values=torch.from_numpy(pixel_values)))
                .float()
                .numpy()
            )

    return encode


def _guarded(fast: VisionEncoder, fp32: VisionEncoder) -> VisionEncoder:
    """`fast`, unless its first batch drifts from fp32 (cosine < MIN_COSINE): then fp32 for good."""
    chosen: list[VisionEncoder] = []  # empty until the first batch has been checked

    def encode(pixel_values: np.ndarray) -> np.ndarray:
        if chosen:
            return chosen[0](pixel_values)
        out, ref = fast(pixel_values), fp32(pixel_values)
        cos = float((unit(out) * unit(ref)).sum(axis=1).min())
        if cos < MIN_COSINE:
            log.warning(
                "int8 vision tower drifts from fp32 (cosine %.4f < %.2f); using fp32 ONNX", cos, MIN_COSINE
            )
        chosen.append(fast if cos >= MIN_COSINE else fp32)
        return out if cos >= MIN_COSINE else ref

    return encode


def _onnx_encoder(model: Any, work_dir: Path, int8: bool = False) -> VisionEncoder:
    """ONNX Runtime on the exported vision tower; falls back to torch if the export fails.

    int8: dynamic int8 weights. Its first batch is also run through the fp32 graph; if any frame's
    embedding has cosine < MIN_COSINE to fp32 (a model whose activations do not quantise well), it
    logs a warning and stays on fp32 for good, so the fast path never silently changes the answer.
    """
    import torch

    try:
        fp32, fast = vision_sessions(model, work_dir, int8)
    except (RuntimeError, OSError, ValueError, torch.onnx.errors.OnnxExporterError) as exc:
        log.warning("ONNX export/session failed for %s (%s); using the torch backend", work_dir.name, exc)
        return _torch_encoder(model, work_dir)
    return fp32 if fast is None else _guarded(fast, fp32)


# name -> builder(model, work_dir) -> encoder. work_dir holds exported files for this model.
BACKENDS: dict[str, Callable[[Any, Path], VisionEncoder]] = {
    "torch": _torch_encoder,
    "onnx": _onnx_encoder,
    "onnx-int8": lambda model, work_dir: _onnx_encoder(model, work_dir, int8=True),
}
