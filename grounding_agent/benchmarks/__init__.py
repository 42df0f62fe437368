"""Benchmarks as the community scores them: dataset readers (Charades-STA, QVHighlights; `datasets`) and
the metrics of their evaluation code (R1@IoU, mIoU, mAP, HIT@1; `metrics`).

May import: the core modules and `utils`. The `eval/` recipe builds runs on top of this package.
"""
