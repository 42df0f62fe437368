"""Benchmarks as the community scores them: dataset readers and the metrics of their evaluation code.

Modules, bottom up: `annotations` (`Annotation`, `GTPolicy`, `Dataset`), `reading` (file reading, format
sniffing and the checks every reader applies), one reader per format (`charades`, `qvhighlights`,
`captions` for ActivityNet Captions and TACoS), `predictions` (submission-shaped jsonl), `datasets`
(the registry `DATASETS` / `load_dataset`, re-exporting the above) and `metrics` (R1@IoU, mIoU, mAP,
HIT@1). Video summaries (TVSum, SumMe): `summaries` (`SummaryAnnotation`, the .mat / SumMe readers),
`summary_predictions` (per-frame scores or timestamped curves, held to frames) and `summary_metrics`
(keyshot summary by `utils.knapsack`, F1, Kendall's tau-b, Spearman's rho, the human and random rows).

May import: the core modules (types, errors, defaults, io) and `utils`; nothing else of the library.
The `eval/` recipe builds runs on top of this package.
"""
