"""LoRA / QLoRA supervised fine-tuning of a Qwen-VL model to answer "<start> - <end> seconds".

    python finetune/sft.py finetune/configs/qwen2_5_vl_7b_lora.yaml [training.max_steps=200 lora.r=8 ...]
    grounding-agent finetune finetune/configs/qwen2_5_vl_7b_lora.yaml            # the same, from the CLI
    accelerate launch --config_file finetune/accelerate/multi_gpu.yaml finetune/sft.py CONFIG   # several GPUs

Steps: load base (+ bitsandbytes 4-bit for QLoRA) -> wrap with a PEFT LoRA -> transformers `Trainer` with the
video-aware collator (finetune/collator.py) -> checkpoints every `training.save_steps` (resume: `auto`
picks the latest) -> save the adapter to OUTPUT_DIR/adapter (a PEFT folder that `HFGrounder(adapter=...)`
and `vllm --lora-modules name=DIR` load) with a card -> evaluate the saved adapter on the held-out split
(metrics written next to it).
"""

from __future__ import annotations

import json
import logging
import math
import os
import sys
import time
from pathlib import Path
from typing import Any

if __package__ in (None, ""):  # run as `python finetune/sft.py`: make the checkout importable
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from finetune.config import RecipeConfig, load_config, run_recipe
from finetune.data import SFTSample, read_samples
from grounding_agent.errors import ConfigError, ModelLoadError, VideoError
from grounding_agent.io import write_text_atomic

log = logging.getLogger("finetune.sft")

ADAPTER_DIR = "adapter"
# Forced TrainingArguments: our dataset yields sample dicts the collator turns into model inputs.
FORCED_ARGS = {"remove_unused_columns": False}
DEFAULT_ARGS = {
    "report_to": "none",
    "logging_steps": 1,
    "save_strategy": "steps",
    "activation_checkpointing_kwargs": {"use_reentrant": False},
}


# --- model -----------------------------------------------------------------------------------------


def load_model(cfg: RecipeConfig) -> tuple[Any, Any]:
    """Base model (+ 4-bit for QLoRA) wrapped in a trainable PEFT LoRA, and its processor.

    Raises:
        ModelLoadError: the model or processor cannot be loaded.
        ConfigError: bad dtype / quantization / LoRA settings.
    """
    import torch
    from peft import get_peft_model, prepare_model_for_kbit_training
    from transformers import AutoModelForImageTextToText, AutoProcessor

    m, q = cfg.model, cfg.quant
    kwargs: dict[str, Any] = {"trust_remote_code": m.trust_remote_code}
    if m.dtype != "auto":
        kwargs["dtype"] = _dtype(m.dtype)
    elif not torch.cuda.is_available():
        kwargs["dtype"] = torch.float32  # bf16 matmuls on CPU are slow and lossy; CPU runs are smoke tests
    else:
        kwargs["dtype"] = "auto"
    if m.attn_implementation:
        kwargs["attn_implementation"] = m.attn_implementation
    if q is not None:
        from transformers import BitsAndBytesConfig

        if q.bits != 4:
            raise ConfigError(f"quant.bits must be 4 (QLoRA), got {q.bits}")
        kwargs["quantization_config"] = BitsAndBytesConfig(
            load_in_4bit=True,
            bnb_4bit_quant_type=q.quant_type,
            bnb_4bit_use_double_quant=q.double_quant,
            bnb_4bit_compute_dtype=_dtype(q.compute_dtype),
            llm_int8_skip_modules=list(q.skip_modules),
        )
        kwargs["device_map"] = {"": _local_device()}
    try:
        processor = AutoProcessor.from_pretrained(m.name_or_path, trust_remote_code=m.trust_remote_code)
        model = AutoModelForImageTextToText.from_pretrained(m.name_or_path, **kwargs)
    except (OSError, ValueError, KeyError, ImportError) as exc:
        first = str(exc).splitlines()[0] if str(exc) else ""
        raise ModelLoadError(
            f"cannot load {m.name_or_path!r} ({type(exc).__name__}: {first}); pass a hub id or a local folder"
        ) from exc
    model.config.use_cache = False  # the KV cache is useless in training and conflicts with checkpointing
    gc = bool(cfg.training.get("activation_checkpointing") or cfg.training.get("gradient_checkpointing"))
    if q is not None:
        # Casts norms to fp32 and enables input grads. NB: no no-grad forward on the 4-bit model before
        # training (bitsandbytes then fails on CPU with an in-place-on-leaf error; see machine-facts).
        model = prepare_model_for_kbit_training(
            model, use_gradient_checkpointing=gc, gradient_checkpointing_kwargs={"use_reentrant": False}
        )
    if m.adapter:  # keep training an existing adapter (SFT -> GRPO): same LoRA, same servable layout
        from peft import PeftModel

        try:
            return PeftModel.from_pretrained(model, m.adapter, is_trainable=True), processor
        except (OSError, ValueError) as exc:
            raise ModelLoadError(f"cannot load adapter {m.adapter!r}: {str(exc).splitlines()[0]}") from None
    try:
        model = get_peft_model(model, lora_config(cfg))
    except ValueError as exc:
        raise ConfigError(f"LoRA config does not fit {m.name_or_path}: {exc}") from None
    return model, processor


def lora_config(cfg: RecipeConfig) -> Any:
    """The PEFT LoraConfig of the `lora` section."""
    from peft import LoraConfig

    lora = cfg.lora
    peft_config = LoraConfig(
        r=lora.r,
        lora_alpha=lora.alpha,
        lora_dropout=lora.dropout,
        target_modules=list(lora.target_modules),
        # The vision MLP reuses gate/up/down_proj names; keep it adapter-free so vLLM can serve the LoRA.
        exclude_modules=r".*visual.*" if lora.language_model_only else None,
        bias=lora.bias,
        modules_to_save=list(lora.modules_to_save) if lora.modules_to_save else None,
        task_type="CAUSAL_LM",
    )
    return peft_config


def _dtype(name: str) -> Any:
    import torch

    if name not in ("bfloat16", "float16", "float32"):
        raise ConfigError(f"dtype must be auto, bfloat16, float16 or float32; got {name!r}")
    return getattr(torch, name)


def _local_device() -> Any:
    import torch

    if torch.cuda.is_available():
        return int(os.environ.get("LOCAL_RANK", 0))  # one GPU per process under accelerate/torchrun
    return "cpu"


def family_of_model(model: Any) -> str:
    from grounding_agent.grounders.qwen_inputs import family_of

    return family_of(getattr(model.config, "model_type", ""))


# --- training --------------------------------------------------------------------------------------


def training_arguments(cfg: RecipeConfig) -> Any:
    import torch
    from transformers import TrainingArguments

    values = {**DEFAULT_ARGS, **cfg.training, **FORCED_ARGS}
    if not torch.cuda.is_available():
        values.update(bf16=False, fp16=False)  # a GPU config run on CPU for a smoke test
    try:
        return TrainingArguments(**values)
    except (TypeError, ValueError) as exc:
        raise ConfigError(f"training section: {exc}") from None


class SFTDataset:
    """Map-style dataset over SFT samples (plain dicts; the collator does the work)."""

    def __init__(self, samples: list[SFTSample]):
        self.samples = samples

    def __len__(self) -> int:
        return len(self.samples)

    def __getitem__(self, i: int) -> dict[str, Any]:
        return self.samples[i].to_dict()


def resume_checkpoint(cfg: RecipeConfig) -> str | None:
    """`resume`: auto -> latest *complete* checkpoint-N in output_dir (None if none); a path -> it;
    false -> None. A checkpoint whose save was killed midway is skipped (and logged), never resumed."""
    if cfg.resume in (False, None, "false", "no"):
        return None
    if cfg.resume in ("auto", True, "true"):
        return latest_complete_checkpoint(cfg.output_dir)
    path = Path(str(cfg.resume))
    if not checkpoint_is_complete(path):
        raise ConfigError(
            f"resume={cfg.resume}: not a complete Trainer checkpoint (no readable trainer_state.json); "
            "pick another checkpoint-N or set resume=auto"
        )
    return str(path)


def checkpoint_is_complete(path: Path) -> bool:
    """The Trainer writes trainer_state.json last: a checkpoint with a readable one was saved in full."""
    try:
        state = json.loads((path / "trainer_state.json").read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return False
    return isinstance(state, dict) and "global_step" in state


def latest_complete_checkpoint(output_dir: Path) -> str | None:
    """The highest-numbered complete checkpoint-N in output_dir; incomplete ones are skipped."""
    if not output_dir.is_dir():
        return None
    steps = []
    for child in output_dir.iterdir():
        name, _, step = child.name.partition("-")
        if name == "checkpoint" and step.isdigit() and child.is_dir():
            steps.append((int(step), child))
    for _, path in sorted(steps, reverse=True):
        if checkpoint_is_complete(path):
            return str(path)
        log.warning("skipping incomplete checkpoint %s (no readable trainer_state.json)", path)
    return None


def train(cfg: RecipeConfig) -> dict[str, Any]:
    """Run the recipe; returns the card (also written to OUTPUT_DIR/adapter/training_card.json)."""
    from transformers import Trainer, set_seed

    from finetune.collator import GroundingCollator

    args = training_arguments(cfg)
    set_seed(args.seed)
    train_samples, val_samples = load_splits(cfg)
    model, processor = load_model(cfg)
    collator = GroundingCollator(
        processor, family_of_model(model), mode=cfg.data.mode, fps=cfg.data.fps,
        max_frames=cfg.data.max_frames, max_pixels=cfg.data.max_pixels, frame_cache=cfg.data.frame_cache,
    )  # fmt: skip
    trainer = Trainer(
        model=model,
        args=args,
        train_dataset=SFTDataset(train_samples),
        data_collator=collator,
        processing_class=processor,
    )
    resume = resume_checkpoint(cfg)
    t0 = time.perf_counter()
    result = trainer.train(resume_from_checkpoint=resume)
    seconds = time.perf_counter() - t0
    adapter_dir = cfg.output_dir / ADAPTER_DIR
    if trainer.is_world_process_zero():
        trainer.save_model(str(adapter_dir))  # PEFT: adapter_config.json + adapter_model.safetensors
        processor.save_pretrained(str(adapter_dir))  # servers and users load the exact tokenizer/template
    card = make_card(cfg, trainer, result, train_samples, val_samples, resume, seconds)
    del trainer, model
    _free_memory()
    if not trainer_is_main():
        return card
    write_card(adapter_dir, card)  # before the eval: a failed eval never loses the training record
    if cfg.eval.after_training and val_samples:
        card["eval"] = evaluate_adapter(cfg, adapter_dir, val_samples)
        write_card(adapter_dir, card)
    return card


def load_splits(cfg: RecipeConfig) -> tuple[list[SFTSample], list[SFTSample]]:
    """Train and held-out samples; with `data.synthetic` the synthetic task is built (or reused) first
    and `data.train` / `data.val` point at it."""
    if cfg.data.synthetic:
        from finetune.synthetic import SyntheticSpec, make_synthetic

        paths = make_synthetic(SyntheticSpec.from_config(cfg.data.synthetic))
        cfg.data.train, cfg.data.val = str(paths["train"]), str(paths["val"])
    train_samples = read_samples(cfg.data.train)[: cfg.data.max_train_samples]
    val_samples = read_samples(cfg.data.val) if cfg.data.val else []
    if not train_samples:
        raise ConfigError(f"{cfg.data.train} has no samples; run finetune/data.py first")
    return train_samples, val_samples


def trainer_is_main() -> bool:
    return int(os.environ.get("RANK", 0)) == 0


def _free_memory() -> None:
    import gc

    import torch

    gc.collect()
    if torch.cuda.is_available():
        torch.cuda.empty_cache()


# --- card ------------------------------------------------------------------------------------------


def step_losses(log_history: list[dict[str, Any]]) -> list[tuple[int, float]]:
    """(step, training loss) of every logged step (logging_steps=1 gives one per optimizer step)."""
    return [(int(row["step"]), float(row["loss"])) for row in log_history if "loss" in row]


def make_card(cfg, trainer, result, train_samples, val_samples, resume, seconds) -> dict[str, Any]:
    import peft
    import torch
    import transformers

    from grounding_agent.grounders.qwen_inputs import PROMPTS

    losses = step_losses(trainer.state.log_history)
    values = [loss for _, loss in losses]
    k = min(5, len(values) // 2) or 1
    return {
        "base_model": cfg.model.name_or_path,
        "method": "qlora" if cfg.quant else "lora",
        "data": {
            "train": str(cfg.data.train),
            "val": str(cfg.data.val) if cfg.data.val else None,
            "train_samples": len(train_samples),
            "val_samples": len(val_samples),
            "datasets": sorted({s.dataset for s in train_samples}),
        },
        "prompt": sorted({f"{PROMPTS[s.prompt]}@{s.prompt_version}" for s in train_samples}),
        "steps": int(trainer.state.global_step),
        "resumed_from": resume,
        "train_loss": float(result.training_loss) if result.training_loss is not None else None,
        "loss_first_mean": sum(values[:k]) / k if values else None,
        "loss_last_mean": sum(values[-k:]) / k if values else None,
        "losses": losses,
        "train_seconds": round(seconds, 2),
        "config": cfg.to_dict(),
        "versions": {
            "torch": torch.__version__,
            "transformers": transformers.__version__,
            "peft": peft.__version__,
        },
    }


def write_card(adapter_dir: Path, card: dict[str, Any]) -> None:
    """training_card.json (machine-readable) + README.md (a Hub-style model card) beside the adapter."""
    write_text_atomic(adapter_dir / "training_card.json", json.dumps(card, indent=2, default=str) + "\n")
    metrics = (card.get("eval") or {}).get("metrics") or {}
    lines = [
        "---",
        f"base_model: {card['base_model']}",
        "library_name: peft",
        "tags: [video-temporal-grounding, lora, grounding-agent]",
        "---",
        f"# {card['method'].upper()} adapter: video temporal grounding",
        "",
        f"- base model: `{card['base_model']}`",
        f"- data: {card['data']['train_samples']} train / {card['data']['val_samples']} held-out samples "
        f"({', '.join(card['data']['datasets'])}) from `{card['data']['train']}`",
        f"- prompt: {', '.join(card['prompt'])}",
        f"- steps: {card['steps']}; loss (mean of first / last steps): {_fmt(card['loss_first_mean'])} -> "
        f"{_fmt(card['loss_last_mean'])}",
    ]
    if metrics:
        lines.append("- held-out metrics: " + ", ".join(f"{k} {v:.2f}" for k, v in metrics.items()))
    lines += [
        "",
        'Use: `grounding-agent ground VIDEO "QUERY" --backend hf --model BASE --adapter THIS_DIR`, or serve '
        "with `grounding-agent serve --model BASE --lora NAME=THIS_DIR` and pass `--model NAME`.",
    ]
    write_text_atomic(adapter_dir / "README.md", "\n".join(lines) + "\n")


def _fmt(x: float | None) -> str:
    return "n/a" if x is None or not math.isfinite(x) else f"{x:.4f}"


# --- eval hook -------------------------------------------------------------------------------------


def evaluate_adapter(cfg: RecipeConfig, adapter_dir: Path, samples: list[SFTSample]) -> dict[str, Any]:
    """Ground every held-out query with the *saved* adapter (loaded back through the library's
    HFGrounder, as a user would) and score with the library's metrics; writes eval_predictions.jsonl and
    eval_metrics.json next to the adapter."""
    from finetune.collator import sample_frames_for
    from finetune.data import write_jsonl
    from grounding_agent.benchmarks.datasets import Annotation
    from grounding_agent.benchmarks.metrics import charades_sta_metrics
    from grounding_agent.grounders.hf import HFGrounder
    from grounding_agent.media.video import open_video

    samples = samples[: cfg.eval.limit]
    grounder = HFGrounder(
        cfg.model.name_or_path,
        adapter=str(adapter_dir),
        quantization="4bit" if cfg.quant else None,
        dtype="float32" if cfg.model.dtype == "auto" and not _cuda() else cfg.model.dtype,
        mode=cfg.data.mode,
        prompt=cfg.data.prompt,
        max_new_tokens=cfg.eval.max_new_tokens,
    )
    predictions, annotations, failures, errors = {}, [], 0, []
    t0 = time.perf_counter()
    for s in samples:
        annotations.append(Annotation(s.qid, s.vid, s.query, s.duration_s, tuple(map(tuple, s.windows_s))))
        try:
            video = open_video(s.video)
        except VideoError as exc:  # scored as a miss, reported; one bad file must not void the eval
            errors.append({"qid": s.qid, "error": str(exc)})
            continue
        frames = sample_frames_for(
            s, cfg.data.fps, cfg.data.max_frames, cfg.data.max_pixels, cfg.data.frame_cache
        )
        grounding = grounder.ground(video, s.query, top_k=len(s.windows_s), frames=frames)
        failures += bool(grounding.failures)
        predictions[s.qid] = grounding.to_prediction(s.qid, s.vid, s.query)
    metrics = charades_sta_metrics(annotations, predictions, allow_missing=True)
    write_jsonl((p.to_dict() for p in predictions.values()), adapter_dir / "eval_predictions.jsonl")
    result = {
        "split": str(cfg.data.val),
        "queries": len(samples),
        "parse_failures": failures,
        "video_errors": errors,
        "seconds": round(time.perf_counter() - t0, 2),
        "metrics": metrics,
    }
    write_text_atomic(adapter_dir / "eval_metrics.json", json.dumps(result, indent=2) + "\n")
    return result


def _cuda() -> bool:
    import torch

    return torch.cuda.is_available()


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if not argv or argv[0] in ("-h", "--help"):
        print(__doc__)
        return 0 if argv else 2
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    cfg = load_config(argv[0], argv[1:])
    card = train(cfg)
    summary = {k: card.get(k) for k in ("steps", "train_loss", "loss_first_mean", "loss_last_mean")}
    summary["adapter"] = str(cfg.output_dir / ADAPTER_DIR)
    if "eval" in card:
        summary["eval"] = card["eval"]["metrics"]
    print(json.dumps(summary, indent=2))
    return 0


if __name__ == "__main__":
    run_recipe(main)
