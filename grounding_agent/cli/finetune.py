"""`grounding-agent finetune [--recipe sft|grpo] CONFIG [KEY=VALUE ...]`: run a recipe from `finetune/`.

`sft` (default): LoRA/QLoRA supervised fine-tuning, `finetune/sft.py`; `grpo`: RL tuning with a
temporal-IoU reward (TRL GRPOTrainer), `finetune/grpo.py`.
`less-is-more`, `engagement`: learned highlight heads (`finetune/less_is_more.py`, `finetune/engagement.py`).
`vcl`, `taohighlight`: query / title highlight heads (`finetune/vcl.py`, `finetune/taohighlight.py`).

Recipes are not part of the library (they import it, never the other way round), so this command
locates `finetune/sft.py` in the source checkout and runs it as `__main__`, the way torchtune's
`tune run` does. An installed wheel without the checkout has no recipes: clone the repository.
"""

from __future__ import annotations

import argparse
import importlib.util
import runpy
import sys
from pathlib import Path

import grounding_agent
from grounding_agent.errors import ConfigError

RECIPES: dict[str, str] = {"sft": "finetune/sft.py", "grpo": "finetune/grpo.py"}
# Learned highlight heads (grounding_agent.highlights.heads): Less is More, engagement.
RECIPES.update({"less-is-more": "finetune/less_is_more.py", "engagement": "finetune/engagement.py"})
# VCL (learned prompts in frozen CLIP + moment MLP) and TaoHighlight (title co-attention).
RECIPES.update({"vcl": "finetune/vcl.py", "taohighlight": "finetune/taohighlight.py"})


def recipe_path(name: str = "sft") -> Path:
    """Path of a recipe in the source checkout.

    Raises:
        ConfigError: the recipe is unknown or the checkout (with its `finetune/` folder) is not there.
    """
    if name not in RECIPES:
        raise ConfigError(f"unknown recipe {name!r}; choose one of {sorted(RECIPES)}")
    # The top-level `finetune` package: the source checkout, or the installed wheel (which ships it).
    try:
        spec = importlib.util.find_spec(RECIPES[name].removesuffix(".py").replace("/", "."))
    except ImportError:
        spec = None
    root = Path(grounding_agent.__file__).resolve().parents[1]
    path = Path(spec.origin) if spec is not None and spec.origin else root / RECIPES[name]
    if not path.is_file():
        raise ConfigError(
            f"recipe {RECIPES[name]} not found under {root}: recipes ship with the source checkout "
            "(git clone the repository and `pip install -e .[train]`)"
        )
    return path


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("config", help="YAML recipe config, e.g. finetune/configs/qwen2_5_vl_7b_lora.yaml")
    p.add_argument(
        "overrides",
        nargs="*",
        metavar="KEY=VALUE",
        help="dotted config overrides, e.g. training.max_steps=20 lora.r=8 (values parsed as YAML)",
    )
    p.add_argument("--recipe", default="sft", choices=sorted(RECIPES), help="which recipe to run")


def run(args: argparse.Namespace) -> int:
    path = recipe_path(args.recipe)
    if not Path(args.config).is_file():
        raise ConfigError(f"config file {args.config} not found; see finetune/configs/ for examples")
    saved_argv = sys.argv
    sys.argv = [str(path), args.config, *args.overrides]
    try:
        runpy.run_path(str(path), run_name="__main__")
    except SystemExit as exc:  # the recipe ends with sys.exit(main())
        code = exc.code
        return code if isinstance(code, int) else (0 if code is None else 1)
    finally:
        sys.argv = saved_argv
    return 0
