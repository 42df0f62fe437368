"""Fine-tuning recipes (LoRA / QLoRA SFT for Qwen-VL temporal grounding). Not part of the library:
`grounding_agent` never imports this package.

Run `python finetune/sft.py CONFIG` or `grounding-agent finetune CONFIG`.
"""
