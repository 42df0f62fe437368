"""GRPO recipe pieces: rewards (the library's parser), the synthetic task, GRPO prompts = grounder inputs,
config hardening, and resume that skips checkpoints whose save was killed. Fast (seconds); the recipe runs
are in tests/test_finetune_synthetic.py (slow)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from finetune.config import load_config
from finetune.rewards import answer_iou, completion_text, format_reward, format_score, iou_reward
from finetune.synthetic import SyntheticSpec, draw_events, make_synthetic, render
from grounding_agent.errors import ConfigError

REPO = Path(__file__).resolve().parents[1]
GRPO_CONFIG = REPO / "finetune" / "configs" / "tiny_qwen2_5_vl_grpo.yaml"


# --- rewards -------------------------------------------------------------------------------------------


def test_iou_reward_reads_answers_like_the_eval():
    gt = [[2.0, 6.0]]
    assert answer_iou("2.00 - 6.00 seconds", gt, 8.0, 0.0) == 1.0
    assert answer_iou("4.00 - 6.00 seconds", gt, 8.0, 0.0) == pytest.approx(0.5)
    assert answer_iou("1.00 - 5.00 seconds", gt, 8.0, 1.0) == 1.0  # model time + offset = video time
    assert answer_iou("no idea", gt, 8.0, 0.0) == 0.0
    assert answer_iou("<think>2 - 3</think><answer>2.0 - 6.0 seconds</answer>", gt, 8.0, 0.0) == 1.0
    assert answer_iou("6 - 2 seconds", gt, 8.0, 0.0) == 1.0  # the parser swaps a reversed span, as in eval
    assert answer_iou("2 - 60 seconds", gt, 8.0, 0.0) == pytest.approx(4 / 6)  # clamped to the video
    # TRL's conversational completions are message lists; the reward reads the assistant's text.
    rows = [[{"role": "assistant", "content": "2.00 - 6.00 seconds"}], "4.00 - 6.00 seconds", [], None]
    got = iou_reward(rows, windows_s=[gt] * 4, model_duration_s=[8.0] * 4, time_offset_s=[0.0] * 4)
    assert got == pytest.approx([1.0, 0.5, 0.0, 0.0])
    assert completion_text([{"role": "assistant", "content": [{"type": "text", "text": "a"}]}]) == "a"


def test_format_reward_clean_repaired_unparseable_and_reasoning_layout():
    assert format_score("2.00 - 6.00 seconds", 8.0) == 1.0
    assert format_score("6.00 - 2.00 seconds", 8.0) == 0.5  # parsed only after swapping
    assert format_score("2.00 - 60.00 seconds", 8.0) == 0.5  # parsed only after clamping
    assert format_score("seconds seconds", 8.0) == 0.0
    good = "<think>the square shows from 2 s</think> <answer>2.00 - 6.00 seconds</answer>"
    assert format_score(good, 8.0, reasoning=True) == 1.0
    assert format_score("2.00 - 6.00 seconds", 8.0, reasoning=True) == 0.5  # no think/answer layout
    got = format_reward([good, "x"], model_duration_s=[8.0, 8.0], reasoning=[True, True])
    assert got == [1.0, 0.0]


# --- the synthetic task --------------------------------------------------------------------------------


def test_events_are_frame_labels_and_the_square_is_drawn_exactly_then():
    spec = SyntheticSpec(num_train=50, num_val=5)
    events = draw_events(spec, 50, seed=0, prefix="t")
    assert all(0 <= e.start_s < e.end_s <= spec.duration_s - 1 for e in events)
    assert len({(e.start_s, e.end_s) for e in events}) > 10 and len({e.colour for e in events}) == 4
    for event in events[:10]:
        frames = render(event, spec)
        x, y, side = event.box
        shown = [bool((f[y + side // 2, x + side // 2] != event.background).any()) for f in frames]
        assert shown == [event.start_s <= t < event.end_s for t in range(spec.duration_s)]
        assert event.colour in event.query
    assert draw_events(spec, 5, 0, "t") == events[:5]  # seeded
    assert {e.vid for e in draw_events(spec, 5, 1, "v")}.isdisjoint({e.vid for e in events})


def test_make_synthetic_writes_decodable_videos_targets_gt_and_reuses_a_matching_set(tmp_path):
    from finetune.collator import sample_frames_for
    from finetune.data import read_samples
    from grounding_agent.benchmarks.datasets import load_charades_sta
    from grounding_agent.grounders.parsing import parse_moments

    spec = SyntheticSpec(out=str(tmp_path / "syn"), num_train=3, num_val=2)
    paths = make_synthetic(spec)
    train, val = read_samples(paths["train"]), read_samples(paths["val"])
    assert len(train) == 3 and len(val) == 2 and not {s.vid for s in train} & {s.vid for s in val}
    for s in train + val:
        ((start, end),) = s.windows_s
        assert [(m.start_s, m.end_s) for m in parse_moments(s.target, s.duration_s)] == [(start, end)]
        frames = sample_frames_for(s)
        assert list(frames.timestamps_s) == [float(t) for t in range(spec.duration_s)]
        # Decoded pixels: the frames inside the window differ from the background, the others do not.
        spread = frames.pixels.reshape(len(frames), -1, 3).std(axis=1).max(axis=1)
        assert [bool(v > 10) for v in spread] == [start <= t < end for t in range(spec.duration_s)]
    gt = load_charades_sta(paths["test_gt"])  # the eval's own loader reads the Charades-style files
    assert [a.windows_s[0] for a in gt.annotations] == [tuple(s.windows_s[0]) for s in val]
    before = paths["train"].stat().st_mtime_ns
    assert make_synthetic(spec) == paths and paths["train"].stat().st_mtime_ns == before  # reused
    other = make_synthetic(SyntheticSpec(out=spec.out, num_train=4, num_val=2))  # another spec: rebuilt
    assert len(read_samples(other["train"])) == 4


@pytest.mark.parametrize(
    "value, match",
    [
        ("yes", "must be true or a mapping"),
        ({"frames": 3}, "unknown key"),
        ({"duration_s": 1}, "duration_s >= 2"),
    ],
)
def test_synthetic_spec_errors(value, match):
    with pytest.raises(ConfigError, match=match):
        SyntheticSpec.from_config(value)


# --- config hardening (issue 16: a YAML of 42, hello or a list) ----------------------------------------


@pytest.mark.parametrize("text, kind", [("42\n", "int"), ("hello\n", "str"), ("- a\n- b\n", "list")])
def test_a_config_that_is_not_a_mapping_is_one_typed_error(tmp_path, capsys, text, kind):
    from grounding_agent.cli import main

    path = tmp_path / "c.yaml"
    path.write_text(text)
    with pytest.raises(ConfigError, match=f"must be a mapping of sections .*got {kind}$"):
        load_config(path)
    for recipe in ("sft", "grpo"):
        assert main(["finetune", "--recipe", recipe, str(path)]) == 2
        err = capsys.readouterr().err.strip().splitlines()
        want = f"error: {path}: a recipe config must be a mapping of sections (model, data, training, ...)"
        assert err == [f"{want}, got {kind}"]


def test_config_needs_data_unless_synthetic_and_checks_mode(tmp_path):
    path = tmp_path / "c.yaml"
    path.write_text("model: {name_or_path: m}\ndata: {}\ntraining: {output_dir: o}\n")
    with pytest.raises(ConfigError, match="data.train is required"):
        load_config(path)
    assert load_config(path, ["data.synthetic=true"]).data.synthetic is True
    with pytest.raises(ConfigError, match="data.mode must be"):
        load_config(path, ["data.synthetic=true", "data.mode=frames"])
    with pytest.raises(ConfigError, match="section 'grpo' must be a mapping"):
        load_config(path, ["data.synthetic=true", "grpo=3"])


# --- resume skips checkpoints whose save was killed (issue 16) -----------------------------------------


def _checkpoint(root: Path, step: int, state: str | None) -> Path:
    path = root / f"checkpoint-{step}"
    path.mkdir(parents=True)
    (path / "adapter_model.safetensors").write_bytes(b"x")
    if state is not None:
        (path / "trainer_state.json").write_text(state)
    return path


def test_resume_auto_skips_incomplete_checkpoints(tmp_path, caplog):
    from finetune.sft import latest_complete_checkpoint, resume_checkpoint

    out = tmp_path / "run"
    assert latest_complete_checkpoint(out) is None
    good = _checkpoint(out, 10, json.dumps({"global_step": 10}))
    _checkpoint(out, 20, None)  # killed before trainer_state.json was written
    _checkpoint(out, 30, '{"global_step": 3')  # killed while writing it
    _checkpoint(out, 5, json.dumps({"global_step": 5}))
    (out / "checkpoint-x").mkdir()
    assert latest_complete_checkpoint(out) == str(good)
    assert "skipping incomplete checkpoint" in caplog.text and "checkpoint-30" in caplog.text
    cfg = load_config(GRPO_CONFIG, [f"training.output_dir={out}"])
    assert resume_checkpoint(cfg) == str(good)
    cfg.resume = str(out / "checkpoint-20")
    with pytest.raises(ConfigError, match="not a complete Trainer checkpoint"):
        resume_checkpoint(cfg)
    cfg.resume = False
    assert resume_checkpoint(cfg) is None


# --- GRPO config and prompts --------------------------------------------------------------------------


@pytest.mark.parametrize("name", ["tiny_qwen2_5_vl_grpo", "qwen2_5_vl_7b_grpo", "qwen3_vl_8b_grpo"])
def test_grpo_configs_build_trl_arguments(name):
    from finetune.grpo import grpo_arguments

    path = REPO / "finetune" / "configs" / f"{name}.yaml"
    text = path.read_text()
    assert "# Launch" in text and f"--recipe grpo finetune/configs/{name}.yaml" in text
    cfg = load_config(path, ["training.output_dir=o"])
    args = grpo_arguments(cfg)
    assert args.remove_unused_columns is False and args.use_vllm is False  # CPU here: in-process generation
    assert args.num_generations == cfg.grpo["num_generations"] and args.beta == cfg.grpo["beta"]
    assert args.epsilon == cfg.grpo["epsilon"] and args.reward_weights == [1.0, 0.2]
    assert cfg.data.mode == "images"
    if not name.startswith("tiny"):
        assert cfg.grpo["use_vllm"] is True and cfg.data.prompt == "reasoning"
        assert args.activation_checkpointing


@pytest.mark.parametrize("prompt", ["grounding", "reasoning"])
def test_grpo_prompt_is_the_grounders_input(tiny_models, tmp_path, prompt):
    """What TRL tokenises for a GRPO row (processor.apply_chat_template on messages with images) is the
    HFGrounder's images-mode input, token for token and pixel for pixel."""
    import torch
    from transformers import AutoProcessor

    from finetune.collator import sample_frames_for
    from finetune.data import read_samples
    from finetune.grpo import PromptBuilder, grpo_dataset
    from grounding_agent.grounders.qwen_inputs import build_request, hf_inputs

    model = tiny_models["qwen2_5_vl"]
    paths = make_synthetic(SyntheticSpec(out=str(tmp_path / "syn"), num_train=2, num_val=1))
    cfg = load_config(GRPO_CONFIG, [f"model.name_or_path={model}", f"data.prompt={prompt}"])
    samples = read_samples(paths["train"])
    rows = grpo_dataset(samples, PromptBuilder(cfg, "qwen2_5_vl"))
    row = rows[1]
    assert row["windows_s"] == samples[1].windows_s and row["reasoning"] == (prompt == "reasoning")
    processor = AutoProcessor.from_pretrained(model)
    trl_side = processor.apply_chat_template(
        conversation=[row["prompt"]], add_generation_prompt=True, tokenize=True, return_dict=True,
        return_tensors="pt",
    )  # fmt: skip
    request = build_request(sample_frames_for(samples[1]), samples[1].query, family="qwen2_5_vl",
                            mode="images", prompt=prompt)  # fmt: skip
    grounder_side = hf_inputs(processor, request)
    assert torch.equal(trl_side["input_ids"], grounder_side["input_ids"])
    assert torch.equal(trl_side["pixel_values"], grounder_side["pixel_values"])
    assert torch.equal(trl_side["image_grid_thw"], grounder_side["image_grid_thw"])
    with pytest.raises(ConfigError, match="data.mode: images"):
        PromptBuilder(load_config(GRPO_CONFIG, ["data.mode=video"]), "qwen2_5_vl")


def test_blind_prior_on_the_synthetic_task_is_the_floor(tmp_path):
    from finetune.synthetic import evaluate

    paths = make_synthetic(SyntheticSpec(out=str(tmp_path / "syn"), num_train=40, num_val=8))
    result = evaluate(paths["train"].parent, prior=True)
    assert result["queries"] == 8 and result["parse_failures"] == 0
    assert 0.0 < result["metrics"]["mIoU"] < 60.0  # it cannot see the square: far from perfect
    assert np.isfinite(list(result["metrics"].values())).all()
