"""Benchmarks as the community scores them: dataset readers and the metrics of their evaluation code.

Modules, bottom up: `annotations` (`Annotation`, `GTPolicy`, `Dataset`), `reading` (file reading, format
sniffing and the checks every reader applies), one reader per format (`charades`, `qvhighlights`,
`captions` for ActivityNet Captions and TACoS), `predictions` (submission-shaped jsonl), `datasets`
(the registry `DATASETS` / `load_dataset`, re-exporting the above) and `metrics` (R1@IoU, mIoU, mAP,
HIT@1; F1, Kendall, Spearman).

May import: the core modules (types, errors, defaults, io) and `utils`; nothing else of the library.
The `eval/` recipe builds runs on top of this package.
"""
