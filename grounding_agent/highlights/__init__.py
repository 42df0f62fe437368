"""Highlights: per-second signal curves (`curves`: motion, scene change, loudness), CLIP saliency with its
ONNX export and embedding cache (`clip`), highlight windows fused from the curves (`windows`) and the
timeline plots (`plots`).

May import: the core modules, `utils` and `media`.
"""
