"""Real 512-d vectors for `bench/library_store.py --real-vectors N`: Whisper base's encoder states over speech.

There are no CLIP/SigLIP weights on this machine; Whisper base's encoder (d_model 512, CTranslate2 via
faster-whisper) is the one real trained 512-d embedder, and its states (50 a second of audio, one per 20 ms)
are learned vectors with a real, anisotropic distribution (a shared component: the normalised states'
mean has norm ~0.35, a random pair's cosine ~0.13). The audio: espeak-ng reading QVHighlights query texts
(val split: the index; test split, less any val sentence: the unseen queries), a few sentences per call
in one of `VOICES` at a random speed and pitch, plus the real clips' soundtracks in ../shared/data/videos,
packed end to end into 30-s windows (no padding inside the data: only a last, partial window is cut at the
audio's end). Every state is kept (no pooling: one vector per
20 ms) and L2-normalised. Cached as .npy under `cache_dir("bench")`, keyed by N and `RECIPE`.

May import numpy, faster-whisper and `tests/assets/whisper_base.py`; used only by bench/library_store.py.
"""

from __future__ import annotations

import io
import json
import math
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

from bench._common import latency, machine

ROOT = Path(__file__).resolve().parents[1]
DATA = ROOT.parent / "shared" / "data"
RECIPE = "whisper-base-f32-espeak-v1"  # change it when the recipe below changes: it keys the cache
VOICES = ("en-us", "en-gb", "en-gb-scotland", "en-029", "en-us+f2", "en-gb-x-rp+f4", "en-us-nyc+m5",
          "en-gb-x-gbcwmd+m3", "en-us+klatt")  # fmt: skip
SPEEDS_WPM, PITCHES = (130, 150, 170, 190), (35, 50, 65)
SENTENCES_PER_CALL = 6
SR, WINDOW_S, STATES_PER_S = 16_000, 30, 50
HELD, UNSEEN = 200, 200  # held-out index vectors; vectors of unseen sentences
UNSEEN_AUDIO_S = 90.0  # the unseen queries are drawn from this much speech (~30 sentences)


def sentences(split: str) -> list[str]:
    """Distinct QVHighlights query texts of `split` ("val": the index's speech, "test": unseen speech)."""
    name = {"val": "highlight_val_release.jsonl", "test": "highlight_test_with_gt.jsonl"}[split]
    lines = (DATA / "qvhighlights" / name).read_text(encoding="utf-8").splitlines()
    return list(dict.fromkeys(json.loads(x)["query"].strip() for x in lines if x.strip()))


def speak(texts: list[str], voice: str, speed_wpm: int, pitch: int) -> np.ndarray:
    """16-kHz float32 audio of espeak-ng reading `texts`, one line each (its own pause between them)."""
    from faster_whisper.audio import decode_audio

    cmd = ["espeak-ng", "-v", voice, "-s", str(speed_wpm), "-p", str(pitch), "--stdout"]
    wav = subprocess.run(cmd, input="\n".join(texts).encode(), capture_output=True, check=True).stdout
    return decode_audio(io.BytesIO(wav), sampling_rate=SR)


def speech(texts: list[str], seconds: float, seed: int) -> np.ndarray:
    """At least `seconds` of speech of `texts` (shuffled; read again in other voices if they run out)."""
    rng, parts, total = np.random.default_rng(seed), [], 0
    order = list(rng.permutation(len(texts)))
    while total < seconds * SR:
        if len(order) < SENTENCES_PER_CALL:
            order += list(rng.permutation(len(texts)))
        group, order = [texts[i] for i in order[:SENTENCES_PER_CALL]], order[SENTENCES_PER_CALL:]
        voice = VOICES[rng.integers(len(VOICES))]
        audio = speak(group, voice, int(rng.choice(SPEEDS_WPM)), int(rng.choice(PITCHES)))
        parts.append(audio)
        total += len(audio)
    return np.concatenate([np.zeros(0, np.float32), *parts])


def clips_audio() -> np.ndarray:
    """The real clips' soundtracks, end to end (about 76 s)."""
    from faster_whisper.audio import decode_audio

    paths = sorted(p for p in (DATA / "videos").iterdir() if p.suffix in (".mp4", ".mkv"))
    return np.concatenate([decode_audio(str(p), sampling_rate=SR) for p in paths])


def encoder():
    """Whisper base (float32, CTranslate2) on the CPU."""
    from faster_whisper import WhisperModel

    sys.path.insert(0, str(ROOT))
    from tests.assets.whisper_base import whisper_base_dir

    return WhisperModel(str(whisper_base_dir()), device="cpu", compute_type="float32", cpu_threads=2)


def encode(model, audio: np.ndarray) -> np.ndarray:
    """Encoder states of `audio`, 30-s window by window: (~50 a second, 512), L2-normalised float32."""
    from faster_whisper.audio import pad_or_trim

    out, step = [], WINDOW_S * SR
    for start in range(0, len(audio), step):
        chunk = audio[start : start + step]
        features = pad_or_trim(model.feature_extractor(chunk))  # (80, 3000): a 30-s window's mel frames
        states = np.array(model.encode(features))[0]  # (1500, 512)
        out.append(states[: int(np.ceil(len(chunk) / SR * STATES_PER_S))])  # none of the padding's states
        print(f"real vectors: window {start // step + 1}/{-(-len(audio) // step)}", file=sys.stderr)
    states = np.concatenate(out).astype(np.float32)
    return states / np.linalg.norm(states, axis=1, keepdims=True)


def real_vectors(n: int, cache: Path) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(data (n, 512), held (HELD, 512), unseen (UNSEEN, 512)): the index's vectors; held-out vectors of the
    same speech (not in data); vectors of other sentences' speech (test split, not in the index's audio)."""
    paths = [cache / f"real-vectors-{RECIPE}-{n}-{part}.npy" for part in ("data", "held", "unseen")]
    if all(p.is_file() for p in paths):
        return tuple(np.load(p) for p in paths)
    model, rng = encoder(), np.random.default_rng(0)
    clips = clips_audio()
    need_s = (n + HELD) / STATES_PER_S - len(clips) / SR
    states = encode(model, np.concatenate([clips, speech(sentences("val"), need_s, seed=0)]))[: n + HELD]
    held = np.zeros(len(states), bool)
    held[rng.choice(len(states), HELD, replace=False)] = True
    other = sorted(set(sentences("test")) - set(sentences("val")))  # no sentence of the index's speech
    unseen = encode(model, speech(other, UNSEEN_AUDIO_S, seed=1))
    unseen = unseen[np.sort(rng.choice(len(unseen), UNSEEN, replace=False))]
    cache.mkdir(parents=True, exist_ok=True)
    out = (np.ascontiguousarray(states[~held]), np.ascontiguousarray(states[held]), unseen)
    for path, part in zip(paths, out):
        tmp = path.with_suffix(".tmp.npy")
        np.save(tmp, part)
        tmp.replace(path)
    return out


# --- measuring (`run_real`): the library's own Store and ANN index on these vectors -----------------

K, VIDEO_FRAMES = 10, 3600  # recall@10; rows per video (an hour at 1 fps), as in bench/library_store.py


def _insert_real(store, data: np.ndarray) -> float:
    """Insert `data` as 3,600-frame videos (row i: video i // 3600 + 1, time_s i % 3600); seconds taken."""
    t0 = time.perf_counter()
    for start in range(0, len(data), VIDEO_FRAMES):
        part = data[start : start + VIDEO_FRAMES]
        with store.transaction() as c:
            store.insert_frames(c, start // VIDEO_FRAMES + 1, range(len(part)), part)
    return time.perf_counter() - t0


def _real_recall(store, qs: np.ndarray, data: np.ndarray) -> dict:
    """`Store.knn(q, visual_candidates)` at the current probes: recall@10 of its top 10 and recall@200 (the
    rescoring depth: with visual_candidates == visual_rescore its 200 are the ANN's candidates) against
    exact brute force, and the latency of each call."""
    from grounding_agent.defaults import LIBRARY

    k = LIBRARY.visual_candidates
    deep = min(LIBRARY.visual_rescore, k)
    sims = qs @ data.T
    truth = np.argsort(-sims, axis=1)

    def fn(q):
        return [(v - 1) * VIDEO_FRAMES + int(t) for v, t, _ in store.knn(q, k)]

    times, found = latency(fn, qs)
    ms = np.array(times) * 1000
    return {
        "recall_at_10": round(
            float(np.mean([len(set(f[:K]) & set(t[:K])) / K for f, t in zip(found, truth)])), 4
        ),
        f"recall_at_{deep}": round(
            float(np.mean([len(set(f[:deep]) & set(t[:deep])) / deep for f, t in zip(found, truth)])), 4
        ),
        "p50_ms": round(float(np.percentile(ms, 50)), 2),
        "p95_ms": round(float(np.percentile(ms, 95)), 2),
        "exact_cos_1st": round(float(np.mean(np.take_along_axis(sims, truth[:, :1], 1))), 3),
        "exact_cos_10th": round(float(np.mean(np.take_along_axis(sims, truth[:, K - 1 : K], 1))), 3),
        "load_avg_1m": round(os.getloadavg()[0], 2),
    }


REAL_SOURCE = (
    "Whisper base encoder states (float32) of espeak-ng speech of QVHighlights val queries (9 voices, 4 speeds, "
    "3 pitches) + the 3 real clips' audio; unseen queries: test-split sentences not in val; bench/_real_vectors.py"
)


def run_real(n: int, work: Path, probes: list[int], lists: int = 0) -> dict:
    """`--real-vectors N`: Whisper base encoder states (bench/_real_vectors.py) in the library's `Store`, its
    own ANN index and `Store.knn`; recall against brute force for held-out and unseen-sentence queries at
    each of `probes` (0: the shipped `visual_ann_probes`), then doubled until recall@10 >= 0.9. `lists` > 0
    forces that many IVF lists (e.g. 2,048, what `lists_for` gives 3.6M frames) instead of `lists_for(n)`."""
    import dataclasses

    from grounding_agent.defaults import LIBRARY
    from grounding_agent.defaults.core import cache_dir
    from grounding_agent.library import ann
    from grounding_agent.library.store import Store

    t0 = time.perf_counter()
    data, held, unseen = real_vectors(n, cache_dir("bench"))
    make_s = time.perf_counter() - t0
    store = Store.open(work / f"real{n}", create=True)
    insert_s = _insert_real(store, data)
    forced = n <= LIBRARY.visual_exact_frames  # a small library would get the exact index: force IVF
    shipped = dataclasses.replace(LIBRARY, visual_exact_frames=0) if forced else LIBRARY
    if lists:  # lists_for(n) = 2^round(log2(per_sqrt * sqrt(n))): exactly `lists` for a power of two
        shipped = dataclasses.replace(shipped, visual_ann_lists_per_sqrt=lists / math.sqrt(n))
    ann.LIBRARY = shipped
    t0 = time.perf_counter()
    nlist = store.ann().lists
    build_s = time.perf_counter() - t0
    kinds = {"held_out": held, "unseen_sentences": unseen}
    todo, results = sorted({p or LIBRARY.visual_ann_probes for p in probes}), {}
    while todo:
        probe = todo.pop(0)
        ann.LIBRARY = dataclasses.replace(shipped, visual_ann_probes=probe)
        results[probe] = {kind: _real_recall(store, qs, data) for kind, qs in kinds.items()}
        print(json.dumps({"probes": probe, **results[probe]}), flush=True)
        low = any(r["recall_at_10"] < 0.9 for r in results[probe].values())
        if low and probe >= max(results) and probe * 2 <= nlist and not todo:
            todo.append(probe * 2)  # the shipped probes miss: how many would reach 0.9
    ann.LIBRARY = LIBRARY
    store.close()
    shutil.rmtree(work / f"real{n}")
    return {
        "vectors": n, "dim": int(data.shape[1]), "recipe": RECIPE, "source": REAL_SOURCE,
        "pooling": "none: one vector per 20-ms encoder state", "queries": {k: len(v) for k, v in kinds.items()},
        "index": f"ivf{nlist}-sq8 ({'forced' if lists else 'shipped'} lists)", "forced_ivf": forced,
        "shipped_probes": LIBRARY.visual_ann_probes, "k": LIBRARY.visual_candidates,
        "rescore": LIBRARY.visual_rescore, "make_vectors_s": round(make_s, 1), "insert_s": round(insert_s, 1),
        "index_build_s": round(build_s, 2), "by_probes": {str(p): r for p, r in sorted(results.items())},
        "machine": machine(),
    }  # fmt: skip
