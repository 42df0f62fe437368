"""Highlights: what in a video stands out, as curves over time and as ranked windows.

Modules, bottom up: `curves` (model-free per-frame signals: motion, scene novelty), `prosody` (speech
arousal: loudness, YIN pitch, speaking rate; the applause cue), `emotion` (a speech-emotion model's arousal
curve), `embedding_cache`
(CLIP embeddings on disk, keyed by content), `onnx_export` (the vision tower as ONNX fp32/int8),
`vision_backends` (torch / ONNX / ONNX-int8 runtimes with the fp32 guard), `clip` (`ClipSaliency`:
text-frame similarity curves), `signals` (every generic signal's curve for one video, and why others are
absent), `result` (`HighlightResult` and each window's `evidence`), `plots` (the highlights plot and the
grounding timeline), `windows` (per-clip saliency and top-k windows, query-based or generic),
`heads` (learned-head registry `HEADS`, `load_head`/`save_head`, per-clip CLIP features), `personalize`
(`--like` few-shot preference scores), `head_rank` (Less is More and engagement ranking heads),
`head_vcl` (VCL: learned prompts in frozen CLIP + moment MLP), `head_tao` (TaoHighlight: title co-attention).

May import: the core modules (types, errors, defaults, io), `utils` and `media`; never `agent`,
`grounders`, `conversation`, `cli`, `http` or `ui`. Inside, a module imports only those listed before it.
"""
