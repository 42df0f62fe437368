"""GRPO (TRL `GRPOTrainer`) with LoRA and a temporal-IoU reward: RL-tune a Qwen-VL grounder.

    python finetune/grpo.py finetune/configs/qwen2_5_vl_7b_grpo.yaml [grpo.num_generations=8 ...]
    grounding-agent finetune --recipe grpo finetune/configs/qwen2_5_vl_7b_grpo.yaml       # the same
    accelerate launch --config_file finetune/accelerate/multi_gpu.yaml finetune/grpo.py CONFIG

Steps: base model -> a fresh LoRA, or `model.adapter` (an SFT adapter, trained further) -> prompts built by
the grounders' own request builder (timestamped frames, `data.mode: images`: TRL feeds images to the
processor, and vLLM takes the same) -> per prompt `grpo.num_generations` sampled answers, rewarded with
`reward.iou_weight` x tIoU(parsed answer, GT) + `reward.format_weight` x format (finetune/rewards.py, the
library's parser) -> group-normalised advantages, clipped policy loss (`grpo.epsilon`), KL to the start
model (`grpo.beta`; with an SFT adapter TRL keeps a frozen copy of it as the reference) -> adapter + card
-> the same held-out eval as SFT. Generation is in-process (`model.generate`) by default; on GPUs
`grpo.use_vllm: true` with `grpo.vllm_mode: colocate | server` (TRL's own vLLM integration).
Checkpoints and `resume: auto` work as in SFT (incomplete checkpoints are skipped).
"""

from __future__ import annotations

import json
import logging
import sys
import time
from pathlib import Path
from typing import Any

if __package__ in (None, ""):  # run as `python finetune/grpo.py`: make the checkout importable
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from finetune.config import RecipeConfig, load_config, run_recipe
from finetune.data import SFTSample
from finetune.sft import (
    ADAPTER_DIR,
    DEFAULT_ARGS,
    _free_memory,
    evaluate_adapter,
    family_of_model,
    load_model,
    load_splits,
    make_card,
    resume_checkpoint,
    trainer_is_main,
    write_card,
)
from grounding_agent.errors import ConfigError

log = logging.getLogger("finetune.grpo")

# Our dataset columns (windows_s, durations, ...) must reach the reward functions.
FORCED_ARGS = {"remove_unused_columns": False}
GRPO_DEFAULTS = {"num_generations": 4, "max_completion_length": 32, "beta": 0.0, "epsilon": 0.2}


def grpo_arguments(cfg: RecipeConfig) -> Any:
    """trl.GRPOConfig from the `training` section (TrainingArguments keys) + the `grpo` section."""
    import torch

    try:
        from trl import GRPOConfig
    except ImportError:
        raise ConfigError("the GRPO recipe needs TRL: pip install -e '.[train]'") from None
    values = {**DEFAULT_ARGS, **GRPO_DEFAULTS, **cfg.training, **cfg.grpo, **FORCED_ARGS}
    values["reward_weights"] = [cfg.reward.iou_weight, cfg.reward.format_weight]
    if not torch.cuda.is_available():
        values.update(bf16=False, fp16=False, use_vllm=False)  # a GPU config run on CPU for a smoke test
    try:
        return GRPOConfig(**values)
    except (TypeError, ValueError) as exc:
        raise ConfigError(f"training/grpo sections: {exc}") from None


class PromptBuilder:
    """SFT sample -> one GRPO row: the chat prompt (system + timestamped frames + query, exactly what
    `HFGrounder` sends in images mode) and the columns the rewards read."""

    def __init__(self, cfg: RecipeConfig, family: str):
        self.cfg, self.family = cfg, family
        if (cfg.data.mode or "images") != "images":
            raise ConfigError(
                "the GRPO recipe needs data.mode: images (TRL passes frames to the model as images)"
            )

    def row(self, sample: SFTSample) -> dict[str, Any]:
        from PIL import Image

        from finetune.collator import sample_frames_for
        from grounding_agent.grounders.qwen_inputs import build_request

        d = self.cfg.data
        frames = sample_frames_for(sample, d.fps, d.max_frames, d.max_pixels, d.frame_cache)
        request = build_request(
            frames, sample.query, family=self.family, mode="images", prompt=d.prompt, top_k=1
        )  # type: ignore[arg-type]
        content: list[dict[str, Any]] = []
        for kind, value in request.parts:
            if kind == "text":
                content.append({"type": "text", "text": value})
            else:
                content.append({"type": "image", "image": Image.fromarray(frames.pixels[value])})
        return {
            "prompt": [
                {"role": "system", "content": [{"type": "text", "text": request.system}]},
                {"role": "user", "content": content},
            ],
            "windows_s": sample.windows_s,
            "model_duration_s": request.model_duration_s,
            "time_offset_s": request.time_offset_s,
            "reasoning": d.prompt == "reasoning",
        }

    def __call__(self, batch: dict[str, list[Any]]) -> dict[str, list[Any]]:
        """`datasets.Dataset.with_transform` hook: rows are built when read, so frames never go to disk."""
        rows = [self.row(SFTSample.from_dict(json.loads(s))) for s in batch["sample"]]
        return {key: [r[key] for r in rows] for key in rows[0]}


def grpo_dataset(samples: list[SFTSample], builder: PromptBuilder) -> Any:
    from datasets import Dataset

    table = Dataset.from_dict({"sample": [json.dumps(s.to_dict()) for s in samples]})
    return table.with_transform(builder)


def train(cfg: RecipeConfig) -> dict[str, Any]:
    """Run the recipe; returns the card (also written to OUTPUT_DIR/adapter/training_card.json)."""
    from transformers import set_seed
    from trl import GRPOTrainer

    from finetune.rewards import format_reward, iou_reward

    args = grpo_arguments(cfg)
    set_seed(args.seed)
    train_samples, val_samples = load_splits(cfg)
    model, processor = load_model(cfg)
    builder = PromptBuilder(cfg, family_of_model(model))
    trainer = GRPOTrainer(
        model=model,
        reward_funcs=[iou_reward, format_reward],
        args=args,
        train_dataset=grpo_dataset(train_samples, builder),
        processing_class=processor,
    )
    resume = resume_checkpoint(cfg)
    t0 = time.perf_counter()
    result = trainer.train(resume_from_checkpoint=resume)
    seconds = time.perf_counter() - t0
    adapter_dir = cfg.output_dir / ADAPTER_DIR
    if trainer.is_world_process_zero():
        trainer.save_model(str(adapter_dir))
        processor.save_pretrained(str(adapter_dir))
    card = make_card(cfg, trainer, result, train_samples, val_samples, resume, seconds)
    card["method"] = "grpo"
    card["rewards"] = step_rewards(trainer.state.log_history)
    del trainer, model
    _free_memory()
    if not trainer_is_main():
        return card
    write_card(adapter_dir, card)
    if cfg.eval.after_training and val_samples:
        card["eval"] = evaluate_adapter(cfg, adapter_dir, val_samples)
        write_card(adapter_dir, card)
    return card


def step_rewards(log_history: list[dict[str, Any]]) -> list[tuple[int, float]]:
    """(step, mean total reward of the step's completions), one per logged step."""
    return [(int(row["step"]), float(row["reward"])) for row in log_history if "reward" in row]


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if not argv or argv[0] in ("-h", "--help"):
        print(__doc__)
        return 0 if argv else 2
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    cfg = load_config(argv[0], argv[1:])
    card = train(cfg)
    rewards = [r for _, r in card["rewards"]]
    k = min(5, len(rewards) // 2) or 1
    summary = {
        "steps": card["steps"],
        "reward_first_mean": sum(rewards[:k]) / k if rewards else None,
        "reward_last_mean": sum(rewards[-k:]) / k if rewards else None,
        "adapter": str(cfg.output_dir / ADAPTER_DIR),
    }
    if "eval" in card:
        summary["eval"] = card["eval"]["metrics"]
    print(json.dumps(summary, indent=2))
    return 0


if __name__ == "__main__":
    run_recipe(main)
