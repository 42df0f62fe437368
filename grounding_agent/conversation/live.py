"""Chat over a live watch so far (`Session.live(watcher)`): "when did she mention the price?" is answered
with the moments in stream time where the words were said, anything else ("what just happened?") with what
was said, shown and reported in the last `last_s` seconds. Answers come from what the watch already kept
(`live.recall.Recall`): no model is called, so a question never slows the watch down.

    chat = Session.live(watcher)                 # the watcher runs in another thread
    chat.ask("when did she mention the discount code?").moments   # -> [Moment(5.8, 7.4, ...)]
    chat.ask("what just happened?").text
"""

from __future__ import annotations

import threading
from collections import deque
from typing import Any

from grounding_agent.conversation.answers import Answer, Turn
from grounding_agent.defaults import LIMITS, SESSION
from grounding_agent.errors import ConfigError
from grounding_agent.live.recall import JUST_NOW_S, Recall
from grounding_agent.media.speech_query import speech_query

__all__ = ["LiveSession"]

SOURCE = "live-recall"


class LiveSession:
    """Questions about a running (or finished) `live.Watcher`, with a bounded history of turns."""

    def __init__(
        self, watcher: Any, *, last_s: float = JUST_NOW_S, top_k: int = 1, max_turns: int = SESSION.max_turns
    ):
        LIMITS.check_count(top_k, "top_k")
        if last_s <= 0 or max_turns < 1:
            raise ConfigError("last_s must be > 0 and max_turns >= 1")
        self.recall, self.last_s, self.top_k = Recall(watcher), last_s, top_k
        self.turns: deque[Turn] = deque(maxlen=max_turns)
        self._lock = threading.Lock()
        self._count = 0

    def ask(self, message: str, **_: Any) -> Answer:
        """Answer one message from the stream so far (see the module docstring)."""
        if not isinstance(message, str) or not message.strip():
            raise ConfigError("the message is empty; ask something about the stream")
        message = LIMITS.check_text(message.strip(), "the message")
        phrase = speech_query(message)
        answer = self._when_said(phrase) if phrase else self._just_happened()
        with self._lock:
            self._count += 1
            self.turns.append(Turn(message, answer, phrase or "", self._count))
        return answer

    def _when_said(self, phrase: str) -> Answer:
        matches = self.recall.when_said(phrase, top_k=self.top_k)
        now = self.recall.now_s
        if not matches:
            return Answer(f"'{phrase}' has not been said so far (stream at {now:.1f} s).", [],
                          text_source=SOURCE, absent="said")  # fmt: skip
        said = "; ".join(f"'{m.text}' at {m.start_s:.1f}-{m.end_s:.1f} s" for m in matches)
        moments = [m.to_moment() for m in matches]
        evidence = [m.to_evidence(SOURCE) for m in matches]
        return Answer(f"Said {said} (stream at {now:.1f} s).", moments, evidence, text_source=SOURCE)

    def _just_happened(self) -> Answer:
        now = self.recall.now_s
        window = (max(0.0, now - self.last_s), now)
        return Answer(self.recall.just_happened(self.last_s), [], text_source=SOURCE, window_s=window)

    def history(self) -> list[dict[str, Any]]:
        return [
            {"turn": t.index, "message": t.message, "query": t.query, "answer": t.answer.to_dict()}
            for t in self.turns
        ]
