"""Learned highlight heads scored online (`watch --head DIR`): a tiny head trained here on the real tiny
random-weight CLIP, fed a generated stream's frames; its per-clip score equals the offline `head_scores` on
the same frames, and its running z-score is the "head" signal of the hits; a wrong folder or a text head
without a text is refused in one line."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

from grounding_agent.defaults import CLIP_LEN_S, LIVE
from grounding_agent.highlights.head_rank import ClipScorer, head_config, listnet_loss
from grounding_agent.highlights.heads import clip_features, head_scores, load_head, save_head
from grounding_agent.live.online import HeadScorer, OnlineHighlights, RunningStats
from grounding_agent.media.decode import iter_frame_chunks
from grounding_agent.media.video import open_video
from tests.test_hostile_options import assert_one_line_error, run_cli
from tests.videogen import _ffmpeg

DURATION_S = 30.0
FLASH_S = 20.0  # a one-second red flash: the highlight


@pytest.fixture(scope="module")
def stream(tmp_path_factory) -> Path:
    """48x32 (the tiny CLIP's 32-px input: no resize on either path), 10 fps testsrc2, a red flash at 20 s."""
    path = tmp_path_factory.mktemp("livehead") / "head.ts"
    _ffmpeg("-f", "lavfi", "-i", f"testsrc2=s=48x32:r=10:d={DURATION_S}", "-f", "lavfi", "-i",
            f"color=c=red:s=48x32:r=10:d={DURATION_S}", "-filter_complex",
            f"[0][1]overlay=enable='between(t,{FLASH_S},{FLASH_S + 0.99})'", "-c:v", "libx264", "-preset",
            "ultrafast", "-g", "10", "-pix_fmt", "yuv420p", "-threads", "1", "-f", "mpegts", str(path))  # fmt: skip
    return path


@pytest.fixture(scope="module")
def saliency(tiny_models):
    from grounding_agent.highlights.clip import ClipSaliency

    # The fp32 torch backend: onnx-int8 quantises activations per batch, so a frame encoded alone (live) and
    # in a batch of 8 (offline) differ by ~1e-3 there; here the same frames must give the same numbers.
    return ClipSaliency.from_pretrained(tiny_models["clip"], use_cache=False, fps=LIVE.fps, backend="torch")


@pytest.fixture(scope="module")
def rank_head(tmp_path_factory, tiny_models, saliency, stream) -> Path:
    """An engagement head trained (ListNet, 60 steps) to rank the flash's clip first on this stream."""
    feats = torch.from_numpy(clip_features(saliency.embed(stream), open_video(stream).duration_s))
    target = torch.zeros(len(feats))
    target[int(FLASH_S // CLIP_LEN_S)] = 1.0
    torch.manual_seed(0)
    scorer = ClipScorer(feats.shape[1], 8)
    optimiser = torch.optim.Adam(scorer.parameters(), lr=1e-2)
    for _ in range(60):
        optimiser.zero_grad()
        listnet_loss(scorer(feats)[None], target[None]).backward()
        optimiser.step()
    folder = tmp_path_factory.mktemp("heads") / "engagement"
    config = head_config("engagement", str(tiny_models["clip"]), feats.shape[1], 8)
    save_head(folder, config, scorer.eval().state_dict())
    return folder


@pytest.fixture(scope="module")
def vcl_head(tmp_path_factory, tiny_models) -> Path:
    """A VCL head (learned prompts over the tiny CLIP's text tower) at its random initialisation."""
    from grounding_agent.highlights.head_vcl import build

    spec = {"n_prompts": 2, "window": 3, "hidden": 4, "init_std": 0.02}
    torch.manual_seed(0)
    net, _, dim = build(str(tiny_models["clip"]), spec)
    folder = tmp_path_factory.mktemp("heads") / "vcl"
    save_head(folder, {"recipe": "vcl", "clip_model": str(tiny_models["clip"]), "feature_dim": dim, "head": spec},
              net.trainable_state())  # fmt: skip
    return folder


def _online(stream: Path, online: OnlineHighlights) -> list:
    """The stream's frames (sampled at the watch's fps, as the offline path samples them) fed in order."""
    hits = []
    for frames in iter_frame_chunks(stream, fps=LIVE.fps):
        for pixels, t in zip(frames.pixels, frames.timestamps_s, strict=True):
            online.add_frame(pixels, float(t))
            hits += online.poll(float(t))
            assert len(online._bins) <= 2  # constant memory
    return hits + online.poll(DURATION_S + 10.0)


@pytest.mark.parametrize("kind", ["engagement", "vcl"])
def test_online_head_signal_equals_the_offline_head_scores(kind, stream, saliency, rank_head, vcl_head):
    folder, text = (rank_head, None) if kind == "engagement" else (vcl_head, "a red flash")
    head = load_head(folder)
    offline = head_scores(head, saliency, stream, text=text)  # one score per 2-s clip, whole video at once
    # z below any score: every bin that is the highest within delay_s on either side is a hit.
    online = OnlineHighlights(delay_s=1.0, z=-99.0, head=HeadScorer(head, saliency, text))
    hits = _online(stream, online)
    assert len(hits) >= 8
    stats = RunningStats(LIVE.stats_halflife_s / CLIP_LEN_S, 0.01)
    expected_z = [stats.z(float(x)) for x in offline]  # the running z-score, one sample per clip
    for h in hits:
        clip = int(h.start_s // CLIP_LEN_S)
        assert h.head_score == pytest.approx(offline[clip], rel=1e-5, abs=1e-6), (h, clip)
        assert h.signals["head"] == pytest.approx(expected_z[clip], rel=1e-5, abs=1e-3)  # hits round to 3
    assert online.stats["head"].n == len(offline)  # every clip scored once, none twice


def test_the_trained_head_lifts_the_flash(stream, saliency, rank_head):
    """With the default threshold the flash is the highlight and carries the head's (high) z-score."""
    head = HeadScorer(load_head(rank_head), saliency)
    hits = _online(stream, OnlineHighlights(delay_s=2.0, head=head))
    flash = [h for h in hits if FLASH_S <= h.start_s < FLASH_S + 1.0]
    assert flash and flash[0].signals["head"] > 2.5, hits


def test_watch_cli_head_signal_in_highlight_events(stream, rank_head, capsys, tmp_path):
    argv = [str(stream), "--out", str(tmp_path / "w"), "--head", str(rank_head), "--delay-s", "1",
            "--timeout", "1"]  # fmt: skip
    rc, out, err = run_cli(capsys, "watch", *argv)
    assert rc == 0, err
    events = [json.loads(line) for line in out.splitlines()]
    highlights = [e for e in events if e["kind"] == "highlight"]
    assert any(FLASH_S - 0.5 <= e["start_s"] <= FLASH_S + 1.5 for e in highlights), highlights
    for e in highlights:
        assert "head" in e["data"]["signals"] and isinstance(e["data"]["head_score"], float)


def test_watch_cli_refuses_a_head_it_cannot_use(stream, vcl_head, tiny_models, capsys, tmp_path):
    from transformers.utils import logging as hf_logging

    # The CLI process turns transformers' progress bars off before importing it; in this process the
    # fixtures imported it first, so turn them off here (else "Loading weights" lines join stderr).
    hf_logging.disable_progress_bar()
    common = (str(stream), "--timeout", "1")
    rc, _, err = run_cli(
        capsys, "watch", *common, "--out", str(tmp_path / "a"), "--head", str(tmp_path / "no")
    )
    assert_one_line_error(rc, err, "does not exist")
    assert not (tmp_path / "a").exists()  # refused before anything is written
    lora = tiny_models["qwen2_5_vl_lora"]
    rc, _, err = run_cli(capsys, "watch", *common, "--out", str(tmp_path / "b"), "--head", str(lora))
    assert_one_line_error(rc, err, "PEFT adapter")
    rc, _, err = run_cli(capsys, "watch", *common, "--out", str(tmp_path / "c"), "--head", str(vcl_head))
    assert_one_line_error(rc, err, "vcl head scores clips against a text", "--head-text")
    narrow = tmp_path / "narrow"  # a head of 16-d features naming the 32-d tiny CLIP
    save_head(
        narrow, head_config("engagement", str(tiny_models["clip"]), 16, 8), ClipScorer(16, 8).state_dict()
    )
    rc, _, err = run_cli(capsys, "watch", *common, "--out", str(tmp_path / "e"), "--head", str(narrow))
    assert_one_line_error(rc, err, "does not score", "retrain the head")
    rc, _, err = run_cli(capsys, "watch", *common, "--out", str(tmp_path / "d"), "--head", str(vcl_head),
                         "--no-highlights")  # fmt: skip
    assert_one_line_error(rc, err, "--no-highlights")
