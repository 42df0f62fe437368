"""A grounder that hears and reads: speech sub-queries go to the transcript, on-screen text ones to OCR,
everything else to the wrapped (visual) grounder.

    asr = Transcriber("whisper-base-folder")
    grounder = TranscriptGrounder(HFGrounder(...), asr)
    grounder.ground("talk.mp4", "when does he say 'let's go'")   # transcript search, no VLM call
    grounder.ground("talk.mp4", "the man runs")                   # the VLM

The agent grounds each planned step through its grounder, so composing speech and visual sub-events
("after he says 'let's go', the man runs") needs nothing else: the speech step's candidates come from the
transcript, the visual step's from the VLM, and the planner's relations constrain them together.
Transcripts (and screen text) are computed once per video and kept (and cached on disk by their readers).
A quote that is not said (a text not shown) is an answer too: no moment, and `Grounding.info["absent"]` is
"said" ("shown"), with a `note`, so callers say "not said" instead of returning a window.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from grounding_agent.errors import ConfigError
from grounding_agent.grounders.base import BaseGrounder, Grounder, Grounding, check_request
from grounding_agent.grounders.describe import DESCRIBE_MAX_FRAMES, DescribeRequest, Description
from grounding_agent.types import Frames, Moment, Video


def route(query: str, *, ocr: bool = False) -> tuple[str, str]:
    """("speech", words said) / ("ocr", text shown) / ("visual", query) for one (sub-)query."""
    from grounding_agent.media.speech_query import speech_query

    said = speech_query(query)
    if said:
        return "speech", said
    if ocr:
        from grounding_agent.media.ocr import ocr_query

        shown = ocr_query(query)
        if shown:
            return "ocr", shown
    return "visual", query


class TranscriptGrounder(BaseGrounder):
    """Route each query by what it asks about (see `route`).

    Args:
        inner: the visual grounder (None: speech/OCR only; a visual query is then a ConfigError).
        transcriber: a `speech.Transcriber` (or anything with `.transcribe(video) -> Transcript`).
        screen_reader: an `ocr.ScreenReader` for on-screen text queries (None: they go to `inner`).
        min_score: the weakest transcript match returned.
    """

    def __init__(
        self,
        inner: Grounder | None,
        transcriber: Any = None,
        *,
        screen_reader: Any = None,
        min_score: float = 0.35,
    ):
        if inner is None and transcriber is None:
            raise ConfigError("TranscriptGrounder needs a visual grounder, a transcriber, or both")
        self.inner = inner
        self.transcriber = transcriber
        self.screen_reader = screen_reader
        self.min_score = min_score
        self.name = f"speech+{inner.name}" if inner is not None else "speech"
        self.needs_pixels = inner is not None and inner.needs_pixels
        if inner is not None:  # frames sampled for this grounder are the visual grounder's
            self.fps, self.max_frames, self.max_pixels = inner.fps, inner.max_frames, inner.max_pixels
        self._transcripts: dict[str, Any] = {}
        self._screens: dict[str, Any] = {}

    @property
    def concurrency(self) -> int:
        """The visual grounder's in-flight cap (transcript / screen-text queries are local)."""
        return self.inner.concurrency if self.inner is not None else 1

    @concurrency.setter
    def concurrency(self, value: int) -> None:
        if self.inner is not None:
            self.inner.concurrency = value

    @property
    def text_model(self) -> str | None:
        return self.inner.text_model if self.inner is not None else None

    @property
    def served_model(self) -> str | None:
        return self.inner.served_model if self.inner is not None else None

    def describe(
        self,
        frames: Frames | None,
        request: DescribeRequest,
        moments: Sequence[Moment],
        *,
        max_tokens: int | None = None,
        max_frames: int = DESCRIBE_MAX_FRAMES,
    ) -> Description:
        """The visual grounder's text answer (templated without one)."""
        if self.inner is None:
            return super().describe(frames, request, moments)
        return self.inner.describe(frames, request, moments, max_tokens=max_tokens, max_frames=max_frames)

    def model_cards(self) -> list[dict[str, Any]]:
        return self.inner.model_cards() if self.inner is not None else []

    async def aclose(self) -> None:
        if self.inner is not None:
            await self.inner.aclose()

    def transcript(self, video: Video | str | os.PathLike) -> Any:
        """The video's transcript (transcribed on first use, then kept), or None without a transcriber."""
        if self.transcriber is None:
            return None
        key = str(Path(video.path if isinstance(video, Video) else video).resolve())
        if key not in self._transcripts:
            self._transcripts[key] = self.transcriber.transcribe(video)
        return self._transcripts[key]

    def screen_text(self, video: Video | str | os.PathLike) -> Any:
        if self.screen_reader is None:
            return None
        key = str(Path(video.path if isinstance(video, Video) else video).resolve())
        if key not in self._screens:
            self._screens[key] = self.screen_reader.read(video)
        return self._screens[key]

    def ground(
        self, video: Video | str | os.PathLike, query: str, *, top_k: int = 1, frames: Frames | None = None
    ) -> Grounding:
        kind, text = route(query, ocr=self.screen_reader is not None)
        if kind == "speech" and self.transcriber is not None:
            return self._hear(check_request(video, top_k, query), query, text, top_k)
        if kind == "ocr":
            return self._read(check_request(video, top_k, query), query, text, top_k)
        return self._visual().ground(video, query, top_k=top_k, frames=frames)

    async def aground(
        self, video: Video | str | os.PathLike, query: str, *, top_k: int = 1, frames: Frames | None = None
    ) -> Grounding:
        kind, _ = route(query, ocr=self.screen_reader is not None)
        if kind == "visual" or (kind == "speech" and self.transcriber is None):
            return await self._visual().aground(video, query, top_k=top_k, frames=frames)
        return await super().aground(video, query, top_k=top_k, frames=frames)

    def _visual(self) -> Grounder:
        if self.inner is None:
            raise ConfigError(
                "this query is about what is seen, not said: give a visual grounder (--backend, --model)"
            )
        return self.inner

    def _hear(self, video: Video, query: str, said: str, top_k: int) -> Grounding:
        transcript = self.transcript(video)
        matches = transcript.search(said, top_k=top_k, min_score=self.min_score)
        moments = [
            Moment(
                m.start_s,
                min(m.end_s, video.duration_s),
                m.score,
                {
                    "channel": "speech",
                    "said": m.text,
                    "query": said,
                    "evidence": [m.to_evidence(transcript.model).to_dict()],
                },
            )
            for m in matches
            if m.start_s < video.duration_s
        ]
        info = {
            "grounder": "transcript",
            "channel": "speech",
            "searched": said,
            "asr_model": transcript.model,
        }
        if not moments:  # looked and not found: no moment (never the whole video), and the typed reason
            info["absent"] = "said"
            info["note"] = (
                "the video has no audio track" if not transcript.has_audio else f"{said!r} is not said"
            )
        return Grounding(
            moments=moments, raw_text=[m.text for m in matches], info=info, duration_s=video.duration_s
        )

    def _read(self, video: Video, query: str, shown: str, top_k: int) -> Grounding:
        screen = self.screen_text(video)
        matches = screen.search(shown, top_k=top_k)
        moments = [
            Moment(
                m.start_s,
                min(m.end_s, video.duration_s),
                m.score,
                {
                    "channel": "ocr",
                    "on_screen": m.text,
                    "query": shown,
                    "evidence": [m.to_evidence(screen.model).to_dict()],
                },
            )
            for m in matches
            if m.start_s < video.duration_s
        ]
        info = {"grounder": "ocr", "channel": "ocr", "searched": shown, "ocr_model": screen.model}
        if not moments:
            info.update(absent="shown", note=f"{shown!r} is not shown on screen")
        return Grounding(
            moments=moments, raw_text=[m.text for m in matches], info=info, duration_s=video.duration_s
        )
