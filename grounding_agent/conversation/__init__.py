"""Talking about a video, one module per job:

- `session`: `Session` (open a video once, then `ground` and `ask` often); `oneshot`: the one-call `ground`.
- `moments`: small rules a turn applies to moments (query checks, widening, dedupe keys).
- `answers`: what a session hands back, `Answer` and `Turn`, and their JSON helpers
  (`schemas/answer.schema.json`).
- `replies`: the replies built without the describer: follow-ups ("what happens next?" grounds the next
  event), "not said" / "not shown", quotes of what is said.
- `followups`: reading a chat message (a new event, "after that", "again", ...) and the window it allows.
- `describe`: who writes the text answers (`describer_for(grounder)`: the grounder's own VLM, or a template).
- `chat_agent`: the LangChain chat agent over the agent's tools.
- `summary_reply`: "make a 30-second summary" in chat and `Session.summarize` (a keyshot `EditPlan`).
- `live`: `LiveSession` (`Session.live(watcher)`): questions about a live stream answered from what the watch kept.

May import: every library package below it (`agent`, `grounders`, `highlights`, `media`, `edit`, `live`, `utils`)
and the core modules; never `http`, `ui` or `cli`, which sit on top of it.
"""
