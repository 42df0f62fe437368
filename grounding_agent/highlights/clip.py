"""CLIP saliency: how well each sampled frame matches a text, with frame embeddings cached on disk.

    sal = ClipSaliency.from_pretrained("openai/clip-vit-base-patch32")  # or a local folder; SigLIP works too
    curve = sal.curve("video.mp4", "a person opens the door")             # signals.Curve, one value per frame

Frame embeddings are computed once per (file content, sampling, model, backend) and stored as .npz under
`~/.cache/grounding-agent/embeddings` (or `cache_dir`, or $GROUNDING_AGENT_CACHE/embeddings); every later
query on the same video is a matrix product. Frames are streamed in time chunks, so memory stays bounded.

The vision tower runs on one of `BACKENDS`: "torch" (fp32, the reference), "onnx" (ONNX Runtime, fp32) or
"onnx-int8" (ONNX Runtime with dynamic int8 weights; the default). The ONNX graphs are exported once per
model into the cache folder (a one-time cost: seconds for small models, ~1 min for ViT-B/32 on 2 cores).
int8 checks itself against fp32 on its first batch and stays on fp32 if any cosine is below MIN_COSINE.
`bench/saliency.py` measures speed and cosine to the reference.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import warnings
import zipfile
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from grounding_agent.defaults import cache_dir
from grounding_agent.errors import ConfigError, ModelLoadError
from grounding_agent.io import atomic_path
from grounding_agent.media.video import DEFAULT_CHUNK_S, iter_frame_chunks
from grounding_agent.types import Curve, Frames
from grounding_agent.utils.cache import file_fingerprint

log = logging.getLogger(__name__)

CACHE_VERSION = 1  # bump when the stored layout or the meaning of a key changes
DEFAULT_FPS = 1.0
DEFAULT_BATCH_SIZE = 16
# A faster backend must give every frame an embedding this close (cosine) to fp32 torch's.
MIN_COSINE = 0.99


def default_cache_dir() -> Path:
    return cache_dir("embeddings")


def model_fingerprint(model: Any, id_or_path: str) -> str:
    """What identifies the weights: a hub id plus its commit, or a local folder plus its files' size/mtime."""
    path = Path(id_or_path)
    if path.is_dir():
        files = sorted(p for p in path.iterdir() if p.is_file())
        parts = [str(path.resolve())] + [f"{p.name}:{p.stat().st_size}:{p.stat().st_mtime_ns}" for p in files]
    else:
        parts = [id_or_path, str(getattr(model.config, "_commit_hash", None))]
    return hashlib.sha256("\n".join(parts).encode()).hexdigest()[:16]


# --- the on-disk cache -----------------------------------------------------------------------------


@dataclass
class CacheStats:
    """Counters a caller (or a test) can read: frame-embedding cache hits/misses, frames actually
    encoded, and texts actually encoded (a text found in memory or on disk is not)."""

    hits: int = 0
    misses: int = 0
    frames_encoded: int = 0
    texts_encoded: int = 0


class EmbeddingCache:
    """Arrays stored as one .npz per key; writes are atomic (temp file + os.replace)."""

    def __init__(self, root: str | Path | None = None):
        self.root = Path(root) if root is not None else default_cache_dir()

    def path(self, key: str) -> Path:
        return self.root / f"{key}.npz"

    def load(self, key: str) -> dict[str, np.ndarray] | None:
        path = self.path(key)
        if not path.is_file():
            return None
        try:
            with np.load(path, allow_pickle=False) as data:
                return {k: data[k] for k in data.files}
        # A damaged entry (cut-off write by another tool, disk error) is a miss, and gets rewritten.
        except (OSError, ValueError, EOFError, KeyError, zipfile.BadZipFile) as exc:
            log.warning("ignoring unreadable cache entry %s (%s)", path, exc)
            return None

    def save(self, key: str, arrays: dict[str, np.ndarray]) -> Path:
        with atomic_path(self.path(key)) as tmp, open(tmp, "wb") as f:
            np.savez(f, **arrays)
        return self.path(key)


def cache_key(**parts: Any) -> str:
    blob = json.dumps({"version": CACHE_VERSION, **parts}, sort_keys=True, default=str)
    return hashlib.sha256(blob.encode()).hexdigest()[:32]


# --- vision backends -------------------------------------------------------------------------------

# A vision encoder maps pixel_values (B, 3, H, W) float32 to image embeddings (B, D) float32.
VisionEncoder = Callable[[np.ndarray], np.ndarray]


def _features(out: Any) -> Any:
    """transformers 5 returns a ModelOutput whose pooler_output is the projected embedding."""
    return out if hasattr(out, "shape") else out.pooler_output


def _torch_encoder(model: Any, work_dir: Path) -> VisionEncoder:
    import torch

    def encode(pixel_values: np.ndarray) -> np.ndarray:
        with torch.inference_mode():
            return (
                _features(model.get_image_features(pixel_values=torch.from_numpy(pixel_values)))
                .float()
                .numpy()
            )

    return encode


def export_vision_onnx(model: Any, path: Path, image_size: int) -> Path:
    """Export the vision tower + projection to ONNX (dynamic batch), atomically."""
    import torch

    class VisionTower(torch.nn.Module):
        def __init__(self, clip: Any):
            super().__init__()
            self.clip = clip

        def forward(self, pixel_values: torch.Tensor) -> torch.Tensor:
            return _features(self.clip.get_image_features(pixel_values=pixel_values))

    example = torch.zeros(2, 3, image_size, image_size)
    # The TorchScript exporter (dynamo=False) needs no onnxscript and handles CLIP/SigLIP fine; its
    # deprecation and tracer warnings (shape checks traced as constants: the input size is fixed) are noise.
    with warnings.catch_warnings(), atomic_path(path) as tmp:
        warnings.simplefilter("ignore", DeprecationWarning)
        warnings.simplefilter("ignore", torch.jit.TracerWarning)
        torch.onnx.export(
            VisionTower(model).eval(),
            (example,),
            str(tmp),
            dynamo=False,
            input_names=["pixel_values"],
            output_names=["image_embeds"],
            dynamic_axes={"pixel_values": {0: "batch"}, "image_embeds": {0: "batch"}},
            opset_version=17,
        )
    return path


def _ort_session(path: Path) -> Any:
    import onnxruntime as ort

    options = ort.SessionOptions()
    options.intra_op_num_threads = int(os.environ.get("GROUNDING_AGENT_THREADS", os.cpu_count() or 1))
    session = ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])

    def run(pixel_values: np.ndarray) -> np.ndarray:
        return session.run(None, {"pixel_values": np.ascontiguousarray(pixel_values, dtype=np.float32)})[0]

    return run


def _quantize_int8(fp32_path: Path, path: Path) -> Path:
    from onnxruntime.quantization import QuantType, quantize_dynamic

    def not_preprocessing_advice(record: logging.LogRecord) -> bool:
        # ORT logs a generic "consider pre-processing" tip on the root logger; it is not actionable here.
        return "pre-processing before quantization" not in record.getMessage()

    root = logging.getLogger()
    root.addFilter(not_preprocessing_advice)
    try:
        with atomic_path(path) as tmp:
            quantize_dynamic(str(fp32_path), str(tmp), weight_type=QuantType.QInt8)
    finally:
        root.removeFilter(not_preprocessing_advice)
    return path


def _onnx_encoder(model: Any, work_dir: Path, int8: bool = False) -> VisionEncoder:
    """ONNX Runtime on the exported vision tower; falls back to torch if the export fails.

    int8: dynamic int8 weights. Its first batch is also run through the fp32 graph; if any frame's
    embedding has cosine < MIN_COSINE to fp32 (a model whose activations do not quantise well), it
    logs a warning and stays on fp32 for good, so the fast path never silently changes the answer.
    """
    import torch

    fp32_path = work_dir / "vision.onnx"
    try:
        if not fp32_path.is_file():
            export_vision_onnx(model, fp32_path, int(model.config.vision_config.image_size))
        fp32 = _ort_session(fp32_path)
        if not int8:
            return fp32
        int8_path = work_dir / "vision_int8.onnx"
        fast = _ort_session(int8_path if int8_path.is_file() else _quantize_int8(fp32_path, int8_path))
    except (RuntimeError, OSError, ValueError, torch.onnx.errors.OnnxExporterError) as exc:
        log.warning("ONNX export/session failed for %s (%s); using the torch backend", work_dir.name, exc)
        return _torch_encoder(model, work_dir)

    chosen: list[VisionEncoder] = []  # empty until the first batch has been checked

    def encode(pixel_values: np.ndarray) -> np.ndarray:
        if chosen:
            return chosen[0](pixel_values)
        out, ref = fast(pixel_values), fp32(pixel_values)
        cos = float((_unit(out) * _unit(ref)).sum(axis=1).min())
        if cos < MIN_COSINE:
            log.warning(
                "int8 vision tower drifts from fp32 (cosine %.4f < %.2f); using fp32 ONNX", cos, MIN_COSINE
            )
        chosen.append(fast if cos >= MIN_COSINE else fp32)
        return out if cos >= MIN_COSINE else ref

    return encode


# name -> builder(model, work_dir) -> encoder. work_dir holds exported files for this model.
BACKENDS: dict[str, Callable[[Any, Path], VisionEncoder]] = {
    "torch": _torch_encoder,
    "onnx": _onnx_encoder,
    "onnx-int8": lambda model, work_dir: _onnx_encoder(model, work_dir, int8=True),
}
DEFAULT_BACKEND = "onnx-int8"


# --- the scorer ------------------------------------------------------------------------------------


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


def _unit(x: np.ndarray) -> np.ndarray:
    x = np.asarray(x, dtype=np.float32)
    return x / np.maximum(np.linalg.norm(x, axis=-1, keepdims=True), 1e-12)


class ClipSaliency:
    """Per-frame text-frame cosine similarity with a CLIP-family model, embeddings cached on disk.

    Args:
        model, processor: a loaded transformers CLIPModel/SiglipModel and its processor.
        model_id: the hub id or folder it came from (part of the cache key).
        backend: a key of `BACKENDS` (default "onnx-int8", guarded by an fp32 check).
        fps: default sampling rate for videos given as paths.
        batch_size: frames per forward pass.
        cache_dir: where embeddings and exported ONNX graphs go; None: `default_cache_dir()`.
        use_cache: False to always recompute embeddings (none are read or written).
        chunk_s: seconds of video decoded at once.
    """

    def __init__(
        self,
        model: Any,
        processor: Any,
        *,
        model_id: str,
        backend: str = DEFAULT_BACKEND,
        fps: float = DEFAULT_FPS,
        batch_size: int = DEFAULT_BATCH_SIZE,
        cache_dir: str | Path | None = None,
        use_cache: bool = True,
        chunk_s: float = DEFAULT_CHUNK_S,
    ):
        if backend not in BACKENDS:
            raise ConfigError(f"unknown saliency backend {backend!r}; choose one of {sorted(BACKENDS)}")
        if fps <= 0 or batch_size <= 0:
            raise ConfigError(f"fps and batch_size must be > 0, got fps={fps}, batch_size={batch_size}")
        self.model = model.eval()
        self.processor = processor
        self.model_id = model_id
        self.backend = backend
        self.fps = fps
        self.batch_size = batch_size
        self.chunk_s = chunk_s
        self.cache_dir = Path(cache_dir) if cache_dir is not None else default_cache_dir()
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
        return _unit(np.concatenate(out) if out else np.zeros((0, dim), np.float32))

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
                vectors = _unit(_features(self.model.get_text_features(**inputs)).float().numpy())
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
        key = cache_key(video=file_fingerprint(path), fps=fps, model=self._model_key, backend=self.backend, **parts)
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
        self, video: str | Path | Frames, query: str, *, fps: float | None = None, keyframes_only: bool = False
    ) -> Curve:
        """Cosine similarity of each sampled frame to `query`."""
        return self.curves(video, [query], fps=fps, keyframes_only=keyframes_only)[0]
