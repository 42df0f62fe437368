"""The GRPO recipe end to end on CPU, and the learning table: on the synthetic task (finetune/synthetic.py)
SFT beats the blind prior by a clear margin and GRPO after SFT does not fall below SFT.

Slow: the learning test trains for several minutes (finetune/README.md has the table and its commands).
"""

from __future__ import annotations

import json
import shutil
import signal
from pathlib import Path

import pytest

from tests.killed_runs import kill_when, torch_threads, trainer_checkpoint

pytestmark = [pytest.mark.integration, pytest.mark.slow]

REPO = Path(__file__).resolve().parents[1]
GRPO_CONFIG = REPO / "finetune" / "configs" / "tiny_qwen2_5_vl_grpo.yaml"
SFT_CONFIG = REPO / "finetune" / "configs" / "tiny_qwen2_5_vl_synthetic_sft.yaml"
CLI = REPO / ".venv" / "bin" / "grounding-agent"


@pytest.fixture(scope="module", autouse=True)
def one_torch_thread():
    with torch_threads(1):
        yield


def small(model: Path, data: Path, out: Path, *extra: str) -> list[str]:
    """A small synthetic set and a short run: the machinery, not the learning."""
    return [
        f"model.name_or_path={model}",
        f"data.synthetic={{out: {data}, num_train: 16, num_val: 4}}",
        f"training.output_dir={out}",
        *extra,
    ]


def card_of(out: Path) -> dict:
    return json.loads((out / "adapter" / "training_card.json").read_text())


@pytest.fixture(scope="module")
def grpo_root(tmp_path_factory) -> Path:
    return tmp_path_factory.mktemp("grpo")


@pytest.fixture(scope="module")
def sft_adapter(tiny_models, grpo_root) -> Path:
    """A short SFT on the small set, so that GRPO starts from a model whose answers parse (the random
    model's never do: every reward would be 0, every advantage 0, and nothing would train)."""
    from finetune.sft import main

    out = grpo_root / "sft"
    args = small(tiny_models["qwen2_5_vl"], grpo_root / "syn", out, "training.max_steps=60",
                 "training.save_steps=1000", "eval.after_training=false")  # fmt: skip
    assert main([str(SFT_CONFIG), *args]) == 0
    return out / "adapter"


@pytest.fixture(scope="module")
def grpo_run(tiny_models, grpo_root, sft_adapter) -> tuple[Path, Path, dict]:
    """The tiny GRPO config as shipped (4 steps, checkpoints every 2) from the SFT adapter, uninterrupted."""
    from finetune.grpo import main

    out = grpo_root / "run"
    args = small(tiny_models["qwen2_5_vl"], grpo_root / "syn", out, f"model.adapter={sft_adapter}")
    assert main([str(GRPO_CONFIG), *args]) == 0
    return grpo_root, out, card_of(out)


def test_tiny_grpo_config_runs_from_a_fresh_checkout(tiny_models, grpo_root):
    """As shipped: a fresh LoRA on the random model, the synthetic data made by the recipe."""
    from finetune.grpo import main

    out = grpo_root / "fresh"
    args = small(tiny_models["qwen2_5_vl"], grpo_root / "fresh_syn", out, "training.max_steps=2")
    assert main([str(GRPO_CONFIG), *args]) == 0
    card = card_of(out)
    assert card["method"] == "grpo" and card["steps"] == 2 and card["config"]["model"]["adapter"] is None
    assert (grpo_root / "fresh_syn" / "manifest.json").is_file()


def test_tiny_grpo_from_sft_trains_saves_and_evaluates(grpo_run):
    _, out, card = grpo_run
    assert card["method"] == "grpo" and card["steps"] == 4
    assert [s for s, _ in card["rewards"]] == [1, 2, 3, 4]
    rewards = [r for _, r in card["rewards"]]
    assert all(0.0 <= r <= 1.2 for r in rewards) and max(rewards) > 0.2  # iou + 0.2 x format; answers parse
    assert any(loss != 0.0 for _, loss in card["losses"])  # advantages were not all zero: it trained
    assert (out / "adapter" / "adapter_model.safetensors").is_file()
    metrics = json.loads((out / "adapter" / "eval_metrics.json").read_text())
    assert metrics["queries"] == 4 and set(metrics["metrics"]) >= {"R1@0.5", "mIoU"}


def test_grpo_killed_then_resumed_past_an_incomplete_checkpoint_matches_the_uninterrupted_run(
    grpo_run, tiny_models
):
    """SIGKILL the CLI-launched GRPO run once checkpoint-2 exists; plant a checkpoint-3 whose save was
    cut short (no trainer_state.json, as a kill -9 mid-save leaves it); `resume: auto` must skip it,
    continue from checkpoint-2, and log the same per-step rewards and losses as the uninterrupted run."""
    from finetune.grpo import main

    root, _, uninterrupted = grpo_run
    out = root / "killed"
    adapter = f"model.adapter={root / 'sft' / 'adapter'}"
    args = small(tiny_models["qwen2_5_vl"], root / "syn", out, adapter, "eval.after_training=false")
    cmd = [str(CLI), "finetune", "--recipe", "grpo", str(GRPO_CONFIG), *args]
    proc = kill_when(cmd, trainer_checkpoint(out, 2))
    assert proc.returncode == -signal.SIGKILL and not (out / "adapter").exists()
    shutil.rmtree(out / "checkpoint-4", ignore_errors=True)  # if the kill came late, drop what it got to
    shutil.copytree(out / "checkpoint-2", out / "checkpoint-3")
    (out / "checkpoint-3" / "trainer_state.json").unlink()

    assert main([str(GRPO_CONFIG), *args]) == 0
    resumed = card_of(out)
    assert Path(resumed["resumed_from"]).name == "checkpoint-2" and resumed["steps"] == 4
    want, got = dict(uninterrupted["rewards"]), dict(resumed["rewards"])
    assert sorted(got) == [1, 2, 3, 4]  # steps 1-2 come back with the checkpoint's log history
    for step in (1, 2, 3, 4):  # 3-4 were run by the resumed process: the uninterrupted run's values
        assert got[step] == pytest.approx(want[step], rel=1e-5, abs=1e-6), (step, got, want)
    want_loss, got_loss = dict(uninterrupted["losses"]), dict(resumed["losses"])
    for step in (1, 2, 3, 4):
        assert got_loss[step] == pytest.approx(want_loss[step], rel=1e-4, abs=1e-6)


def test_sft_beats_the_prior_and_grpo_does_not_fall_below_sft(tiny_models, tmp_path):
    """The learning table of finetune/README.md, recomputed (same configs, same seeds)."""
    from finetune.grpo import main as grpo_main
    from finetune.sft import main as sft_main
    from finetune.synthetic import evaluate

    model, data = tiny_models["qwen2_5_vl"], tmp_path / "syn"
    sft_out, grpo_out = tmp_path / "sft", tmp_path / "grpo"
    common = [f"model.name_or_path={model}", f"data.synthetic.out={data}"]
    sft_args = [*common, f"training.output_dir={sft_out}", "eval.after_training=false"]
    assert sft_main([str(SFT_CONFIG), *sft_args]) == 0
    assert grpo_main([str(GRPO_CONFIG), *common, *GRPO_AFTER_SFT, f"model.adapter={sft_out / 'adapter'}",
                      f"training.output_dir={grpo_out}", "eval.after_training=false"]) == 0  # fmt: skip
    prior = evaluate(data, prior=True)["metrics"]
    base = evaluate(data, model=str(model))["metrics"]
    sft = evaluate(data, model=str(model), adapter=str(sft_out / "adapter"))["metrics"]
    grpo = evaluate(data, model=str(model), adapter=str(grpo_out / "adapter"))["metrics"]
    table = {"prior": prior, "untuned": base, "sft": sft, "sft+grpo": grpo}
    print(json.dumps({k: {m: round(v, 1) for m, v in t.items()} for k, t in table.items()}))
    assert sft["R1@0.5"] >= prior["R1@0.5"] + 15 and sft["mIoU"] >= prior["mIoU"] + 10, table
    assert base["R1@0.5"] < sft["R1@0.5"], table  # the untuned random model has not learned the task
    # GRPO must not undo SFT. Its effect here is a few of the 64 held-out queries either way, and the runs
    # differ by CPU (same seeds: on an Intel Xeon it gained 0.3 mIoU, on an AMD EPYC it lost 1.7 with
    # R1@0.5 equal): 3 mIoU points is about one standard error of a 64-query mean; a collapse is far more.
    assert grpo["R1@0.5"] >= sft["R1@0.5"] and grpo["mIoU"] >= sft["mIoU"] - 3.0, table


# The GRPO stage of the learning table (also in finetune/README.md).
GRPO_AFTER_SFT = ["training.max_steps=50", "training.save_steps=25"]
