"""Recipe config: one YAML file per model x method, plus `key.sub=value` overrides from the command line.

Sections (see finetune/configs/*.yaml):
    model:     base model id/path, dtype, attention implementation
    quant:     bitsandbytes 4-bit (QLoRA) or null
    lora:      PEFT LoRA hyper-parameters and target modules
    data:      SFT jsonl files (finetune/data.py writes them) and the frame-sampling spec
    training:  passed as-is to transformers.TrainingArguments (output_dir, max_steps, save_steps, seed, ...)
    grpo:      GRPO recipe only: trl.GRPOConfig keys (num_generations, beta, epsilon, use_vllm, ...)
    reward:    GRPO recipe only: weights of the tIoU and format rewards
    eval:      the post-training eval on the held-out split
"""

from __future__ import annotations

import copy
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any

import yaml

from grounding_agent.errors import ConfigError, GroundingAgentError
from grounding_agent.io import refuse_inputs

# Linear layers of the Qwen-VL *language model*. The vision tower's MLP reuses the names gate/up/down_proj,
# so by default we restrict LoRA to the language model (what vLLM's --lora-modules serves).
QWEN_LM_LINEARS = ["q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"]


@dataclass
class ModelConfig:
    name_or_path: str
    dtype: str = "auto"  # auto | bfloat16 | float16 | float32
    attn_implementation: str | None = None  # e.g. sdpa, flash_attention_2
    trust_remote_code: bool = False
    adapter: str | None = None  # start from this PEFT adapter and keep training it (e.g. SFT -> GRPO)


@dataclass
class QuantConfig:
    """bitsandbytes 4-bit base weights (QLoRA). On CPU, Linear layers narrower than 64 inputs fail:
    list them in `skip_modules` (see docs/machine-facts)."""

    bits: int = 4
    quant_type: str = "nf4"
    double_quant: bool = True
    compute_dtype: str = "bfloat16"
    # Kept in 16-bit: the frozen vision tower (small, quality-sensitive) and the LM head.
    skip_modules: list[str] = field(default_factory=lambda: ["visual", "lm_head"])


@dataclass
class LoraConfig:
    r: int = 16
    alpha: int = 32
    dropout: float = 0.05
    target_modules: list[str] = field(default_factory=lambda: list(QWEN_LM_LINEARS))
    language_model_only: bool = True  # keep the vision tower frozen and adapter-free (vLLM serves LM LoRA)
    bias: str = "none"
    # Modules trained in full and saved with the adapter (peft `modules_to_save`), e.g. [lm_head] for a
    # random-init tiny model whose frozen head cannot express a confident answer.
    modules_to_save: list[str] | None = None


@dataclass
class DataConfig:
    train: str | None = None  # required unless `synthetic` is set
    val: str | None = None
    # true or a mapping (finetune/synthetic.py SyntheticSpec): the recipe builds the synthetic task itself
    # and trains / evaluates on its train / held-out split (train and val are then ignored).
    synthetic: bool | dict[str, Any] = False
    mode: str | None = None  # "video" | "images" (timestamped frames); None: the family's default
    prompt: str = "grounding"  # grounder prompt style: grounding | reasoning (GRPO; SFT targets are plain)
    # Frame sampling: None keeps each sample's own spec (written by finetune/data.py).
    fps: float | None = None
    max_frames: int | None = None
    max_pixels: int | None = None  # per frame, before the processor's own resize
    frame_cache: bool = False  # keep decoded frames in memory across steps (small sets of short videos)
    max_train_samples: int | None = None


@dataclass
class EvalConfig:
    after_training: bool = True
    limit: int | None = None  # at most this many held-out queries
    max_new_tokens: int = 32


@dataclass
class RewardConfig:
    """GRPO reward = iou_weight * tIoU(parsed answer, GT) + format_weight * format reward."""

    iou_weight: float = 1.0
    format_weight: float = 0.2


@dataclass
class RecipeConfig:
    model: ModelConfig
    lora: LoraConfig
    data: DataConfig
    training: dict[str, Any]
    quant: QuantConfig | None = None
    eval: EvalConfig = field(default_factory=EvalConfig)
    grpo: dict[str, Any] = field(default_factory=dict)  # GRPO recipe: extra trl.GRPOConfig keys
    reward: RewardConfig = field(default_factory=RewardConfig)
    resume: str | bool = "auto"  # auto: latest checkpoint in output_dir if any; true/path/false
    source: str = ""  # the YAML file it came from

    @property
    def output_dir(self) -> Path:
        return Path(self.training["output_dir"])

    def to_dict(self) -> dict[str, Any]:
        def plain(obj: Any) -> Any:
            if hasattr(obj, "__dataclass_fields__"):
                return {f.name: plain(getattr(obj, f.name)) for f in fields(obj)}
            return copy.deepcopy(obj)

        return plain(self)


_SECTIONS = {
    "model": ModelConfig,
    "lora": LoraConfig,
    "data": DataConfig,
    "quant": QuantConfig,
    "eval": EvalConfig,
    "reward": RewardConfig,
}


def _section(name: str, cls: type, raw: Any) -> Any:
    if not isinstance(raw, dict):
        raise ConfigError(f"config section '{name}' must be a mapping, got {type(raw).__name__}")
    known = {f.name for f in fields(cls)}
    unknown = set(raw) - known
    if unknown:
        raise ConfigError(f"unknown key(s) {sorted(unknown)} in section '{name}'; allowed: {sorted(known)}")
    try:
        return cls(**raw)
    except TypeError as exc:  # a required key is missing
        raise ConfigError(f"section '{name}': {exc}") from None


def apply_overrides(raw: dict[str, Any], overrides: list[str]) -> dict[str, Any]:
    """Apply `a.b.c=value` overrides (value parsed as YAML: 20 -> int, null -> None, [a,b] -> list)."""
    out = copy.deepcopy(raw)
    for item in overrides:
        key, sep, value = item.partition("=")
        if not sep or not key:
            raise ConfigError(
                f"override {item!r} must look like section.key=value (e.g. training.max_steps=20)"
            )
        node = out
        *parents, leaf = key.split(".")
        for part in parents:
            if node.get(part) is None:
                node[part] = {}
            node = node[part]
            if not isinstance(node, dict):
                raise ConfigError(f"override {item!r}: {part!r} is not a section")
        node[leaf] = yaml.safe_load(value)
    return out


def _mapping(path: Path, name: str, value: Any) -> dict[str, Any]:
    if not isinstance(value, dict):
        raise ConfigError(f"{path}: section '{name}' must be a mapping, got {type(value).__name__}")
    return dict(value)


def _first_line(exc: Exception) -> str:
    text = str(exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__


def read_recipe_yaml(path: Path, overrides: list[str]) -> dict[str, Any]:
    """A recipe YAML file as a mapping of sections, with `a.b=value` overrides applied (every recipe's)."""
    if not path.is_file():
        raise ConfigError(f"config file {path} not found; see finetune/configs/ for examples")
    try:
        raw = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
    except (yaml.YAMLError, UnicodeDecodeError) as exc:
        raise ConfigError(f"{path}: invalid YAML ({_first_line(exc)})") from None
    if not isinstance(raw, dict):
        raise ConfigError(
            f"{path}: a recipe config must be a mapping of sections (model, data, training, ...), "
            f"got {type(raw).__name__}"
        )
    return apply_overrides(raw, overrides)


def load_config(path: str | Path, overrides: list[str] | None = None) -> RecipeConfig:
    """Read a recipe YAML, apply overrides, check every section.

    Raises:
        ConfigError: missing file, bad YAML, unknown or missing keys.
    """
    path = Path(path)
    raw = read_recipe_yaml(path, overrides or [])
    allowed = set(_SECTIONS) | {"training", "grpo", "resume"}
    unknown = set(raw) - allowed
    if unknown:
        raise ConfigError(f"{path}: unknown section(s) {sorted(unknown)}; allowed: {sorted(allowed)}")
    for required in ("model", "data", "training"):
        if required not in raw:
            raise ConfigError(f"{path}: missing section '{required}'")
    training = raw["training"]
    if not isinstance(training, dict) or not training.get("output_dir"):
        raise ConfigError(f"{path}: training.output_dir is required (where checkpoints and the adapter go)")
    quant = raw.get("quant")
    data = _section("data", DataConfig, raw["data"])
    if not data.synthetic and not data.train:
        raise ConfigError(f"{path}: data.train is required (or set data.synthetic: true)")
    if data.mode not in (None, "video", "images"):
        raise ConfigError(f"{path}: data.mode must be video, images or null, got {data.mode!r}")
    model = _section("model", ModelConfig, raw["model"])
    _refuse_inputs_as_output(path, training["output_dir"], data, model)
    return RecipeConfig(
        model=model,
        lora=_section("lora", LoraConfig, raw.get("lora") or {}),
        data=data,
        training=dict(training),
        quant=_section("quant", QuantConfig, quant) if quant else None,
        eval=_section("eval", EvalConfig, raw.get("eval") or {}),
        grpo=_mapping(path, "grpo", raw.get("grpo") or {}),
        reward=_section("reward", RewardConfig, raw.get("reward") or {}),
        resume=raw.get("resume", "auto"),
        source=str(path),
    )


def _refuse_inputs_as_output(path: Path, output_dir: Any, data: DataConfig, model: ModelConfig) -> None:
    """Checkpoints and the adapter must not go into (or over) a file or folder the recipe reads."""
    inputs = [("the config file", path), ("data.train", data.train), ("data.val", data.val)]
    inputs += [("model.name_or_path", model.name_or_path), ("model.adapter", model.adapter)]
    refuse_inputs([("training.output_dir", str(output_dir))], inputs, kind="folder")


def run_recipe(main) -> None:
    """`sys.exit(main())` for a recipe run as a script: a user error is one line and exit 2, as the CLI does."""
    import sys

    try:
        code = main()
    except GroundingAgentError as exc:
        print(f"error: {exc}", file=sys.stderr)
        code = 2
    sys.exit(code)
