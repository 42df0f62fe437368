"""CLIP saliency: how well each sampled frame matches a text, with frame embeddings cached on disk.

    sal = ClipSaliency.from_pretrained("openai/clip-vit-base-patch32")  # or a local folder; SigLIP works too
    curve = sal.curve("video.mp4", "a person opens the door")             # types.Curve, one value per frame

Frame embeddings are computed once per (file content, sampling, model, backend) and stored as .npz under
`~/.cache/grounding-agent/embeddings` (or `cache_dir`, or $GROUNDING_AGENT_CACHE/embeddings); every later
query on the same video is a matrix product. Frames are streamed in time chunks, so memory stays bounded.

The vision tower runs on one of `vision_backends.BACKENDS`: "torch" (fp32, the reference), "onnx" (ONNX
Runtime, fp32) or "onnx-int8" (ONNX Runtime with dynamic int8 weights; the default, guarded by an fp32
check). The ONNX graphs are exported once per model into the cache folder by `onnx_export` (a one-time
cost: seconds for small models, ~1 min for ViT-B/32 on 2 cores); the cache itself is `embedding_cache`.
`bench/saliency.py` measures speed and cosine to the reference.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from grounding_agent.defaults import HIGHLIGHTS, LIMITS, MEDIA
from grounding_agent.errors import ConfigError, ModelLoadError
from grounding_agent.highlights.embedding_cache import (
    CacheStats,
    EmbeddingCache,
    cache_key,
    model_fingerprint,
)
from grounding_agent.highlights.onnx_export import VisionEncoder, features
from grounding_agent.highlights.vision_backends import BACKENDS, unit
from grounding_agent.media.decode import iter_frame_chunks
from grounding_agent.types import Curve, Frames
from grounding_agent.utils.cache import cache_folder, file_fingerprint


@dataclass(frozen=True, eq=False)
class FrameEmbeddings:
    """L2-normalised embeddings of sampled frames.

    Attributes:
        times_s: (T,) frame times, as `Frames.timestamps_s`.
        indices: (T,) frame indices in the stream.
        vectors: (T, D) float32, unit norm.
        from_cache: whether they were read from the disk cache.
    """

    times_s: np.ndarray
    indices: np.ndarray
    vectors: np.ndarray
    from_cache: bool = False

    def __len__(self) -> int:
        return len(self.times_s)

    def similarity(self, text_vectors: np.ndarray) -> np.ndarray:
        """(T, Q) cosine similarity to unit-norm text embeddings (Q, D)."""
        return self.vectors @ text_vectors.T


class ClipSaliency:
    """Per-frame text-frame cosine similarity with a CLIP-family model, embeddings cached on disk.

    Args:
        model, processor: a loaded transformers CLIPModel/SiglipModel and its processor.
        model_id: the hub id or folder it came from (part of the cache key).
        backend: a key of `BACKENDS` (default "onnx-int8", guarded by an fp32 check).
        fps: default sampling rate for videos given as paths.
        batch_size: frames per forward pass.
        cache_dir: where embeddings and exported ONNX graphs go; None: `cache_folder("embeddings")`.
        use_cache: False to always recompute embeddings (none are read or written).
        chunk_s: seconds of video decoded at once.
    """

    def __init__(
        self,
        model: Any,
        processor: Any,
        *,
        model_id: str,
        backend: str = HIGHLIGHTS.backend,
        fps: float = HIGHLIGHTS.clip_fps,
        batch_size: int = HIGHLIGHTS.batch_size,
        cache_dir: str | Path | None = None,
        use_cache: bool = True,
        chunk_s: float = MEDIA.decode_chunk_s,
    ):
        if backend not in BACKENDS:
            raise ConfigError(f"unknown saliency backend {backend!r}; choose one of {sorted(BACKENDS)}")
        LIMITS.check_fps(fps)
        if batch_size <= 0:
            raise ConfigError(f"batch_size must be > 0, got {batch_size}")
        self.model = model.eval()
        self.processor = processor
        self.model_id = model_id
        self.backend = backend
        self.fps = fps
        self.batch_size = batch_size
        self.chunk_s = chunk_s
        self.cache_dir = Path(cache_dir) if cache_dir is not None else cache_folder("embeddings")
        self.cache = EmbeddingCache(self.cache_dir) if use_cache else None
        self.stats = CacheStats()
        self._model_key = model_fingerprint(model, model_id)
        self._encoder: VisionEncoder | None = None
        self._text_vectors: dict[str, np.ndarray] = {}  # the agent asks about the same sub-queries again

    def _encode(self, pixel_values: np.ndarray) -> np.ndarray:
        # Built on first use: a cache hit never pays for an ONNX export or session start.
        if self._encoder is None:
            work_dir = self.cache_dir / "models" / self._model_key  # exported graphs, kept across runs
            self._encoder = BACKENDS[self.backend](self.model, work_dir)
        return self._encoder(pixel_values)

    @classmethod
    def from_pretrained(cls, id_or_path: str | Path, **kwargs: Any) -> ClipSaliency:
        """Load a CLIP-family model and processor by hub id or local folder (`AutoModel`/`AutoProcessor`).

        Raises:
            ModelLoadError: if either cannot be loaded.
        """
        from transformers import AutoModel, AutoProcessor

        name = str(id_or_path)
        try:
            model = AutoModel.from_pretrained(name, dtype="float32")
            processor = AutoProcessor.from_pretrained(name)
        except (OSError, ValueError) as exc:
            raise ModelLoadError(f"cannot load a CLIP model from {name!r}: {exc}".splitlines()[0]) from exc
        if not hasattr(model, "get_image_features") or not hasattr(model, "get_text_features"):
            raise ModelLoadError(
                f"{name!r} is a {type(model).__name__}, not a CLIP/SigLIP-style dual encoder"
            )
        return cls(model, processor, model_id=name, **kwargs)

    # --- embeddings --------------------------------------------------------------------------------

    @property
    def image_size(self) -> int:
        return int(self.model.config.vision_config.image_size)

    def encode_frames(self, pixels: np.ndarray) -> np.ndarray:
        """(T, H, W, 3) uint8 -> (T, D) unit-norm embeddings, `batch_size` frames per forward pass."""
        import torch

        out = []
        for i in range(0, len(pixels), self.batch_size):
            # One (B, 3, H, W) uint8 tensor: the torchvision-backed processor then resizes/normalises the
            # batch at once (2-3x less CPU than a list of arrays, identical output).
            batch = torch.from_numpy(np.ascontiguousarray(pixels[i : i + self.batch_size])).permute(
                0, 3, 1, 2
            )
            inputs = self.processor.image_processor(images=batch, return_tensors="pt")
            out.append(self._encode(inputs["pixel_values"].float().numpy()))
            self.stats.frames_encoded += len(batch)
        dim = int(self.model.config.projection_dim) if not out else out[0].shape[1]
        return unit(np.concatenate(out) if out else np.zeros((0, dim), np.float32))

    def embed_texts(self, texts: Sequence[str]) -> np.ndarray:
        """(Q, D) unit-norm text embeddings, memoised in memory and in the disk cache (a re-run with the
        same query pays for neither the text tower nor the frames)."""
        import torch

        if not texts or any(not isinstance(t, str) or not t.strip() for t in texts):
            raise ConfigError("saliency needs non-empty text queries")
        for t in dict.fromkeys(t for t in texts if t not in self._text_vectors):
            data = self.cache.load(self._text_key(t)) if self.cache else None
            if data is not None:
                self._text_vectors[t] = data["vector"]
        todo = list(dict.fromkeys(t for t in texts if t not in self._text_vectors))
        if todo:
            from transformers import Siglip2Model, SiglipModel

            # SigLIP was trained on max-length padding; CLIP pads to the longest.
            padding = "max_length" if isinstance(self.model, (SiglipModel, Siglip2Model)) else True
            inputs = self.processor.tokenizer(todo, padding=padding, truncation=True, return_tensors="pt")
            with torch.inference_mode():
                vectors = unit(features(self.model.get_text_features(**inputs)).float().numpy())
            self._text_vectors.update(zip(todo, vectors, strict=True))
            self.stats.texts_encoded += len(todo)
            for t, vector in zip(todo, vectors, strict=True):
                if self.cache:
                    self.cache.save(self._text_key(t), {"vector": vector})
        return np.stack([self._text_vectors[t] for t in texts])

    def _text_key(self, text: str) -> str:
        return cache_key(text=text, model=self._model_key)

    def _max_pixels(self, path: str | Path) -> int | None:
        """Decode just big enough for the processor: the short side at the model's input size."""
        from grounding_agent.media.video import open_video

        video = open_video(path)
        scale = self.image_size / min(video.width, video.height)
        return int(np.ceil(video.width * video.height * scale * scale)) if scale < 1 else None

    def embed_video(
        self, path: str | Path, *, fps: float | None = None, keyframes_only: bool = False
    ) -> FrameEmbeddings:
        """Embeddings of frames sampled at `fps` (default `self.fps`), from the cache when possible.

        Frames are decoded and encoded `chunk_s` seconds at a time: memory does not grow with the video.
        `keyframes_only`: the keyframe nearest each target (a cheap coarse pass over a long video).
        """
        fps = fps or self.fps
        parts = {"keyframes_only": True} if keyframes_only else {}  # keeps the keys of earlier entries
        key = cache_key(
            video=file_fingerprint(path), fps=fps, model=self._model_key, backend=self.backend, **parts
        )
        cached = self._load(key)
        if cached is not None:
            return cached
        times, indices, vectors = [], [], []
        max_pixels = self._max_pixels(path)
        chunks = iter_frame_chunks(
            path, fps=fps, max_pixels=max_pixels, chunk_s=self.chunk_s, keyframes_only=keyframes_only
        )
        for frames in chunks:
            times.append(frames.timestamps_s)
            indices.append(frames.indices)
            vectors.append(self.encode_frames(frames.pixels))
        emb = FrameEmbeddings(np.concatenate(times), np.concatenate(indices), np.concatenate(vectors))
        return self._store(key, emb)

    def embed(
        self, video: str | Path | Frames, *, fps: float | None = None, keyframes_only: bool = False
    ) -> FrameEmbeddings:
        """Embeddings of a video file (sampled here) or of already sampled `Frames`; cached either way."""
        if not isinstance(video, Frames):
            return self.embed_video(video, fps=fps, keyframes_only=keyframes_only)
        frames = video
        key = cache_key(
            video=file_fingerprint(frames.video.path),
            indices=hashlib.sha256(np.ascontiguousarray(frames.indices).tobytes()).hexdigest(),
            shape=list(frames.pixels.shape),
            model=self._model_key,
            backend=self.backend,
        )
        cached = self._load(key)
        if cached is not None:
            return cached
        return self._store(
            key, FrameEmbeddings(frames.timestamps_s, frames.indices, self.encode_frames(frames.pixels))
        )

    def _load(self, key: str) -> FrameEmbeddings | None:
        data = self.cache.load(key) if self.cache else None
        if data is None:
            self.stats.misses += 1
            return None
        self.stats.hits += 1
        return FrameEmbeddings(data["times_s"], data["indices"], data["vectors"], from_cache=True)

    def _store(self, key: str, emb: FrameEmbeddings) -> FrameEmbeddings:
        if self.cache:
            self.cache.save(key, {"times_s": emb.times_s, "indices": emb.indices, "vectors": emb.vectors})
        return emb

    # --- curves ------------------------------------------------------------------------------------

    def curves(
        self,
        video: str | Path | Frames,
        queries: Sequence[str],
        *,
        fps: float | None = None,
        keyframes_only: bool = False,
    ) -> list[Curve]:
        """One cosine-similarity curve per query, on the sampled frames' timestamps."""
        emb = self.embed(video, fps=fps, keyframes_only=keyframes_only)
        sims = emb.similarity(self.embed_texts(queries))
        return [Curve("clip", emb.times_s, sims[:, q]) for q in range(len(queries))]

    def curve(
        self,
        video: str | Path | Frames,
        query: str,
        *,
        fps: float | None = None,
        keyframes_only: bool = False,
    ) -> Curve:
        """Cosine similarity of each sampled frame to `query`."""
        return self.curves(video, [query], fps=fps, keyframes_only=keyframes_only)[0]
