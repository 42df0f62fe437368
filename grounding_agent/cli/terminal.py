"""Text from models, transcripts and OCR made safe to print on a terminal: the one sanitizer.

    print(clean(answer.text))        # "\x1b[31mred\x1b]0;title\x07 \u202e" -> "red "

A model (or a video's burnt-in text, or a speaker's words as Whisper spelt them) can hold escape sequences
that recolour the terminal, retitle the window, move the cursor or hide what follows, and bidirectional
overrides that make a line read differently from what it holds. `clean` drops ANSI/VT escape sequences
(CSI, OSC, DCS and the short two-byte ones), the C0 and C1 control characters and the bidi controls; it
keeps newlines (and tabs) where structure needs them, unless `newlines=False` folds them into spaces.
"""

from __future__ import annotations

import io
import re
from typing import TextIO

# ESC [ ... final byte (CSI); ESC ] / P / X / ^ / _ ... BEL or ESC \ (OSC, DCS, SOS, PM, APC); ESC + one
# byte; and their 8-bit forms (0x9b CSI, 0x9d OSC, ...).
_ESCAPES = re.compile(
    r"(?:\x1b\[|\x9b)[0-?]*[ -/]*[@-~]?"
    r"|(?:\x1b[\]PX^_]|[\x90\x98\x9d\x9e\x9f])[^\x07\x1b\x9c]*(?:\x07|\x1b\\|\x9c)?"
    r"|\x1b[ -~]?"
)
# C0 controls but tab and newline, DEL, C1 controls, bidi embeddings / overrides / isolates and marks.
_CONTROLS = re.compile("[\x00-\x08\x0b-\x1f\x7f-\x9f\u061c\u200e\u200f\u202a-\u202e\u2066-\u2069]")


def clean(text: object, *, newlines: bool = True) -> str:
    """`text` (str() of it) without escape sequences, control characters or bidi controls."""
    out = _CONTROLS.sub("", _ESCAPES.sub("", str(text).replace("\r\n", "\n")))
    return out if newlines else " ".join(out.split("\n"))


class CleanWriter(io.TextIOBase):
    """A text stream that writes everything through `clean` (the chat REPL's stdout)."""

    def __init__(self, stream: TextIO):
        self.stream = stream

    def write(self, text: str) -> int:
        self.stream.write(clean(text))
        return len(text)

    def flush(self) -> None:
        self.stream.flush()

    def isatty(self) -> bool:
        return self.stream.isatty()
