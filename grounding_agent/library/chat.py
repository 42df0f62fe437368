"""A conversation over a whole library: "in which video did she mention the budget, and when?".

    chat = LibraryChat(Library("~/meetings"), session_kwargs={"grounder": "uniform"})
    chat.ask("when does she mention the budget?")   # -> {"text", "video_id", "video", "moments", "hits"}
    chat.ask("what happens after that?")             # a follow-up: that video's `Session` answers

A question that names something is searched across the library (`Library.search`); the best hit's video
becomes the conversation's video, and its `Session` (opened once, its transcript from the library) answers
the follow-ups, descriptions and summaries that come after, as `chat VIDEO` would.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from grounding_agent.conversation.followups import read_message
from grounding_agent.defaults import LIBRARY

_HANDED_ON = ("follow", "describe", "summary")  # intents the current video's Session answers


class LibraryChat:
    """Turns over a library: search first, then the chosen video's `Session` for what refers to it."""

    def __init__(
        self, library: Any, *, session_kwargs: dict[str, Any] | None = None, k: int = LIBRARY.search_k
    ):
        self.library = library
        self.session_kwargs = dict(session_kwargs or {})
        self.k = k
        self.video_id: int | None = None
        self._sessions: dict[int, Any] = {}

    def session(self, video_id: int) -> Any:
        if video_id not in self._sessions:
            self._sessions[video_id] = self.library.session(video_id, **self.session_kwargs)
        return self._sessions[video_id]

    def ask(self, message: str) -> dict[str, Any]:
        reading = read_message(message)
        if self.video_id is not None and reading.intent in _HANDED_ON:
            return self._in_video(self.video_id, message)
        hits = self.library.search(reading.event or message, k=self.k)
        if not hits:
            if self.video_id is not None:
                return self._in_video(self.video_id, message)
            return {"text": "Nothing in the library matches that.", "video_id": None, "video": None,
                    "moments": [], "hits": []}  # fmt: skip
        best = hits[0]
        self.video_id = best.video_id
        self.session(best.video_id)  # opened now, so the follow-ups find it ready
        return {
            "text": f"In {Path(best.path).name}, {best.start_s:.2f}-{best.end_s:.2f} s{_said(best.evidence)}.",
            "video_id": best.video_id,
            "video": str(best.path),
            "moments": [{"start_s": best.start_s, "end_s": best.end_s, "score": best.score}],
            "hits": [h.to_dict() for h in hits],
        }

    def _in_video(self, video_id: int, message: str) -> dict[str, Any]:
        answer = self.session(video_id).ask(message).to_dict()
        video = self.library.video(video_id)
        return {"text": answer["text"], "video_id": video_id, "video": str(video.path),
                "moments": answer["moments"], "hits": []}  # fmt: skip


def _said(evidence: Any) -> str:
    """What the best channel found, quoted: ' (said: "...")' or ' (on screen: "...")'."""
    label = {"speech": "said", "ocr": "on screen"}
    for e in evidence:
        if e.kind in label and e.text:
            return f' ({label[e.kind]}: "{" ".join(e.text.split())[:120]}")'
    return ""
