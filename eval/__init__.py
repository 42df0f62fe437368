"""Evaluation recipes (runner, report). They import the library; the library never imports them."""
