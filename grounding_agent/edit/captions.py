"""Captions for an edit: the transcript's words on the *edited* timeline, burnt in and as a sidecar.

A word is kept when its middle lies in a kept segment; its times move with that segment (and are clamped to
it), so a word the edit cut never shows and the captions of a later segment start where it now starts.
Words are grouped into short lines (`SHORT_FORM.caption_words`; a pause, a sentence end or a cut starts a
new line). The burnt-in captions are an ASS file written by pysubs2 and drawn by ffmpeg's `ass` filter
(libass): the line is shown while it is spoken, the word being said highlighted; bold sans with an outline,
inside safe margins. The sidecar (.srt / .vtt) has one cue per line.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from grounding_agent.defaults import SHORT_FORM
from grounding_agent.edit.plan import EditPlan
from grounding_agent.errors import EditError
from grounding_agent.io import atomic_path

SIDECAR_SUFFIXES = (".srt", ".vtt")
_HIGHLIGHT = "&H0000D7FF&"  # ASS colours are &HBBGGRR: a warm yellow for the word being said


@dataclass(frozen=True)
class TimedWord:
    """A word on the edited timeline (seconds of the output)."""

    text: str
    start_s: float
    end_s: float
    segment: int  # the kept segment it is in (a new segment starts a new line)
    sentence: int  # the transcript segment it came from


def edited_words(plan: EditPlan, transcript) -> list[TimedWord]:
    """The transcript's words that the edit keeps, with times on the edited timeline, in order."""
    from grounding_agent.edit.sources import as_transcript

    starts = plan.output_starts_s()
    kept = plan.kept
    out = []
    for k, sentence in enumerate(as_transcript(transcript).segments):
        for word in sentence.words:
            text = word.text.strip()
            middle = (word.start_s + word.end_s) / 2
            i = next((i for i, s in enumerate(kept) if s.start_s <= middle < s.end_s), None)
            if not text or i is None:
                continue
            seg, shift = kept[i], starts[i] - kept[i].start_s
            start = max(word.start_s, seg.start_s) + shift
            end = min(word.end_s, seg.end_s) + shift
            out.append(TimedWord(text, start, max(end, start), i, k))
    return sorted(out, key=lambda w: w.start_s)


def caption_lines(
    words: Sequence[TimedWord],
    *,
    max_words: int = SHORT_FORM.caption_words,
    pause_s: float = SHORT_FORM.caption_pause_s,
) -> list[list[TimedWord]]:
    """Words grouped into lines of at most `max_words`; a pause, a new sentence or a cut starts a new one."""
    lines: list[list[TimedWord]] = []
    for word in words:
        last = lines[-1][-1] if lines else None
        if (
            last is None
            or len(lines[-1]) >= max_words
            or word.segment != last.segment
            or word.sentence != last.sentence
            or word.start_s - last.end_s >= pause_s
            or last.text.rstrip().endswith((".", "?", "!"))
        ):
            lines.append([word])
        else:
            lines[-1].append(word)
    return lines


def _line_spans(lines: list[list[TimedWord]]) -> list[tuple[float, float]]:
    """When each line is on screen: from its first word to its last word's end (never into the next)."""
    spans = []
    for i, line in enumerate(lines):
        end = line[-1].end_s
        if i + 1 < len(lines):
            end = min(end, lines[i + 1][0].start_s)
        spans.append((line[0].start_s, max(end, line[0].start_s)))
    return spans


def subtitles(plan: EditPlan, transcript, *, size: tuple[int, int] | None = None, karaoke: bool = True):
    """A `pysubs2.SSAFile` of the edit's captions, styled for a frame of `size` (default: the video's).

    karaoke: one event per word, the line shown with that word highlighted (burnt in); else one per line.
    """
    import pysubs2

    width, height = size or (plan.video.width, plan.video.height)
    subs = pysubs2.SSAFile()
    subs.info.update({"PlayResX": str(width), "PlayResY": str(height), "WrapStyle": "0"})
    margin_x = round(width * SHORT_FORM.caption_margin)
    margin_y = round(height * SHORT_FORM.caption_margin)
    subs.styles["Default"] = pysubs2.SSAStyle(
        fontname=SHORT_FORM.caption_font, fontsize=max(8, round(height * SHORT_FORM.caption_size)),
        bold=True, primarycolor=pysubs2.Color(255, 255, 255), outlinecolor=pysubs2.Color(0, 0, 0),
        backcolor=pysubs2.Color(0, 0, 0, 96), outline=max(1.0, height / 180), shadow=max(0.5, height / 360),
        alignment=pysubs2.Alignment.BOTTOM_CENTER, marginl=margin_x, marginr=margin_x, marginv=margin_y,
    )  # fmt: skip
    lines = caption_lines(edited_words(plan, transcript))
    for line, (start, end) in zip(lines, _line_spans(lines), strict=True):
        if not karaoke:
            subs.append(_event(start, end, " ".join(w.text for w in line)))
            continue
        for j, word in enumerate(line):  # the line stays up; the highlight moves from word to word
            w_start = start if j == 0 else word.start_s
            w_end = end if j + 1 == len(line) else line[j + 1].start_s
            text = " ".join(
                f"{{\\c{_HIGHLIGHT}}}{_ass_text(w.text)}{{\\r}}" if w is word else _ass_text(w.text)
                for w in line
            )
            subs.append(_event(w_start, max(w_end, w_start), text))
    return subs


def _event(start_s: float, end_s: float, text: str):
    import pysubs2

    return pysubs2.SSAEvent(start=round(start_s * 1000), end=round(end_s * 1000), text=text)


def _ass_text(text: str) -> str:
    """Literal text for an ASS event: braces and backslashes would start override tags."""
    return text.replace("\\", "\\\\").replace("{", "(").replace("}", ")")


def write_ass(plan: EditPlan, transcript, path: str | Path, *, size: tuple[int, int]) -> Path:
    """The burnt-in captions as an ASS file (for ffmpeg's `ass` filter)."""
    subtitles(plan, transcript, size=size).save(str(path), format_="ass")
    return Path(path)


def write_sidecar(plan: EditPlan, transcript, path: str | Path, *, kind: str | None = None) -> Path:
    """One cue per caption line, on the edited timeline, as .srt or .vtt (`kind`, default: by the suffix),
    atomically."""
    suffix = (kind or Path(path).suffix).lower()
    if suffix not in SIDECAR_SUFFIXES:
        raise EditError(f"{path}: captions are written as .srt or .vtt, not {suffix or 'no suffix'!r}")
    subs = subtitles(plan, transcript, karaoke=False)
    with atomic_path(path) as tmp:
        Path(tmp).write_text(subs.to_string(suffix[1:]), encoding="utf-8")
    return Path(path)


def filter_path(path: str | Path) -> str:
    """`path` as the value of a filter option inside a filter graph: escaped for the option (`\\ ' :`) and
    then for the graph (`\\ ' [ ] , ;`), so any temp folder name is read as one path."""
    text = str(path)
    for ch in ("\\", "'", ":"):
        text = text.replace(ch, "\\" + ch)
    for ch in ("\\", "'", "[", "]", ",", ";"):
        text = text.replace(ch, "\\" + ch)
    return text
