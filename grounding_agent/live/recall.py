"""What a watch has seen so far, for questions about a live source ("what just happened?", "when did she
mention the price?"), answered from what it kept: the words transcribed (the last `keep_s`), the on-screen
texts read at each change, and the recent events. No model is called: it reads what the watch already
paid for.

    recall = Recall(watcher)
    recall.just_happened(30.0)             # -> "Said: ... On screen: ... Events: ..."
    recall.when_said("the price")          # -> [SpeechMatch(start_s, end_s, score, text, ...)]
"""

from __future__ import annotations

from grounding_agent.live.watcher import Watcher
from grounding_agent.media.speech_query import speech_query
from grounding_agent.media.transcript import SpeechMatch, search_words

__all__ = ["Recall"]

JUST_NOW_S = 30.0
MIN_SCORE = 0.6


class Recall:
    def __init__(self, watcher: Watcher):
        self.watcher = watcher

    @property
    def now_s(self) -> float:
        source = self.watcher.source
        return source.last_s if source is not None and source.last_s is not None else 0.0

    def when_said(self, question: str, *, top_k: int = 3) -> list[SpeechMatch]:
        """Where the words a question asks about were said ("when did she mention the price?"), best first."""
        if self.watcher.speech is None:
            return []
        phrase = speech_query(question) or question
        return search_words(list(self.watcher.speech.words), phrase, top_k=top_k, min_score=MIN_SCORE)

    def just_happened(self, last_s: float = JUST_NOW_S) -> str:
        """What was said, shown and reported in the last `last_s` seconds of stream, as plain text."""
        since = self.now_s - last_s
        parts = []
        if self.watcher.speech is not None:
            said = " ".join(w.text for w in list(self.watcher.speech.words) if w.end_s >= since)
            parts.append(f"Said: {said}" if said else "Nothing was said.")
        shown = [text for t, text in list(self.watcher.screen.texts) if t >= since and text]
        if shown:
            parts.append("On screen: " + " | ".join(dict.fromkeys(shown)))
        events = [
            e for e in list(self.watcher.recent) if e.kind in ("alert", "highlight") and e.end_s >= since
        ]
        if events:
            parts.append(
                "Events: " + "; ".join(f"{e.kind} {e.text or e.query} at {e.start_s:.1f} s" for e in events)
            )
        return " ".join(parts) or f"Nothing noted in the last {last_s:g} s."
