"""Which queries are about speech: the words to search a transcript for ("he says 'let's go'" -> "let's go"),
and whether a chat message asks what is said. Regular expressions only; no model.
"""

from __future__ import annotations

import re

__all__ = ["asks_what_is_said", "speech_query"]

# "double" or 'single' quotes; an apostrophe inside a word ("let's") does not end a single quote.
_QUOTE = re.compile(r"[\"“”]([^\"“”]+)[\"“”]|(?<!\w)['‘]((?:[^'‘’]|(?<=\w)['’](?=\w))+)['’](?!\w)")
_SPEECH_VERB = (
    r"(?:says?|said|saying|mentions?|mentioned|mentioning|asks?|asked|asking|talks?\s+about|talked\s+about"
    r"|talking\s+about|speaks?\s+about|spoke\s+about|speaking\s+about|tells?|told|telling|shouts?|shouted"
    r"|shouting|yells?|yelled|yelling|whispers?|whispered|announces?|announced|utters?|uttered"
    r"|pronounces?|pronounced|discuss(?:es|ed|ing)?|brings?\s+up|brought\s+up|refers?\s+to|referred\s+to)"
)
_VERB_TOPIC = re.compile(rf"\b{_SPEECH_VERB}\b\s*(?:that\s+|the\s+words?\s+|about\s+)?(.+)$", re.IGNORECASE)
_SAID = re.compile(rf"\b(?:{_SPEECH_VERB}|spoken|heard|quoted)\b", re.IGNORECASE)


def speech_query(text: str) -> str | None:
    """The words to search the transcript for if `text` is about what is said, else None.

    "he says 'let's go'" -> "let's go"; "when is \"blue\" said" -> "blue"; "when does she mention the
    price" -> "the price"; "the man runs" -> None. A quote alone counts only beside a speech verb or
    "said"/"mentioned" ("the sign reads 'exit'" is not speech).
    """
    quote = _QUOTE.search(text)
    verb = _VERB_TOPIC.search(text)
    if quote and (_SAID.search(text) or _QUOTE.fullmatch(text.strip(" .?!"))):
        return (quote.group(1) or quote.group(2)).strip()
    if verb:
        topic = re.sub(r"[?.!]+$", "", verb.group(1)).strip(" \"'“”‘’")
        return topic or None
    return None


_WHAT_IS_SAID = re.compile(
    r"\bwhat\b.{0,40}?\b(?:says?|said|saying|tells?|told|asks?|asked|mentions?|mentioned|shouts?|shouted"
    r"|whispers?|whispered|announces?|announced)\b|\bwhat\s+(?:is|was|gets)\s+(?:said|spoken)\b|\bwho\s+says\b",
    re.IGNORECASE,
)


def asks_what_is_said(message: str) -> bool:
    """Whether a chat message asks for words spoken ("what does she say after ...", "what is said ...")."""
    return bool(_WHAT_IS_SAID.search(message))
