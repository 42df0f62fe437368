"""Evaluation recipes: `runner` (eval run; steps in options, videos, settings, workers, loop, files, scoring),
`report` and `analyze`. They import the library; the library never imports them."""
