"""Speech emotion as an arousal curve, through a transformers audio-classification model given by folder.

    model = EmotionModel.from_pretrained("models/ser-wav2vec2")     # any *ForSequenceClassification audio model
    model.curve("talk.mp4")     # Curve "emotion": per step, the expected arousal of the speech there (0..1)

Speech (VAD regions, or a transcript's) is cut into pieces of at most `EMOTION.chunk_s`; each piece's label
probabilities are mapped to arousal through an explicit label map (`EMOTION_AROUSAL`: angry/surprised/happy
high, neutral/calm/sad low; pass `arousal_map` to override) and averaged by probability. Steps outside speech
score 0. The model's answer is taken as given: these are its probabilities, nothing is made up when a label
is not in the map (it counts as 0 and is listed in `unmapped`).
"""

from __future__ import annotations

import math
from collections import deque
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from grounding_agent.defaults import EMOTION, EMOTION_AROUSAL, PROSODY
from grounding_agent.errors import ConfigError, ModelLoadError
from grounding_agent.media.audio import iter_audio
from grounding_agent.media.vad import SAMPLE_RATE, voice_regions
from grounding_agent.types import Curve

__all__ = ["EmotionModel", "label_arousal", "parse_arousal_map", "speech_pieces", "vad_regions_s"]


def parse_arousal_map(text: str) -> dict[str, float]:
    """'angry=1,happy=0.8,neutral=0' -> {label: arousal in [0, 1]}."""
    out: dict[str, float] = {}
    for part in filter(None, (p.strip() for p in text.split(","))):
        label, _, value = part.partition("=")
        try:
            number = float(value)
        except ValueError:
            number = math.nan
        if not label.strip() or not 0 <= number <= 1:
            raise ConfigError(
                f"emotion map entry {part!r} is not LABEL=NUMBER in [0, 1] (e.g. angry=1,calm=0)"
            )
        out[label.strip().lower()] = number
    if not out:
        raise ConfigError("the emotion map is empty: give LABEL=NUMBER pairs, e.g. 'angry=1,neutral=0'")
    return out


def label_arousal(
    id2label: Mapping[int, str], arousal_map: Mapping[str, float]
) -> tuple[np.ndarray, list[str]]:
    """Arousal of each label id (exact lower-cased match, else the first 3 letters), and the labels unmapped.

    Raises:
        ConfigError: no label of the model is in the map (its answers could not be read as arousal).
    """
    prefixes = {key[:3]: value for key, value in arousal_map.items()}
    values, unmapped = [], []
    for i in range(len(id2label)):
        label = str(id2label[i]).strip().lower()
        value = arousal_map.get(label, prefixes.get(label[:3]))
        if value is None:
            unmapped.append(label)
        values.append(0.0 if value is None else float(value))
    if len(unmapped) == len(id2label):
        raise ConfigError(
            f"none of the emotion model's labels {unmapped[:8]} is in the arousal map; "
            "give a map such as 'angry=1,happy=0.8,neutral=0'"
        )
    return np.asarray(values), unmapped


def vad_regions_s(path: str | Path) -> list[tuple[float, float]]:
    """Speech regions (seconds) of a file's audio by the VAD, streamed in blocks."""
    regions, offset = [], 0
    for block in iter_audio(path, sample_rate=SAMPLE_RATE):
        regions += [((a + offset) / SAMPLE_RATE, (b + offset) / SAMPLE_RATE) for a, b in voice_regions(block)]
        offset += len(block)
    return regions


def speech_pieces(
    regions_s: Sequence[tuple[float, float]],
    *,
    chunk_s: float = EMOTION.chunk_s,
    min_chunk_s: float = EMOTION.min_chunk_s,
) -> list[tuple[float, float]]:
    """Each region cut into equal pieces of at most `chunk_s`; pieces shorter than `min_chunk_s` dropped."""
    pieces = []
    for a, b in sorted(regions_s):
        n = max(1, math.ceil((b - a) / chunk_s - 1e-9))
        edges = np.linspace(a, b, n + 1)
        pieces += [
            (float(s), float(e)) for s, e in zip(edges[:-1], edges[1:], strict=True) if e - s >= min_chunk_s
        ]
    return pieces


class EmotionModel:
    """A speech-emotion classifier (transformers `AutoModelForAudioClassification`) read as arousal.

    Args:
        model, extractor: the loaded model and its feature extractor.
        model_id: the folder it came from.
        arousal_map: label -> arousal in [0, 1] (default `EMOTION_AROUSAL`).
        batch_clips: speech pieces per forward pass.
    """

    def __init__(
        self,
        model: Any,
        extractor: Any,
        *,
        model_id: str,
        arousal_map: Mapping[str, float] = EMOTION_AROUSAL,
        batch_clips: int = EMOTION.batch_clips,
    ):
        self.model = model.eval()
        self.extractor = extractor
        self.model_id = model_id
        self.batch_clips = max(1, batch_clips)
        self.arousal, self.unmapped = label_arousal(model.config.id2label, arousal_map)
        self.sample_rate = int(getattr(extractor, "sampling_rate", SAMPLE_RATE) or SAMPLE_RATE)

    @classmethod
    def from_pretrained(cls, folder: str | Path, **kwargs: Any) -> EmotionModel:
        """Load from a local folder saved by transformers (config.json, weights, preprocessor_config.json).

        Raises:
            ModelLoadError: not a folder, or not an audio-classification model with a feature extractor.
        """
        from transformers import AutoFeatureExtractor, AutoModelForAudioClassification

        path = Path(folder).expanduser()
        if not path.is_dir():
            raise ModelLoadError(
                f"emotion model {str(folder)!r} is not a folder: give a local folder saved by transformers"
            )
        try:
            model = AutoModelForAudioClassification.from_pretrained(path, local_files_only=True)
            extractor = AutoFeatureExtractor.from_pretrained(path, local_files_only=True)
        except (OSError, ValueError, KeyError, TypeError) as exc:
            first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
            raise ModelLoadError(
                f"cannot load a speech-emotion (audio-classification) model from {str(path)!r}: {first}"
            ) from exc
        return cls(model, extractor, model_id=str(path), **kwargs)

    def score(self, clips: Sequence[np.ndarray]) -> np.ndarray:
        """Expected arousal (sum of label probability x label arousal) of each clip of mono audio."""
        import torch

        out = []
        for i in range(0, len(clips), self.batch_clips):
            batch = [np.asarray(c, dtype=np.float32) for c in clips[i : i + self.batch_clips]]
            inputs = self.extractor(batch, sampling_rate=self.sample_rate, padding=True, return_tensors="pt")
            with torch.inference_mode():
                probs = torch.softmax(self.model(**inputs).logits.float(), dim=-1).numpy()
            out.append(probs @ self.arousal)
        return np.concatenate(out) if out else np.zeros(0)

    def curve(
        self,
        path: str | Path,
        *,
        regions_s: Sequence[tuple[float, float]] | None = None,
        step_s: float = PROSODY.step_s,
    ) -> Curve | None:
        """The "emotion" curve per `step_s` (0 outside speech); None when no speech is heard."""
        pieces = speech_pieces(vad_regions_s(path) if regions_s is None else regions_s)
        if not pieces:
            return None
        scores, n_samples = self._score_pieces(path, pieces)
        n_steps = max(1, math.ceil(n_samples / self.sample_rate / step_s - 1e-9))
        times = (np.arange(n_steps) + 0.5) * step_s
        values = np.zeros(n_steps)
        for (a, b), s in zip(pieces, scores, strict=True):
            values[(times >= a) & (times < b)] = s
        return Curve("emotion", times, values)

    def _score_pieces(self, path: str | Path, pieces: list[tuple[float, float]]) -> tuple[np.ndarray, int]:
        """Streams the audio once: each piece is cut out as soon as it is buffered, scored in batches."""
        sr = self.sample_rate
        todo = deque((round(a * sr), round(b * sr)) for a, b in pieces)
        buf, start, clips, scores = np.zeros(0, np.float32), 0, [], []
        for block in iter_audio(path, sample_rate=sr):
            buf = np.concatenate([buf, block])
            while todo and todo[0][1] <= start + len(buf):
                a, b = todo.popleft()
                clips.append(buf[a - start : b - start])
            if len(clips) >= self.batch_clips:
                scores.append(self.score(clips))
                clips = []
            keep = (todo[0][0] if todo else start + len(buf)) - start
            buf, start = buf[max(0, keep) :], start + max(0, keep)
        clips += [buf[max(0, a - start) : max(0, b - start)] for a, b in todo]  # pieces past the audio's end
        clips = [c if len(c) else np.zeros(sr // 10, np.float32) for c in clips]
        scores.append(self.score(clips))
        return np.concatenate(scores), start + len(buf)
