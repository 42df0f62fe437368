"""The CLIP vision tower as ONNX: export (fp32), dynamic int8 quantisation, and ONNX Runtime sessions.

Exported graphs live in the embedding cache folder, one folder per model (`vision.onnx`,
`vision_int8.onnx`), written atomically. A graph ONNX Runtime cannot load (a damaged file: a disk error or
another tool's cut-off write) is rebuilt once instead of failing every later run.
"""

from __future__ import annotations

import logging
import os
import warnings
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

from grounding_agent.io import atomic_path

log = logging.getLogger(__name__)

# A vision encoder maps pixel_values (B, 3, H, W) float32 to image embeddings (B, D) float32.
VisionEncoder = Callable[[np.ndarray], np.ndarray]
FP32_FILE, INT8_FILE = "vision.onnx", "vision_int8.onnx"


def features(out: Any) -> Any:
    """transformers 5 returns a ModelOutput whose pooler_output is the projected embedding."""
    return out if hasattr(out, "shape") else out.pooler_output


def export_vision_onnx(model: Any, path: Path, image_size: int) -> Path:
    """Export the vision tower + projection to ONNX (dynamic batch), atomically."""
    import torch

    class VisionTower(torch.nn.Module):
        def __init__(self, clip: Any):
            super().__init__()
            self.clip = clip

        def forward(self, pixel_values: torch.Tensor) -> torch.Tensor:
            return features(self.clip.get_image_features(pixel_values=pixel_values))

    example = torch.zeros(2, 3, image_size, image_size)
    # The TorchScript exporter (dynamo=False) needs no onnxscript and handles CLIP/SigLIP fine; its
    # deprecation and tracer warnings (shape checks traced as constants: the input size is fixed) are noise.
    with warnings.catch_warnings(), atomic_path(path) as tmp:
        warnings.simplefilter("ignore", DeprecationWarning)
        warnings.simplefilter("ignore", torch.jit.TracerWarning)
        torch.onnx.export(
            VisionTower(model).eval(),
            (example,),
            str(tmp),
            dynamo=False,
            input_names=["pixel_values"],
            output_names=["image_embeds"],
            dynamic_axes={"pixel_values": {0: "batch"}, "image_embeds": {0: "batch"}},
            opset_version=17,
        )
    return path


def quantize_int8(fp32_path: Path, path: Path) -> Path:
    """Dynamic int8 weights of the fp32 graph, atomically."""
    from onnxruntime.quantization import QuantType, quantize_dynamic

    def not_preprocessing_advice(record: logging.LogRecord) -> bool:
        # ORT logs a generic "consider pre-processing" tip on the root logger; it is not actionable here.
        return "pre-processing before quantization" not in record.getMessage()

    root = logging.getLogger()
    root.addFilter(not_preprocessing_advice)
    try:
        with atomic_path(path) as tmp:
            quantize_dynamic(str(fp32_path), str(tmp), weight_type=QuantType.QInt8)
    finally:
        root.removeFilter(not_preprocessing_advice)
    return path


def ort_session(path: Path) -> VisionEncoder:
    """An ONNX Runtime CPU session on `path`, as a vision encoder."""
    import onnxruntime as ort

    options = ort.SessionOptions()
    options.intra_op_num_threads = int(os.environ.get("GROUNDING_AGENT_THREADS", os.cpu_count() or 1))
    session = ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])

    def run(pixel_values: np.ndarray) -> np.ndarray:
        return session.run(None, {"pixel_values": np.ascontiguousarray(pixel_values, dtype=np.float32)})[0]

    return run


def _load_or_build(path: Path, build: Callable[[Path], Path]) -> VisionEncoder:
    """A session on `path`, built first when missing; a file ONNX Runtime cannot load is rebuilt once."""
    from onnxruntime.capi.onnxruntime_pybind11_state import Fail, InvalidGraph, InvalidProtobuf

    if path.is_file():
        try:
            return ort_session(path)
        except (Fail, InvalidGraph, InvalidProtobuf) as exc:
            log.warning("rebuilding damaged ONNX file %s (%s)", path, str(exc).splitlines()[0])
            path.unlink(missing_ok=True)
    return ort_session(build(path))


def vision_sessions(model: Any, work_dir: Path, int8: bool) -> tuple[VisionEncoder, VisionEncoder | None]:
    """(fp32 session, int8 session or None), exporting and quantising into `work_dir` when needed."""
    fp32_path = work_dir / FP32_FILE
    image_size = int(model.config.vision_config.image_size)
    fp32 = _load_or_build(fp32_path, lambda p: export_vision_onnx(model, p, image_size))
    if not int8:
        return fp32, None
    return fp32, _load_or_build(work_dir / INT8_FILE, lambda p: quantize_int8(fp32_path, p))
