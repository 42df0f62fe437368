"""The SFT recipe end to end on CPU with the tiny random-weight Qwen2.5-VL.

Data: real Charades-STA *train* annotations of 6 videos paired with generated stand-in videos (see
tests/test_finetune_data.py: the real footage is not available offline). What is proven here is the
machinery — loss goes down, exact resume, QLoRA runs, the adapter loads in HFGrounder and in a live vLLM
server and both answer alike — not grounding quality (a 0.5 M-parameter random model learns little).
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from tests.killed_runs import kill_when, torch_threads, trainer_checkpoint
from tests.test_finetune_data import standin_sft_set

pytestmark = [pytest.mark.integration, pytest.mark.slow]

REPO = Path(__file__).resolve().parents[1]
LORA_CONFIG = REPO / "finetune" / "configs" / "tiny_qwen2_5_vl_lora.yaml"
QLORA_CONFIG = REPO / "finetune" / "configs" / "tiny_qwen2_5_vl_qlora.yaml"
CLI = REPO / ".venv" / "bin" / "grounding-agent"
CLIP = "univtg_charades_Y1HGC.mp4"
SAMPLING = {"fps": 1.0, "max_frames": 4, "max_pixels": 112 * 112}


@pytest.fixture(scope="module", autouse=True)
def one_torch_thread():
    with torch_threads(1):
        yield


@pytest.fixture(scope="module")
def sft_dir(shared_data, tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("ft")
    manifest = standin_sft_set(shared_data, root)
    assert manifest["counts"]["rejected"] == 0
    return root / "sft"


def overrides(model: Path, sft: Path, out: Path, *extra: str) -> list[str]:
    return [
        f"model.name_or_path={model}",
        f"data.train={sft / 'train.jsonl'}",
        f"data.val={sft / 'val.jsonl'}",
        f"training.output_dir={out}",
        *extra,
    ]


def run_recipe(config: Path, args: list[str], out: Path) -> dict:
    """Run the recipe in this process (as `python finetune/sft.py CONFIG ARGS...`); its card."""
    from finetune.sft import main

    assert main([str(config), *args]) == 0
    return json.loads((out / "adapter" / "training_card.json").read_text())


@pytest.fixture(scope="module")
def lora_run(tiny_models, sft_dir, tmp_path_factory) -> tuple[Path, dict]:
    """The uninterrupted 20-step LoRA run (eval hook on)."""
    out = tmp_path_factory.mktemp("lora") / "run"
    card = run_recipe(LORA_CONFIG, overrides(tiny_models["qwen2_5_vl"], sft_dir, out), out)
    return out, card


def test_lora_20_steps_loss_goes_down_adapter_card_and_eval(lora_run, sft_dir):
    out, card = lora_run
    adapter = out / "adapter"
    assert card["steps"] == 20 and [s for s, _ in card["losses"]] == list(range(1, 21))
    first5 = sum(loss for _, loss in card["losses"][:5]) / 5
    last5 = sum(loss for _, loss in card["losses"][-5:]) / 5
    assert last5 < first5, card["losses"]
    assert (adapter / "adapter_config.json").is_file() and (adapter / "adapter_model.safetensors").is_file()
    assert json.loads((adapter / "adapter_config.json").read_text())["peft_type"] == "LORA"
    assert card["prompt"] == ["grounding@1"] and card["method"] == "lora"
    assert card["data"]["train_samples"] == sum(1 for _ in open(sft_dir / "train.jsonl"))
    # Eval hook: the held-out split grounded with the saved adapter, metrics next to it.
    metrics = json.loads((adapter / "eval_metrics.json").read_text())
    val_n = sum(1 for _ in open(sft_dir / "val.jsonl"))
    assert metrics["queries"] == val_n and set(metrics["metrics"]) >= {"R1@0.5", "R1@0.7", "mIoU"}
    preds = [json.loads(line) for line in open(adapter / "eval_predictions.jsonl")]
    assert len(preds) == val_n and all(p["grounder"]["adapter"] == str(adapter) for p in preds)
    assert "base_model:" in (adapter / "README.md").read_text()


def test_killed_at_step_10_resumes_to_the_same_loss(lora_run, tiny_models, sft_dir, tmp_path):
    """SIGKILL the CLI-launched recipe once checkpoint-10 exists, resume, compare with the full run."""
    _, uninterrupted = lora_run
    out = tmp_path / "run"
    args = overrides(tiny_models["qwen2_5_vl"], sft_dir, out, "eval.after_training=false")
    proc = kill_when([str(CLI), "finetune", str(LORA_CONFIG), *args], trainer_checkpoint(out, 10))
    assert proc.returncode == -signal.SIGKILL and not (out / "adapter").exists()

    resumed = run_recipe(LORA_CONFIG, args, out)  # resume: auto -> the latest checkpoint
    assert resumed["resumed_from"] is not None and Path(resumed["resumed_from"]).name.startswith(
        "checkpoint-"
    )
    assert resumed["steps"] == 20
    want, got = dict(uninterrupted["losses"]), dict(resumed["losses"])
    assert sorted(got) == list(range(1, 21))
    for step in range(1, 21):
        assert got[step] == pytest.approx(want[step], rel=1e-5, abs=1e-6), (step, got[step], want[step])


def test_qlora_runs_a_few_steps_on_cpu(tiny_models, sft_dir, tmp_path):
    out = tmp_path / "qlora"
    card = run_recipe(
        QLORA_CONFIG,
        overrides(
            tiny_models["qwen2_5_vl"], sft_dir, out, "training.max_steps=3", "eval.after_training=false"
        ),
        out,
    )
    assert card["method"] == "qlora" and card["steps"] == 3 and card["config"]["quant"]["bits"] == 4
    assert all(loss == loss and loss > 0 for _, loss in card["losses"])  # finite, positive
    assert (out / "adapter" / "adapter_model.safetensors").is_file()


@pytest.fixture(scope="module")
def adapter_server(lora_run, tiny_models):
    """A live vLLM CPU server with the trained adapter registered as `ft-tiny`."""
    from grounding_agent.errors import ServerError
    from grounding_agent.grounders.serving import VLLMServer

    server = VLLMServer(
        tiny_models["qwen2_5_vl"], served_model_name="tiny-base", loras={"ft-tiny": lora_run[0] / "adapter"}
    )
    try:
        server.start(timeout_s=400)
    except ServerError as exc:
        pytest.fail(f"vLLM server did not start: {exc}\n{server.log_tail()}")
    yield server
    server.stop()


def test_adapter_same_greedy_answer_in_hf_and_vllm(lora_run, adapter_server, tiny_models, real_clips):
    """Same frames (PNG: bit-identical pixels), same timestamped-image request, greedy, both backends."""
    from grounding_agent.grounders.hf import HFGrounder
    from grounding_agent.grounders.vllm import VLLMGrounder
    from grounding_agent.media.decode import sample_frames
    from grounding_agent.media.video import open_video

    video = open_video(real_clips[CLIP])
    frames = sample_frames(video, **SAMPLING)
    query = "a person walks in a doorway drinking some coffee."
    hf = HFGrounder(
        str(tiny_models["qwen2_5_vl"]), adapter=str(lora_run[0] / "adapter"), mode="images", max_new_tokens=16
    )
    served = VLLMGrounder(adapter_server.base_url, "ft-tiny", image_format="png", max_tokens=16, **SAMPLING)
    base = VLLMGrounder(adapter_server.base_url, "tiny-base", image_format="png", max_tokens=16, **SAMPLING)
    a, b, c = (g.ground(video, query, frames=frames) for g in (hf, served, base))
    assert a.raw_text == b.raw_text, (a.raw_text, b.raw_text)
    assert [(m.start_s, m.end_s) for m in a.moments] == [(m.start_s, m.end_s) for m in b.moments]
    # The adapter is really applied by the server: the base model answers differently.
    assert c.raw_text != b.raw_text, "the served adapter did not change the base model's answer"


def test_ground_cli_uses_the_served_adapter(adapter_server, real_clips):
    clip = real_clips[CLIP]
    cmd = [
        str(CLI), "ground", str(clip), "person drinking a glass of water.", "--backend", "vllm",
        "--server", adapter_server.base_url, "--adapter", "ft-tiny", "--fps", "1", "--max-frames", "4",
        "--max-pixels", str(112 * 112), "--json",
    ]  # fmt: skip
    proc = subprocess.run(
        cmd, capture_output=True, text=True, timeout=300, cwd=REPO, env={**os.environ, "OMP_NUM_THREADS": "1"}
    )
    assert proc.returncode == 0, proc.stderr
    pred = json.loads(proc.stdout)
    assert "ft-tiny" in json.dumps(pred)  # the grounder ran against the adapter's model name
    assert pred["pred_relevant_windows"]
    assert all(0 <= s <= e <= pred["duration_s"] + 1e-6 for s, e, _ in pred["pred_relevant_windows"])


def test_recipe_user_errors_are_one_line(tmp_path):
    bad = tmp_path / "bad.yaml"
    bad.write_text(
        "model: {name_or_path: x}\ndata: {train: x}\ntraining: {output_dir: o, warmup_ratio: 0.1}\n"
    )
    proc = subprocess.run(
        [str(CLI), "finetune", str(bad)], capture_output=True, text=True, timeout=120, cwd=REPO
    )
    last = proc.stderr.strip().splitlines()[-1]
    assert proc.returncode == 2 and last.startswith("error: training section:"), proc.stderr
    assert "Traceback" not in proc.stderr
    proc = subprocess.run([sys.executable, str(REPO / "finetune" / "sft.py"), str(tmp_path / "nope.yaml")],
                          capture_output=True, text=True, timeout=120, cwd=tmp_path)  # fmt: skip
    assert proc.returncode == 2 and "not found" in proc.stderr and "Traceback" not in proc.stderr


@pytest.mark.parametrize("family", ["qwen2_vl", "qwen2_5_vl", "qwen3_vl"])
def test_collator_masks_the_prompt_and_matches_the_grounders_input(family, tiny_models, sft_dir):
    """Labels cover exactly the answer + <|im_end|>; the prompt part is the grounders' own input, exactly."""
    import torch
    from transformers import AutoProcessor

    from finetune.collator import IGNORE_INDEX, GroundingCollator
    from finetune.data import read_samples
    from grounding_agent.grounders.qwen_inputs import build_request, hf_inputs

    processor = AutoProcessor.from_pretrained(tiny_models[family])
    collator = GroundingCollator(processor, family, frame_cache=True)
    samples = read_samples(sft_dir / "train.jsonl")[:2]
    enc = collator.encode(samples[0])
    ids, labels = enc.inputs["input_ids"][0], enc.inputs["labels"][0]
    assert (labels[: enc.prompt_len] == IGNORE_INDEX).all() and (
        labels[enc.prompt_len :] != IGNORE_INDEX
    ).all()
    answer = processor.tokenizer.decode(labels[enc.prompt_len :])
    assert answer == samples[0].target + "<|im_end|>"  # first frame at 0 s: no clock offset here

    request = build_request(collator.frames(samples[0]), samples[0].query, family=family)
    reference = hf_inputs(processor, request)
    assert torch.equal(ids[: enc.prompt_len], reference["input_ids"][0])
    pixels = "pixel_values_videos" if request.mode == "video" else "pixel_values"
    assert torch.equal(enc.inputs[pixels], reference[pixels])

    batch = collator(samples)
    n = max(collator.encode(s).inputs["input_ids"].shape[1] for s in samples)
    assert batch["input_ids"].shape == batch["labels"].shape == batch["attention_mask"].shape == (2, n)
    assert ((batch["labels"] != IGNORE_INDEX).sum(dim=1) > 0).all()


def test_target_follows_the_model_clock():
    """Qwen2.5-VL video mode counts time from the first sampled frame: the target is shifted by it."""
    from finetune.collator import model_time_target
    from finetune.data import SFTSample

    sample = SFTSample(
        id="t:1",
        dataset="t",
        qid=1,
        vid="v",
        video="v.mp4",
        duration_s=30.0,
        query="q",
        windows_s=[[10.0, 20.5]],
        prompt="grounding",
        prompt_version="1",
        target="10.00 - 20.50 seconds",
    )
    assert model_time_target(sample, 0.0, 30.0) == "10.00 - 20.50 seconds"
    assert model_time_target(sample, 0.5, 29.5) == "9.50 - 20.00 seconds"
    assert model_time_target(sample, 12.0, 5.0) == "0.00 - 5.00 seconds"
