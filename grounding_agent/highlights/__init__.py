"""Highlights: what in a video stands out, as curves over time and as ranked windows.

Modules, bottom up: `curves` (model-free per-frame signals: motion, scene novelty), `embedding_cache`
(CLIP embeddings on disk, keyed by content), `onnx_export` (the vision tower as ONNX fp32/int8),
`vision_backends` (torch / ONNX / ONNX-int8 runtimes with the fp32 guard), `clip` (`ClipSaliency`:
text-frame similarity curves), `result` (`HighlightResult`), `plots` (the highlights plot and the
grounding timeline), `windows` (per-clip saliency and top-k windows, query-based or generic).

May import: the core modules (types, errors, defaults, io), `utils` and `media`; never `agent`,
`grounders`, `conversation`, `cli`, `http` or `ui`. Inside, a module imports only those listed before it.
"""
