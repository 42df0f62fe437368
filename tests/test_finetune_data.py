"""SFT data: converters (every target round-trips through the parser), validation, split, configs, CLI glue.

Real annotations only. The fine-tuning set used here and in test_finetune.py pairs *real* Charades-STA
**train** lines (6 videos, 15 queries) with **generated stand-in videos**: the real footage of those
videos is not available offline (the two shared Charades clips are in the *test* split). Each stand-in has
the annotated duration and shows a coloured box exactly during each annotated window, so the time
signal exists in the pixels; it is still synthetic footage, which we say wherever results are reported.
"""

from __future__ import annotations

import importlib
import json
import random
import re
from pathlib import Path

import pytest

from finetune.config import apply_overrides, load_config
from finetune.data import (
    Sampling,
    SFTSample,
    build,
    check_sample,
    convert,
    read_samples,
    split_by_video,
    to_sample,
    validate,
)
from grounding_agent.benchmarks.datasets import load_charades_sta, load_qvhighlights
from grounding_agent.errors import ConfigError
from grounding_agent.grounders.parsing import parse_moments
from tests.videogen import make_video

REPO = Path(__file__).resolve().parents[1]
CONFIGS = sorted((REPO / "finetune" / "configs").glob("*.yaml"))
RECIPE_OF = {p: (re.findall(r"--recipe ([\w-]+)", p.read_text()) or ["sft"])[0] for p in CONFIGS}
# GRPO ones: tests/test_finetune_grpo.py; highlight heads' (vcl, taohighlight, less-is-more, engagement) below.
SFT_CONFIGS = [p for p in CONFIGS if RECIPE_OF[p] == "sft"]
HEAD_CONFIGS = [p for p in CONFIGS if RECIPE_OF[p] not in ("sft", "grpo")]
# Real Charades-STA train videos (<= 31 s, 2-3 queries each) whose annotations the stand-ins carry.
STANDIN_VIDS = ["372CC", "HWYTN", "MLBTH", "IR31O", "KX8VW", "HPEE5"]
COLOURS = ["red", "yellow", "blue", "white"]


def charades_train(shared: Path) -> Path:
    return shared / "charades_sta" / "charades_sta_train.txt"


def make_standin_videos(shared: Path, out_dir: Path, vids: list[str] = STANDIN_VIDS) -> Path:
    """One generated video per vid: the annotated duration, a box drawn during each GT window."""
    anns = [a for a in load_charades_sta(charades_train(shared)).annotations if a.vid in vids]
    out_dir.mkdir(parents=True, exist_ok=True)
    for vid in vids:
        mine = [a for a in anns if a.vid == vid]
        windows = sorted({w for a in mine for w in a.windows_s})
        boxes = ",".join(
            f"drawbox=x={20 + 30 * i}:y=20:w=40:h=40:color={COLOURS[i % 4]}:t=fill"
            f":enable='between(t,{s},{e})'"
            for i, (s, e) in enumerate(windows)
        )
        make_video(out_dir / f"{vid}.mp4", duration_s=mine[0].duration_s, fps=4, size=(160, 120), gop=8,
                   extra=("-vf", boxes))  # fmt: skip
    return out_dir


def standin_sft_set(shared: Path, root: Path, *, val_fraction: float = 0.3) -> dict:
    """Stand-in videos + the SFT jsonl files for them under `root`; returns the manifest."""
    videos = make_standin_videos(shared, root / "videos")
    return build(
        "charades-sta", charades_train(shared), videos, root / "sft",
        sampling=Sampling(fps=1.0, max_frames=4, max_pixels=112 * 112), val_fraction=val_fraction, seed=0,
        vids=STANDIN_VIDS,
    )  # fmt: skip


@pytest.fixture(scope="module")
def standin(shared_data, tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("standin")
    standin_sft_set(shared_data, root)
    return root


# --- converters ------------------------------------------------------------------------------------


def test_every_charades_train_target_parses_back(shared_data):
    data = load_charades_sta(charades_train(shared_data))
    assert len(data) == 12404  # 12408 lines minus the 4 inverted ones (SOURCES.md)
    for ann in data.annotations:
        sample = to_sample(ann, "charades-sta", "unused.mp4", Sampling())
        got = [[m.start_s, m.end_s] for m in parse_moments(sample.target, sample.duration_s)]
        assert got == sample.windows_s, (ann.qid, sample.target)
        assert check_sample(sample, None) is None


def test_every_qvhighlights_window_target_parses_back(shared_data):
    data = load_qvhighlights(shared_data / "qvhighlights" / "highlight_val_release.jsonl")
    multi = 0
    for ann in data.annotations:
        sample = to_sample(ann, "qvhighlights", "unused.mp4", Sampling())
        moments = parse_moments(sample.target, sample.duration_s)
        assert [[m.start_s, m.end_s] for m in moments] == sample.windows_s, (ann.qid, sample.target)
        multi += sample.prompt == "multi"
        assert sample.prompt == ("multi" if len(ann.windows_s) > 1 else "grounding")
    assert multi > 100  # several-window queries use the multi-moment prompt (K = number of windows)


def test_sample_fields_and_json_round_trip(shared_data):
    ann = load_charades_sta(charades_train(shared_data)).annotations[0]
    sample = to_sample(ann, "charades-sta", "/v/AO8RW.mp4", Sampling(fps=2.0, max_frames=32))
    assert sample.id == "charades-sta:0" and sample.vid == "AO8RW" and sample.query == ann.query
    assert sample.target == "0.00 - 6.90 seconds"
    assert sample.sampling == {"fps": 2.0, "max_frames": 32, "max_pixels": None}
    assert SFTSample.from_dict(json.loads(json.dumps(sample.to_dict()))) == sample


# --- validation ------------------------------------------------------------------------------------


def _sample(**changes) -> SFTSample:
    base = dict(
        id="t:1", dataset="t", qid=1, vid="v", video="v.mp4", duration_s=30.0, query="a person sits.",
        windows_s=[[1.0, 5.0]], prompt="grounding", prompt_version="1", target="1.00 - 5.00 seconds",
    )  # fmt: skip
    return SFTSample(**{**base, **changes})


@pytest.mark.parametrize(
    "changes, video_s, reason",
    [
        ({"windows_s": [[1.0, 31.0]], "target": "1.00 - 31.00 seconds"}, None, "not inside"),
        ({"windows_s": [[5.0, 5.0]], "target": "5.00 - 5.00 seconds"}, None, "not inside"),
        ({"query": "  "}, None, "empty query"),
        ({"target": "1.00 - 6.00 seconds"}, None, "does not parse back"),
        ({}, 3.0, "video file lasts"),
    ],
)
def test_check_sample_rejects(changes, video_s, reason):
    assert reason in check_sample(_sample(**changes), video_s)


def test_validate_rejects_unreadable_and_short_videos(tmp_path):
    good = make_video(tmp_path / "good.mp4", duration_s=6.0, fps=4)
    short = make_video(tmp_path / "short.mp4", duration_s=2.0, fps=4)
    empty = tmp_path / "empty.mp4"
    empty.write_bytes(b"")
    samples = [
        _sample(id="a", video=str(good), duration_s=6.0),
        _sample(id="b", video=str(short), duration_s=6.0),
        _sample(id="c", video=str(empty), duration_s=6.0),
    ]
    kept, rejects = validate(samples)
    assert [s.id for s in kept] == ["a"]
    reasons = {r["id"]: r["reason"] for r in rejects}
    assert "video file lasts" in reasons["b"]
    assert reasons["c"].startswith("unreadable video")


# --- split -----------------------------------------------------------------------------------------


def test_split_is_by_video_deterministic_and_order_free(shared_data):
    anns = load_charades_sta(charades_train(shared_data)).annotations[:600]
    samples = [to_sample(a, "charades-sta", f"{a.vid}.mp4", Sampling()) for a in anns]
    train, val = split_by_video(samples, 0.1, seed=3)
    assert {s.vid for s in train}.isdisjoint({s.vid for s in val})
    assert len(train) + len(val) == len(samples) and 0.03 < len(val) / len(samples) < 0.2
    shuffled = samples[:]
    random.Random(0).shuffle(shuffled)
    train2, val2 = split_by_video(shuffled, 0.1, seed=3)
    assert {s.id for s in val2} == {s.id for s in val}
    assert {s.id for s in split_by_video(samples, 0.1, seed=4)[1]} != {s.id for s in val}
    with pytest.raises(ConfigError):
        split_by_video(samples, 1.0)


def test_build_standin_set(standin):
    manifest = json.loads((standin / "sft" / "manifest.json").read_text())
    train, val = read_samples(standin / "sft" / "train.jsonl"), read_samples(standin / "sft" / "val.jsonl")
    assert manifest["counts"] == {"train": len(train), "val": len(val), "rejected": 0}
    assert len(train) + len(val) == 15 and train and val
    assert manifest["prompts"] == ["grounding@1"]
    assert all(Path(s.video).is_file() and s.sampling["max_frames"] == 4 for s in train + val)


def test_convert_records_missing_videos(shared_data, tmp_path):
    samples, rejects = convert("charades-sta", charades_train(shared_data), tmp_path, vids=["AO8RW"])
    assert samples == [] and rejects and all(r["reason"] == "video file not found" for r in rejects)


# --- configs and CLI glue --------------------------------------------------------------------------


@pytest.mark.parametrize("path", HEAD_CONFIGS, ids=[p.stem for p in HEAD_CONFIGS])
def test_every_highlight_head_config_loads_with_its_recipe(path):
    from finetune import rank_common, vcl_tao_train
    from grounding_agent.cli.finetune import RECIPES

    recipe = RECIPE_OF[path]
    assert recipe in RECIPES and f"finetune/configs/{path.name}" in path.read_text()
    overrides = [f"training.output_dir={path.stem}"]
    if recipe in ("vcl", "taohighlight"):
        module = importlib.import_module(f"finetune.{recipe}")
        cfg = vcl_tao_train.load_run_config(path, overrides, module.DEFAULTS)
    else:
        cfg = rank_common.load_rank_config(recipe, path, overrides)
    assert cfg is not None


@pytest.mark.parametrize("path", SFT_CONFIGS, ids=[p.stem for p in SFT_CONFIGS])
def test_every_config_loads_and_builds_training_arguments(path):
    from finetune.sft import training_arguments

    text = path.read_text()
    assert "# Launch" in text and f"finetune/configs/{path.name}" in text  # launch command in the header
    cfg = load_config(path, [f"training.output_dir={path.stem}"])
    args = training_arguments(cfg)
    # The synthetic task's tiny model is too small for checkpointing to pay; every other config uses it.
    assert args.remove_unused_columns is False and (args.activation_checkpointing or cfg.data.synthetic)
    assert cfg.lora.language_model_only and ("qlora" in path.stem) == (cfg.quant is not None)


def test_config_errors_and_overrides(tmp_path):
    cfg = CONFIGS[0]
    assert apply_overrides({"a": {"b": 1}}, ["a.b=2", "a.c=[x, y]", "d.e=null"]) == {
        "a": {"b": 2, "c": ["x", "y"]},
        "d": {"e": None},
    }
    with pytest.raises(ConfigError, match="unknown key"):
        load_config(cfg, ["lora.rank=4"])
    with pytest.raises(ConfigError, match="section.key=value"):
        load_config(cfg, ["max_steps"])
    with pytest.raises(ConfigError, match="not found"):
        load_config(tmp_path / "nope.yaml")


def test_finetune_cli_needs_the_checkout(monkeypatch, tmp_path):
    import grounding_agent
    from grounding_agent.cli.finetune import recipe_path

    assert recipe_path() == REPO / "finetune" / "sft.py"
    monkeypatch.setattr(
        grounding_agent, "__file__", str(tmp_path / "site-packages" / "grounding_agent" / "__init__.py")
    )
    import importlib.util  # neither the checkout nor an installed wheel's `finetune` package

    monkeypatch.setattr(importlib.util, "find_spec", lambda name: None)
    with pytest.raises(ConfigError, match="source checkout"):
        recipe_path()


def test_cost_estimate_for_the_readme():
    from finetune.estimate import estimate

    lora, qlora = estimate("qwen2_5_vl_7b"), estimate("qwen2_5_vl_7b", quant_4bit=True)
    assert (
        6.4 < lora.llm_params_b < 6.7 and 0.6 < lora.vision_params_b < 0.7
    )  # Qwen2.5-7B: 6.53 B non-embedding
    assert lora.total_gb < 80 and qlora.total_gb < lora.total_gb
    assert lora.llm_tokens == 16 * 128 + 90  # 32 frames -> 16 temporal patches x 128 merged tokens + text


def test_accelerate_config_is_valid():
    from accelerate.commands.config.config_args import load_config_from_file

    path = REPO / "finetune" / "accelerate" / "multi_gpu.yaml"
    cfg = load_config_from_file(str(path))
    assert cfg.distributed_type.value == "MULTI_GPU" and cfg.mixed_precision == "bf16"
    assert (
        "accelerate launch --config_file finetune/accelerate/multi_gpu.yaml finetune/sft.py"
        in path.read_text()
    )
