"""Input limits (what one request may ask for) and the editing/speech/short-form/OCR/phrase-match knobs."""

from __future__ import annotations

from dataclasses import dataclass

__all__: list[str] = []


# --- Input limits: what one request may ask for, checked before any work starts (CLI, Python, chat). ---


@dataclass(frozen=True)
class InputLimits:
    """The most one request may ask for; beyond it the answer is a one-line `ConfigError`, not a runaway.

    Attributes:
        max_fps: frames sampled per second (no video is shot faster; a plan past the video's own rate
            only repeats frames).
        max_frames: frames one sampling may take (a plan is 8 bytes a frame, decoded pixels far more).
        max_sample_bytes: decoded pixels one `sample_frames` call may hold (frames x width x height x 3).
        max_top_k: moments one query may ask for.
        max_query_chars: characters of a query, chat message or edit instruction.
        max_seconds: a time read from an instruction (a week; beyond that it is a typo or an attack).
        max_line_chars: characters of one `chat --jsonl` input line.
        max_json_depth: nesting of one `chat --jsonl` line (a message needs 1).
    """

    max_fps: float = 240.0
    max_frames: int = 100_000
    max_sample_bytes: int = 8 << 30
    max_top_k: int = 1000
    max_query_chars: int = 4000
    max_seconds: float = 7 * 24 * 3600.0
    max_line_chars: int = 1 << 20
    max_json_depth: int = 32

    def check_count(self, value: object, name: str, most: int | None = None) -> int:
        """`value` as a whole number in 1..most (default `max_top_k`), else a one-line `ConfigError`."""
        from grounding_agent.errors import ConfigError

        most = self.max_top_k if most is None else most
        if isinstance(value, bool) or not isinstance(value, int) or not 1 <= value <= most:
            shown = value if isinstance(value, (int, float)) and abs(value) < 1e15 else "a huge or non-number"
            raise ConfigError(f"{name} must be a whole number from 1 to {most}, got {shown!r}")
        return value

    def check_fps(self, value: object, name: str = "fps") -> float:
        """`value` as frames per second in (0, max_fps], else a one-line `ConfigError`."""
        from grounding_agent.errors import ConfigError

        ok = isinstance(value, (int, float)) and not isinstance(value, bool) and 0 < value <= self.max_fps
        if not ok:  # NaN fails the comparison too
            shown = value if isinstance(value, (int, float)) and abs(value) < 1e15 else "a huge or non-number"
            raise ConfigError(
                f"{name} must be > 0 and at most {self.max_fps:g} frames per second, got {shown!r}"
            )
        return float(value)

    def check_text(self, text: str, name: str = "the query") -> str:
        """`text` if at most `max_query_chars` long, else a one-line `ConfigError` (the text is not echoed)."""
        from grounding_agent.errors import ConfigError

        if isinstance(text, str) and len(text) > self.max_query_chars:
            raise ConfigError(
                f"{name} is {len(text):,} characters; the most is {self.max_query_chars:,}: say it in fewer words"
            )
        return text


LIMITS = InputLimits()
__all__ += ["LIMITS", "InputLimits"]


@dataclass(frozen=True)
class EditLimits:
    """How much one edit instruction may ask for; beyond it a one-line `EditError` names the limit (never
    a silent truncation).

    Attributes:
        max_operations: operations read from one instruction (each may ground a moment: a model call);
            `schemas/edit_plan.schema.json` says the same `maxItems`.
        max_stem_chars: characters of a video's name kept in the names of files made from it (the web UI's
            exports), so a 255-byte name plus a suffix still fits the file system.
    """

    max_operations: int = 32
    max_stem_chars: int = 100


EDIT_LIMITS = EditLimits()
__all__ += ["EDIT_LIMITS", "EditLimits"]


@dataclass(frozen=True)
class TranscriptLimits:
    """How far a transcript may disagree with the video it is used on.

    Attributes:
        foreign_slack_s: words ending up to this far past the video's end are clamped to it (with a note);
            further, or a recorded duration this much longer than the video's, means the transcript is of
            another video and is refused. A recorded duration this much shorter gets a note.
    """

    foreign_slack_s: float = 1.0


TRANSCRIPT_LIMITS = TranscriptLimits()
__all__ += ["TRANSCRIPT_LIMITS", "TranscriptLimits"]


@dataclass(frozen=True)
class SpeechEditDefaults:
    """Word-exact speech edits (`edit`'s --pad-ms, --min-gap-s; `plan_edit(pad_ms=, min_gap_s=)`).

    Attributes:
        pad_ms: kept audio around wanted speech: a speech keep reaches this far past its first / last word,
            a silence cut stops this short of the speech (clamped halfway to an unwanted neighbouring word).
            Above half a frame at 25 fps, so snapping a boundary to the nearest frame never clips a word.
        min_gap_s: the shortest cut a silence or word (filler) removal makes, after padding: a shorter one
            would be a click, not a pause, and is left in.
        tail_max_s: how far a word's end (or start) moves to where the audio falls after Whisper's time;
            sound still loud that far out is background, not a tail. Whisper base ended a sentence's last
            word 0.29 s before the voice did on the generated talking clips (tests/test_edit_speech_exact.py).
        energy_hop_s: loudness window of that check and of silence detection.
        floor_margin_db: a tail has fallen when it is this close to the recording's floor (its quietest
            5 %), or below the silence threshold if that is lower: tails fade at -45 to -55 dBFS.
    """

    pad_ms: float = 60.0
    min_gap_s: float = 0.1
    tail_max_s: float = 0.5
    energy_hop_s: float = 0.01
    floor_margin_db: float = 6.0


SPEECH_EDIT = SpeechEditDefaults()
__all__ += ["SPEECH_EDIT", "SpeechEditDefaults"]


@dataclass(frozen=True)
class ShortFormDefaults:
    """Short-form outputs of an edit: burnt-in captions, face-following reframe, teasers.

    Attributes:
        caption_words: most words on one caption line (short lines read at a glance on a phone).
        caption_pause_s: a pause this long between two words starts a new line.
        caption_font: the caption font (fontconfig name; libass falls back to a sans font without it).
        caption_size: font height as a share of the output's height.
        caption_margin: safe margin, as a share of the width (sides) and height (bottom), >= 5 %.
        reframe_fps: frames per second the face detector looks at.
        reframe_max_pixels: those frames are shrunk to at most this many pixels first.
        reframe_median: samples in the moving median that steadies the crop centre.
        reframe_pan: fastest pan of the crop, in crop widths per second (unless a face would leave it).
        reframe_hold_s: a face seen this close in time also holds the crop where no face is found (the
            detector misses faces on some frames).
        teaser_slack_s: a teaser's length may miss the asked length by at most this (sentences are whole).
        teaser_pad_s: kept before a sentence's first word and after its last.
    """

    caption_words: int = 4
    caption_pause_s: float = 0.6
    caption_font: str = "DejaVu Sans"
    caption_size: float = 0.06
    caption_margin: float = 0.07
    reframe_fps: float = 4.0
    reframe_max_pixels: int = 640 * 360
    reframe_median: int = 5
    reframe_pan: float = 0.6
    reframe_hold_s: float = 1.0
    teaser_slack_s: float = 0.6
    teaser_pad_s: float = 0.08


SHORT_FORM = ShortFormDefaults()
ASPECTS = ("9:16", "1:1", "4:5", "16:9")  # --aspect choices: width:height of the output
__all__ += ["ASPECTS", "SHORT_FORM", "ShortFormDefaults"]


@dataclass(frozen=True)
class OcrSpanDefaults:
    """How precisely on-screen text spans are timed (`media.ocr.ScreenReader`).

    Attributes:
        refine_fps: after the coarse pass at `MEDIA.ocr_fps`, the frames between two samples that read
            differently are sampled at this rate (at most the video's own) and bisected, so a text's start
            and end are found within one 1/refine_fps interval; 0 turns the refinement off.
    """

    refine_fps: float = 30.0


OCR_SPANS = OcrSpanDefaults()
__all__ += ["OCR_SPANS", "OcrSpanDefaults"]


@dataclass(frozen=True)
class PhraseMatchDefaults:
    """Finding a quote in a transcript for an edit (`edit.sources.find_phrases`, through the one fuzzy
    matcher `media.text_match` that `ground`, `chat` and `transcribe --search` use).

    Attributes:
        edit_min_score: the weakest match an edit cuts or keeps. Number, currency, spelling, punctuation and
            contraction variants score 1.0 once normalised and a misheard letter still passes; a loose
            paraphrase (which `ground` still offers as its best guess) does not: an edit removes material.
    """

    edit_min_score: float = 0.8


PHRASE_MATCH = PhraseMatchDefaults()
__all__ += ["PHRASE_MATCH", "PhraseMatchDefaults"]
