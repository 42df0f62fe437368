"""Fine-tuning recipes for Qwen-VL temporal grounding: LoRA / QLoRA SFT (`sft.py`) and GRPO with a
temporal-IoU reward (`grpo.py`), plus a synthetic task that shows both teach *when* (`synthetic.py`).
Not part of the library: `grounding_agent` never imports this package.

Run `grounding-agent finetune [--recipe sft|grpo] CONFIG` (or `python finetune/sft.py CONFIG`,
`python finetune/grpo.py CONFIG`).
"""
