"""The generic detector's signals as curves: what can be computed for one video, and why the rest cannot.

Visual (motion, scene novelty: `curves`), CLIP similarity to a prompt set and to the video's title
(`clip.ClipSaliency`, when a model is given), loudness (`media.audio`), speech activity (a transcript), speech
arousal and the applause cue (`prosody`), speech emotion (`emotion`, when a model is given). `windows` fuses
them per 2-s clip.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from grounding_agent.defaults import HIGHLIGHTS, LIMITS, SAMPLING
from grounding_agent.highlights.curves import visual_change
from grounding_agent.highlights.prosody import Prosody, analyze_prosody
from grounding_agent.media.audio import audio_energy
from grounding_agent.types import Curve
from grounding_agent.utils.extras import missing

if TYPE_CHECKING:
    from grounding_agent.highlights.clip import ClipSaliency
    from grounding_agent.highlights.emotion import EmotionModel
    from grounding_agent.media.transcript import Transcript

__all__ = ["SignalSet", "collect_signals"]

NO_VAD = "no transcript and no VAD (faster-whisper) to find the speech: pip install 'grounding-agent[speech]'"


class SignalSet:
    """Curves by signal name, why others are absent, and per-signal describers for the evidence."""

    def __init__(self) -> None:
        self.curves: dict[str, Curve] = {}
        self.absent: dict[str, str] = {}
        self.prosody: Prosody | None = None

    def describers(self) -> dict[str, Callable[[float, float], str]]:
        """signal -> (start_s, end_s) -> str: what in the signal made a window stand out."""
        return {"arousal": self.prosody.describe} if self.prosody is not None else {}


def collect_signals(
    path: str | Path,
    *,
    saliency: ClipSaliency | None = None,
    prompts: tuple[str, ...] = HIGHLIGHTS.prompts,
    fps: float = SAMPLING.fps,
    skip: frozenset[str] = frozenset(),
    transcript: Transcript | None = None,
    title: str | None = None,
    emotion: EmotionModel | None = None,
) -> SignalSet:
    """The signals' curves, why others are absent, and the prosody behind the arousal curve (for the
    evidence's wording)."""
    out = SignalSet()
    out.absent.update({name: "weight 0" for name in skip})
    _visual(out, path, saliency, prompts, fps, skip, title)
    if "audio" not in skip:
        audio = audio_energy(path)
        if audio is None:
            out.absent["audio"] = "no audio stream"
        else:
            out.curves["audio"] = audio
    if "speech" not in skip:
        if transcript is None:
            out.absent["speech"] = "no transcript (give an ASR model: --asr-model DIR)"
        elif not transcript.has_audio:
            out.absent["speech"] = "no audio stream"
        else:
            out.curves["speech"] = transcript.activity_curve()
    _speech_audio(out, path, skip, transcript, emotion)
    return out


def _visual(
    out: SignalSet,
    path: str | Path,
    saliency: ClipSaliency | None,
    prompts: tuple[str, ...],
    fps: float,
    skip: frozenset[str],
    title: str | None,
) -> None:
    if "clip" not in skip:
        if saliency is None:
            out.absent["clip"] = "no CLIP model given"
        else:
            per_prompt = saliency.curves(path, list(prompts), fps=min(fps, saliency.fps))
            out.curves["clip"] = per_prompt[0].with_values(np.mean([c.values for c in per_prompt], axis=0))
    if "title" not in skip:
        if not title or not title.strip():
            out.absent["title"] = "no title given: --title TEXT"
        elif saliency is None:
            out.absent["title"] = "no CLIP model given to match the title with"
        else:
            LIMITS.check_text(title)
            curve = saliency.curve(path, title.strip(), fps=min(fps, saliency.fps))
            out.curves["title"] = curve.with_values(curve.values, name="title")
    if not {"motion", "scene"} <= skip:
        motion, scene = visual_change(path, fps=fps)
        out.curves.update((c.name, c) for c in (motion, scene) if c.name not in skip)


def _speech_audio(
    out: SignalSet,
    path: str | Path,
    skip: frozenset[str],
    transcript: Transcript | None,
    emotion: EmotionModel | None,
) -> None:
    """Arousal and applause (prosody), and emotion (a model), from the speech in the audio."""
    wanted = {"arousal", "applause"} - skip
    has_regions = transcript is not None and bool(transcript.speech_regions)
    no_vad = not has_regions and bool(missing("faster_whisper"))
    if wanted and no_vad:
        out.absent.update(dict.fromkeys(wanted, NO_VAD))
    elif wanted:
        prosody = analyze_prosody(path, transcript=transcript)
        if prosody is None:
            out.absent.update(dict.fromkeys(wanted, "no audio stream"))
        else:
            out.prosody = prosody
            arousal = prosody.arousal() if "arousal" in wanted else None
            if arousal is not None:
                out.curves["arousal"] = arousal
            elif "arousal" in wanted:
                out.absent["arousal"] = "no speech heard"
            if "applause" in wanted:
                out.curves["applause"] = prosody.applause()
    if "emotion" in skip:
        return
    if emotion is None:
        out.absent["emotion"] = "no speech-emotion model given: --emotion-model DIR"
    elif no_vad and out.prosody is None:
        out.absent["emotion"] = NO_VAD
    else:
        regions = out.prosody.speech_regions_s if out.prosody is not None else None
        regions = transcript.speech_regions if regions is None and has_regions else regions
        curve = emotion.curve(path, regions_s=regions)
        if curve is None:
            out.absent["emotion"] = "no speech heard"
        else:
            out.curves["emotion"] = curve
