"""The Gradio web UI (`app`): chat over a `Session`, moment chips, the timeline and the edit tab.

May import: every library package; only `cli` imports it.
"""
