"""Leaf helpers every package may use: wall-clock deadlines (`deadline`), optional-extra checks
(`extras`), temporal IoU and NMS on spans (`temporal`), prompt templates and JSON schemas (`prompts`),
bounded in-memory caches and the on-disk cache folder with file fingerprints (`cache`).

May import: the core modules (`types`, `errors`, `defaults`, `io`) and third-party libraries only.
"""
