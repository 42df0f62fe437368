"""A tiny random-weight speech-emotion classifier of a real architecture, saved like a hub checkpoint.

    from tests.assets.tiny_audio_models import cached_tiny_emotion_model
    folder = cached_tiny_emotion_model()   # Wav2Vec2ForSequenceClassification + its feature extractor

The config is wav2vec2-base's, shrunk (hidden 32, 2 layers, 7 conv layers of 32 channels with the real
kernels and strides, so one output frame per 20 ms of 16 kHz audio), with RAVDESS-style emotion labels
(`id2label`) as speech-emotion checkpoints on the hub have them. Its answers are random: tests check that it
loads by path, runs, and gives a curve of the right shape, never what it says.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import tempfile
from pathlib import Path

CACHE_ROOT = Path(os.environ.get("GA_TINY_MODELS_CACHE", Path.home() / ".cache" / "grounding-agent"))
LABELS = ("neutral", "calm", "happy", "sad", "angry", "fearful", "disgust", "surprised")


def build_tiny_emotion_model(outdir: str | Path, seed: int = 0) -> Path:
    """Write a tiny `Wav2Vec2ForSequenceClassification` and its `Wav2Vec2FeatureExtractor` to `outdir`."""
    import torch
    from transformers import Wav2Vec2Config, Wav2Vec2FeatureExtractor, Wav2Vec2ForSequenceClassification

    torch.manual_seed(seed)
    config = Wav2Vec2Config(
        hidden_size=32,
        num_hidden_layers=2,
        num_attention_heads=2,
        intermediate_size=64,
        conv_dim=(32,) * 7,
        num_conv_pos_embeddings=16,
        num_conv_pos_embedding_groups=4,
        classifier_proj_size=16,
        id2label=dict(enumerate(LABELS)),
        label2id={label: i for i, label in enumerate(LABELS)},
    )
    model = Wav2Vec2ForSequenceClassification(config).eval()
    extractor = Wav2Vec2FeatureExtractor(
        feature_size=1, sampling_rate=16000, padding_value=0.0, do_normalize=True, return_attention_mask=True
    )
    outdir = Path(outdir)
    model.save_pretrained(outdir)
    extractor.save_pretrained(outdir)
    return outdir


def cached_tiny_emotion_model(cache_root: str | Path | None = None) -> Path:
    """`build_tiny_emotion_model` once per version of this file (and transformers), renamed into place."""
    from importlib.metadata import version

    root = Path(cache_root) if cache_root is not None else CACHE_ROOT
    digest = hashlib.sha256(Path(__file__).read_bytes() + version("transformers").encode()).hexdigest()[:12]
    final = root / f"tiny-emotion-{digest}"
    if not (final / "config.json").is_file():
        root.mkdir(parents=True, exist_ok=True)
        tmp = Path(tempfile.mkdtemp(prefix=f"{final.name}.tmp-", dir=root))
        try:
            build_tiny_emotion_model(tmp)
            os.rename(tmp, final)
        except OSError:
            if not (final / "config.json").is_file():  # not a lost race: a real failure
                raise
        finally:
            shutil.rmtree(tmp, ignore_errors=True)
    return final
