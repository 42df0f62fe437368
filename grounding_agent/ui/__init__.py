"""The Gradio web UI (`app`): chat over a `Session`, moment chips, the timeline and the edit tab.

Owns the page, its handlers (`App`), which files it serves (media root and its output folder) and the
browser sessions it keeps (a `utils.cache.BoundedCache`, limits from `defaults.UI`; a dropped one's
outputs and upload are deleted), and how it is served (`server`: uvicorn, a Host check, a file route that
serves regular files only).
May import: every library package; only `cli` imports it.
"""
