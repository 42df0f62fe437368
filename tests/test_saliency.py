"""ClipSaliency with the tiny random-weight CLIP (the real CLIPModel/CLIPProcessor path) on the real clips."""

from __future__ import annotations

import shutil

import numpy as np
import pytest

from grounding_agent.errors import ConfigError, ModelLoadError, VideoNotFoundError
from grounding_agent.highlights.clip import ClipSaliency
from grounding_agent.highlights.embedding_cache import EmbeddingCache
from grounding_agent.highlights.vision_backends import BACKENDS
from grounding_agent.media.decode import sample_frames
from grounding_agent.utils.cache import file_fingerprint

pytestmark = pytest.mark.integration

QUERY = "a person walks in a doorway drinking some coffee."


@pytest.fixture(scope="module")
def clip_dir(tiny_models):
    return tiny_models["clip"]


def _saliency(clip_dir, cache_dir, backend="torch", **kw) -> ClipSaliency:
    # torch unless a test is about the other backends: an ONNX export per temporary cache costs seconds.
    return ClipSaliency.from_pretrained(clip_dir, cache_dir=cache_dir, backend=backend, **kw)


@pytest.mark.parametrize("name", ["univtg_charades_Y1HGC.mp4", "decord_flipping_a_pancake.mkv"])
def test_curve_is_one_value_per_sampled_frame_at_its_real_time(real_clips, clip_dir, tmp_path, name):
    clip = real_clips[name]
    curve = _saliency(clip_dir, tmp_path).curve(clip, QUERY, fps=1.0)
    frames = sample_frames(clip, fps=1.0)
    assert len(curve) == len(frames) > 5
    np.testing.assert_array_equal(curve.times_s, frames.timestamps_s)
    assert np.all(np.abs(curve.values) <= 1.0 + 1e-5) and np.ptp(curve.values) > 0  # cosines, not constant


def test_second_call_hits_the_disk_cache_without_encoding(real_clips, clip_dir, tmp_path):
    clip = real_clips["univtg_charades_Y1HGC.mp4"]
    first = _saliency(clip_dir, tmp_path)
    a = first.curve(clip, QUERY)
    assert (first.stats.hits, first.stats.misses) == (0, 1) and first.stats.frames_encoded == len(a)

    again = _saliency(clip_dir, tmp_path)  # a new scorer: only the disk can help it
    c = again.curve(clip, QUERY)
    stats = again.stats
    assert (stats.hits, stats.misses, stats.frames_encoded, stats.texts_encoded) == (1, 0, 0, 0)
    np.testing.assert_allclose(c.values, a.values, atol=1e-6)
    b = again.curve(clip, "someone opens a door")  # a new query: only its text is encoded
    assert (again.stats.hits, again.stats.frames_encoded, again.stats.texts_encoded) == (2, 0, 1)
    assert not np.allclose(b.values, a.values)
    files = [p for p in tmp_path.iterdir() if p.is_file()]
    assert len(files) == 3 and {p.suffix for p in files} == {".npz"}  # frames + 2 texts, no temp files


def test_cache_is_keyed_by_content_sampling_and_backend(real_clips, clip_dir, tmp_path):
    clip = real_clips["decord_flipping_a_pancake.mkv"]
    sal = _saliency(clip_dir, tmp_path / "cache")
    sal.curve(clip, QUERY, fps=1.0)
    renamed = shutil.copy(clip, tmp_path / "renamed.mkv")  # same bytes, other path: a hit
    sal.curve(renamed, QUERY, fps=1.0)
    assert (sal.stats.hits, sal.stats.misses) == (1, 1)
    sal.curve(clip, QUERY, fps=2.0)  # other sampling: a miss
    assert sal.stats.misses == 2
    onnx = _saliency(clip_dir, tmp_path / "cache", backend="onnx")
    onnx.curve(clip, QUERY, fps=1.0)  # other backend: a miss
    assert (onnx.stats.hits, onnx.stats.misses) == (0, 1)
    assert file_fingerprint(renamed) == file_fingerprint(clip)


@pytest.mark.parametrize("damage", ["garbage", "truncated", "empty"])
def test_a_damaged_cache_entry_is_recomputed(real_clips, clip_dir, tmp_path, damage):
    clip = real_clips["decord_flipping_a_pancake.mkv"]
    _saliency(clip_dir, tmp_path).curve(clip, QUERY)
    entry = max(tmp_path.glob("*.npz"), key=lambda p: p.stat().st_size)  # the frames, not the text
    data = entry.read_bytes()
    # A cut-off write leaves a zip without its central directory: np.load raises BadZipFile.
    entry.write_bytes({"garbage": b"not an npz", "truncated": data[: len(data) // 2], "empty": b""}[damage])
    sal = _saliency(clip_dir, tmp_path)
    curve = sal.curve(clip, QUERY)
    assert sal.stats.misses == 1 and len(curve) > 0
    assert EmbeddingCache(tmp_path).load(entry.stem) is not None  # rewritten whole


def test_embedding_cache_reads_a_cut_off_entry_as_a_miss(tmp_path):
    cache = EmbeddingCache(tmp_path)
    path = cache.save("k", {"vector": np.arange(1000, dtype=np.float32)})
    path.write_bytes(path.read_bytes()[:-100])
    assert cache.load("k") is None
    cache.save("k", {"vector": np.ones(3, dtype=np.float32)})
    np.testing.assert_array_equal(cache.load("k")["vector"], np.ones(3, dtype=np.float32))


def test_streaming_in_small_chunks_gives_the_same_curve(real_clips, clip_dir, tmp_path):
    clip = real_clips["univtg_charades_Y1HGC.mp4"]
    # torch: exact per frame. (Dynamic int8 scales activations per batch, so there a frame's embedding
    # moves slightly with its batch mates: still >= MIN_COSINE, not bit-equal.)
    whole = _saliency(clip_dir, None, use_cache=False).curve(clip, QUERY, fps=2.0)
    chunked = _saliency(clip_dir, None, use_cache=False, chunk_s=4.0, batch_size=3).curve(
        clip, QUERY, fps=2.0
    )
    np.testing.assert_array_equal(chunked.times_s, whole.times_s)
    np.testing.assert_allclose(chunked.values, whole.values, atol=1e-5)


def test_frames_input_and_several_queries(clip_frames, clip_dir, tmp_path):
    sal = _saliency(clip_dir, tmp_path)
    curves = sal.curves(clip_frames, [QUERY, "a dog"])
    single = sal.curve(clip_frames, "a dog")
    assert sal.stats.hits == 1 and sal.stats.frames_encoded == len(clip_frames)
    np.testing.assert_array_equal(curves[0].times_s, clip_frames.timestamps_s)
    np.testing.assert_allclose(curves[1].values, single.values, atol=1e-6)


@pytest.mark.parametrize("backend", [b for b in BACKENDS if b != "torch"])
def test_fast_backends_match_fp32_torch(clip_frames, clip_dir, tmp_path, backend):
    ref = _saliency(clip_dir, tmp_path).embed(clip_frames).vectors
    fast = _saliency(clip_dir, tmp_path, backend=backend).embed(clip_frames).vectors
    cos = (ref * fast).sum(axis=1)  # both unit-norm
    assert cos.min() >= 0.99, cos
    assert not np.array_equal(ref, fast) or backend == "onnx"  # int8 really is another computation


def test_int8_that_drifts_falls_back_to_fp32(clip_frames, clip_dir, tmp_path, monkeypatch, caplog):
    from grounding_agent.highlights import vision_backends

    fp32 = _saliency(clip_dir, tmp_path / "a", backend="onnx", use_cache=False).encode_frames(
        clip_frames.pixels
    )
    monkeypatch.setattr(vision_backends, "MIN_COSINE", 1.01)  # no int8 model can pass: the guard must trip
    guarded = _saliency(clip_dir, tmp_path / "b", backend="onnx-int8", use_cache=False)
    first = guarded.encode_frames(clip_frames.pixels[:4])
    rest = guarded.encode_frames(clip_frames.pixels[4:])
    np.testing.assert_allclose(np.concatenate([first, rest]), fp32, atol=1e-6)
    assert "drifts from fp32" in caplog.text


def test_failed_onnx_export_falls_back_to_torch(clip_frames, clip_dir, tmp_path, monkeypatch, caplog):
    from grounding_agent.highlights import onnx_export

    def broken_export(*args, **kwargs):
        raise RuntimeError("unsupported operator")

    monkeypatch.setattr(onnx_export, "export_vision_onnx", broken_export)
    ref = _saliency(clip_dir, tmp_path, use_cache=False).encode_frames(clip_frames.pixels)
    out = _saliency(clip_dir, tmp_path, backend="onnx", use_cache=False).encode_frames(clip_frames.pixels)
    np.testing.assert_allclose(out, ref, atol=1e-6)
    assert "using the torch backend" in caplog.text


def test_damaged_onnx_export_is_rebuilt(clip_frames, clip_dir, tmp_path, caplog):
    ref = _saliency(clip_dir, tmp_path, use_cache=False).encode_frames(clip_frames.pixels[:2])
    _saliency(clip_dir, tmp_path, backend="onnx", use_cache=False).encode_frames(clip_frames.pixels[:2])
    (graph,) = tmp_path.glob("models/*/vision.onnx")
    graph.write_bytes(graph.read_bytes()[:1000])  # a cut-off file ONNX Runtime cannot parse
    out = _saliency(clip_dir, tmp_path, backend="onnx", use_cache=False).encode_frames(clip_frames.pixels[:2])
    np.testing.assert_allclose(out, ref, atol=1e-5)
    assert "rebuilding damaged ONNX file" in caplog.text


def test_user_errors(clip_dir, tmp_path, real_clips):
    with pytest.raises(ModelLoadError, match="cannot load"):
        ClipSaliency.from_pretrained(tmp_path / "no-such-model")
    with pytest.raises(ConfigError, match="backend"):
        _saliency(clip_dir, tmp_path, backend="tensorrt")
    sal = _saliency(clip_dir, tmp_path)
    with pytest.raises(ConfigError, match="non-empty"):
        sal.curve(real_clips["decord_flipping_a_pancake.mkv"], "  ")
    with pytest.raises(VideoNotFoundError):
        sal.curve(tmp_path / "missing.mp4", QUERY)
