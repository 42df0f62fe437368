"""Talking about a video: `Session` (open once, ground and ask often), reading follow-up messages
(`followups`), text answers from the grounder's VLM (`describe`) and the LangChain chat agent
(`chat_agent`).

May import: every library package below it (`agent`, `grounders`, `highlights`, `media`, `edit`, `utils`)
and the core modules; never `http`, `ui` or `cli`, which sit on top of it.
"""
