"""A visual alert on a growing file, grounded by the REAL tiny random-weight Qwen2.5-VL (hf backend).

The answers are random, so the test asserts only what holds whatever the model writes: calls are made on
the rolling window, within the per-minute budget, never past what was seen; malformed answers are counted
and reported; every event carries stream time, evidence and delay."""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pytest

from grounding_agent.grounders.hf import HFGrounder
from grounding_agent.live import LiveEvent, Watcher, WatchOptions
from grounding_agent.live.sinks import CallbackSink
from tests.livegen import grow_file
from tests.videogen import _ffmpeg

QUERY = "a red ball rolls across the floor"
CALLS_PER_MIN = 20
DURATION_S = 16.0


class SpyGrounder:
    """Test double (a spy) wrapping the real HFGrounder: it records each call, the stream seen at that
    moment and the real answer; it never changes the answer."""

    def __init__(self, real: HFGrounder, watcher_ref: list[Watcher]):
        self.real, self.name, self.watcher_ref = real, real.name, watcher_ref
        self.calls: list[dict] = []

    def ground(self, video, query: str, *, top_k: int = 1):
        source = self.watcher_ref[0].source
        seen_s = source.last_s if source is not None and source.last_s is not None else 0.0
        answer = self.real.ground(video, query, top_k=top_k)
        bad = bool(answer.failures) or answer.best is None
        self.calls.append({"seen_s": seen_s, "best": answer.best, "malformed": bad, "query": query})
        return answer


@pytest.fixture(scope="module")
def growing_stream(tmp_path_factory) -> Path:
    path = tmp_path_factory.mktemp("livevis") / "vis.ts"
    _ffmpeg("-f", "lavfi", "-i", f"testsrc2=s=160x120:r=10:d={DURATION_S}", "-f", "lavfi", "-i",
            f"sine=f=440:d={DURATION_S}", "-c:v", "libx264", "-preset", "ultrafast", "-g", "10",
            "-pix_fmt", "yuv420p", "-threads", "1", "-c:a", "aac", "-f", "mpegts", str(path))  # fmt: skip
    return path


@pytest.mark.slow
def test_visual_alert_with_real_tiny_grounder(growing_stream, tiny_models, tmp_path) -> None:
    src = tmp_path / "growing.ts"
    writer = grow_file(growing_stream, src, seconds=6.0, chunks=16)
    real = HFGrounder(str(tiny_models["qwen2_5_vl"]), max_new_tokens=12, max_frames=4)
    ref: list[Watcher] = []
    spy = SpyGrounder(real, ref)
    events: list[LiveEvent] = []
    options = WatchOptions(alerts=(QUERY,), visual_calls_per_min=CALLS_PER_MIN, segment_s=1.0, timeout_s=2.0,
                           min_score=0.0, highlights=False, speed=2.0)  # fmt: skip
    watcher = Watcher(str(src), options, tmp_path / "w", sinks=[CallbackSink(events.append)], grounder=spy)
    ref.append(watcher)
    report = watcher.run()
    writer.join()

    assert report.stream_s > DURATION_S - 2
    assert spy.calls, "the grounder was never called on the rolling window"
    assert report.visual_calls == len(spy.calls)
    # The budget: one window per 60/CALLS_PER_MIN s of stream (one call per alert per window), none before
    # the first window is recorded.
    windows = list(watcher.visual.windows)
    assert len(windows) <= 1 + math.floor((report.stream_s - 8.0) * CALLS_PER_MIN / 60)
    ends = [b for _, b in windows]
    assert all(b2 - b1 >= 60 / CALLS_PER_MIN - 1e-6 for b1, b2 in zip(ends, ends[1:], strict=False))
    # No look-ahead: each window ends within what was seen when its call was made, and is window_s long.
    for (a, b), call in zip(windows, spy.calls, strict=False):
        assert 0.0 <= a < b <= call["seen_s"] + 1e-6 and b - a <= 8.0 + 1e-6
    # Malformed answers are counted and reported, not fatal; the others fire (min_score 0) with evidence.
    assert report.visual_malformed == sum(c["malformed"] for c in spy.calls)
    assert report.visual_failed == 0
    alerts = [e for e in events if e.kind == "alert" and e.channel == "visual"]
    assert len(alerts) == sum(c["best"] is not None for c in spy.calls)
    for e, (a, b) in zip(
        alerts, [w for w, c in zip(windows, spy.calls, strict=False) if c["best"]], strict=False
    ):
        assert e.query == QUERY and a - 1e-6 <= e.start_s <= e.end_s <= b + 1e-6
        assert e.delay_s is not None and e.delay_s >= 0.0
        assert e.evidence and e.evidence[0].kind == "grounder" and e.evidence[0].source == spy.name
    assert report.visual_skipped + len(windows) >= 1


@pytest.fixture(scope="module")
def tiny_clip(tiny_models):
    from grounding_agent.highlights.clip import ClipSaliency

    return ClipSaliency.from_pretrained(tiny_models["clip"], use_cache=False)


def test_online_clip_signal_with_tiny_clip(tiny_clip) -> None:
    """The real tiny CLIP scores each sampled frame against the highlight prompts: the "clip" signal is in
    the highlight (a motion/scene burst at 30 s), and what is held stays bounded over 200 s of frames."""
    from grounding_agent.live.online import OnlineHighlights

    online = OnlineHighlights(delay_s=2.0, saliency=tiny_clip)
    rng = np.random.default_rng(0)
    still = np.full((48, 64, 3), 128, np.uint8)
    hits, held = [], []
    for t in range(200):
        frame = rng.integers(0, 256, still.shape, dtype=np.uint8) if t == 30 else still
        online.add_frame(frame, float(t))
        hits += online.poll(t + 0.99)
        held.append(len(online._bins))
    assert any(h.start_s in (30.0, 31.0) for h in hits)
    for h in hits:
        assert "clip" in h.signals and h.clip_sim is not None and -1.0 <= h.clip_sim <= 1.0
    assert online.stats["clip"].n >= 195
    assert max(held) <= 2 and len(online._window) == online._window.maxlen == len(online._clip)


@pytest.mark.slow
def test_watch_highlights_carry_clip_evidence(growing_stream, tiny_clip, tmp_path) -> None:
    """Through the watch: every sampled second is scored by CLIP; highlight events carry it as evidence."""
    events: list[LiveEvent] = []
    watcher = Watcher(str(growing_stream), WatchOptions(highlights=True, delay_s=1.0, timeout_s=1.0),
                      tmp_path / "w", sinks=[CallbackSink(events.append)], saliency=tiny_clip)  # fmt: skip
    report = watcher.run()
    assert watcher.online is not None and watcher.online.stats["clip"].n >= report.stream_s - 3
    for e in (e for e in events if e.kind == "highlight"):
        assert "clip" in e.data["signals"]
        assert e.evidence[0].kind == "saliency" and e.evidence[0].source == tiny_clip.model_id


def test_watch_cli_builds_the_hf_grounder_for_visual_alerts(growing_stream, tiny_models, capsys, tmp_path):
    from tests.test_hostile_options import assert_one_line_error, run_cli

    common = (str(growing_stream), "--alert", QUERY, "--timeout", "2")
    rc, _, err = run_cli(capsys, "watch", *common, "--out", str(tmp_path / "a"), "--grounder", "hf")
    assert_one_line_error(rc, err, "--grounder hf needs --grounder-model")
    model = str(tiny_models["qwen2_5_vl"])
    argv = (
        *common,
        "--out",
        str(tmp_path / "b"),
        "--grounder",
        "hf",
        "--grounder-model",
        model,
        "--speed",
        "4",
    )
    rc, out, err = run_cli(capsys, "watch", *argv)
    assert rc == 0, err
    ended = json.loads(out.strip().splitlines()[-1])
    assert ended["channel"] == "ended" and ended["data"]["visual_calls"] >= 1, ended
    assert ended["data"]["visual_failed"] == 0, ended  # the model answered (malformed answers are counted)
