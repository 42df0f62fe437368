"""Back-of-the-envelope time and memory of a LoRA / QLoRA SFT run on Qwen2.5-VL (an ESTIMATE, not measured).

    python finetune/estimate.py                      # Qwen2.5-VL-7B, Charades-STA train, 1 GPU
    python finetune/estimate.py --arch qwen2_5_vl_7b --fps 2 --max-frames 32 --max-pixels 100352 --json

Model: per training sample of T language tokens and T_v vision patches,
- LLM matmuls: 2·N·T forward, 2·N·T backward (activation grads only: the base is frozen, LoRA weight grads
  are negligible), +2·N·T recompute with gradient checkpointing -> 6·N·T (4·N·T without), N = LLM
  non-embedding params + the LM head.
- LLM attention: 2·T²·h per layer forward (causal), x4 with backward + recompute.
- Vision tower: frozen and adapter-free -> forward only, 2·N_v·T_v (+ its attention).
- Time = FLOPs · samples / (peak · MFU).
Memory: weights (bf16 2 B/param; QLoRA: LLM linears 4-bit ≈ 0.52 B/param incl. double-quantised
constants, embeddings / LM head / vision tower bf16) + LoRA params in
fp32 with grad and Adam m, v (16 B/param) + activations: checkpointed layer inputs T·h·2 B per layer plus one
layer recomputed (≈ 34·T·h B, Korthikanti et al. 2022 without the attention-score term, as SDPA/flash keeps
no T² matrix), or 34·T·h·L B without checkpointing + logits T·V·10 B (bf16 logits, fp32 upcast, fp32 grad)
+ ~3 GB CUDA context and allocator slack.
"""

from __future__ import annotations

import argparse
import json
import math
from dataclasses import asdict, dataclass

from grounding_agent.defaults import SAMPLING

# Published configs (config.json on the Hub): Qwen/Qwen2.5-VL-7B-Instruct and -3B-Instruct.
ARCHS: dict[str, dict[str, int]] = {
    "qwen2_5_vl_7b": dict(
        hidden=3584, intermediate=18944, layers=28, heads=28, kv_heads=4, vocab=152064,
        v_hidden=1280, v_intermediate=3420, v_depth=32, v_full_layers=4, v_out=3584,
    ),
    "qwen2_5_vl_3b": dict(
        hidden=2048, intermediate=11008, layers=36, heads=16, kv_heads=2, vocab=151936,
        v_hidden=1280, v_intermediate=3420, v_depth=32, v_full_layers=4, v_out=2048,
    ),
}  # fmt: skip
GPUS: dict[str, float] = {"H100-SXM-80GB": 989e12, "A100-80GB": 312e12}  # dense bf16 peak FLOP/s
PATCH, MERGE, TEMPORAL = 14, 2, 2  # Qwen2.5-VL: 14 px patches, 2x2 merge, 2 frames per temporal patch
WINDOW_PATCHES = 64  # 112 px windows = 8x8 patches in the windowed ViT layers


@dataclass
class Estimate:
    arch: str
    frames: int
    llm_tokens: int
    vision_patches: int
    llm_params_b: float
    vision_params_b: float
    lora_params_m: float
    tflops_per_sample: float
    samples: int
    hours: dict[str, str]
    weights_gb: float
    lora_state_gb: float
    activations_gb: float
    logits_gb: float
    total_gb: float


def lora_params(a: dict[str, int], r: int) -> int:
    h, i, kv = a["hidden"], a["intermediate"], a["hidden"] // a["heads"] * a["kv_heads"]
    per_layer = r * ((h + h) + 2 * (h + kv) + (h + h) + 2 * (h + i) + (i + h))  # q,k,v,o,gate,up,down
    return per_layer * a["layers"]


def estimate(
    arch: str = "qwen2_5_vl_7b",
    *,
    video_s: float = 30.0,
    fps: float = SAMPLING.fps,
    max_frames: int = SAMPLING.max_frames,
    max_pixels: int = 128 * 28 * 28,
    text_tokens: int = 90,
    samples: int = 12404,
    epochs: float = 1.0,
    lora_r: int = 16,
    gradient_checkpointing: bool = True,
    quant_4bit: bool = False,
    mfu: tuple[float, float] = (0.3, 0.45),
) -> Estimate:
    a = ARCHS[arch]
    h, i, L, V = a["hidden"], a["intermediate"], a["layers"], a["vocab"]
    kv = h // a["heads"] * a["kv_heads"]
    frames = min(max_frames, max(TEMPORAL, math.ceil(video_s * fps)))
    frames += frames % TEMPORAL
    groups = frames // TEMPORAL
    patches_per_group = max_pixels // (PATCH * PATCH)
    t_v = groups * patches_per_group
    T = groups * patches_per_group // (MERGE * MERGE) + text_tokens

    n_llm = L * (2 * h * h + 2 * h * kv + 3 * h * i)
    n_head = h * V
    vh, vi, vd = a["v_hidden"], a["v_intermediate"], a["v_depth"]
    n_vis = vd * (4 * vh * vh + 3 * vh * vi) + (4 * vh) ** 2 + 4 * vh * a["v_out"]

    passes = 3 if gradient_checkpointing else 2  # forward units: fwd + bwd(activation grads) [+ recompute]
    llm = 2 * (n_llm + n_head) * T * passes
    llm_attn = 2 * T * T * h * L * (4 if gradient_checkpointing else 3)
    vis = 2 * n_vis * t_v
    vis_attn = (
        4 * vh * t_v * (a["v_full_layers"] * patches_per_group + (vd - a["v_full_layers"]) * WINDOW_PATCHES)
    )
    flops = llm + llm_attn + vis + vis_attn

    total_flops = flops * samples * epochs
    hours = {
        gpu: f"{total_flops / (peak * mfu[1]) / 3600:.1f}-{total_flops / (peak * mfu[0]) / 3600:.1f}"
        for gpu, peak in GPUS.items()
    }

    n_emb = h * V  # input embeddings (untied in 7B)
    # 4-bit: only the LLM's linears; embeddings, LM head and the frozen vision tower stay bf16
    # (quant.skip_modules).
    n_16bit = n_emb + n_head + n_vis
    weights = (n_llm * 0.516 + n_16bit * 2) if quant_4bit else (n_llm + n_16bit) * 2
    n_lora = lora_params(a, lora_r)
    act = (T * h * 2 * L + 34 * T * h) if gradient_checkpointing else 34 * T * h * L
    logits = T * V * 10
    gb = 1e9
    total = (weights + n_lora * 16 + act + logits) / gb + 3.0
    return Estimate(
        arch,
        frames,
        T,
        t_v,
        round(n_llm / 1e9, 2),
        round(n_vis / 1e9, 2),
        round(n_lora / 1e6, 1),
        round(flops / 1e12, 1),
        int(samples * epochs),
        hours,
        round(weights / gb, 1),
        round(n_lora * 16 / gb, 2),
        round(act / gb, 1),
        round(logits / gb, 1),
        round(total, 1),
    )


@dataclass
class GRPOEstimate:
    arch: str
    prompt_tokens: int
    completion_tokens: int
    group: int
    prompts: int
    tflops_per_prompt: float
    decode_s_per_step: float
    hours: dict[str, str]
    policy_gb: float
    vllm_gb: float
    total_gb: float


def estimate_grpo(
    arch: str = "qwen2_5_vl_7b",
    *,
    frames: int = SAMPLING.max_frames,
    max_pixels: int = 64 * 28 * 28,
    text_tokens: int = 110,
    completion_tokens: int = 256,
    group: int = 8,
    prompts_per_step: int = 2,
    prompts: int = 2500,
    beta: float = 0.04,
    lora_r: int = 16,
    vllm_memory_fraction: float = 0.3,
    gpu_memory_gb: float = 80.0,
    hbm_tb_s: float = 3.35,
    mfu: tuple[float, float] = (0.3, 0.45),
) -> GRPOEstimate:
    """GRPO with timestamped frames as images (each frame its own image: max_pixels/28² tokens, plus ~6
    timestamp tokens), vLLM generation colocated on the same GPU, LoRA policy with checkpointing.

    Per prompt: vLLM prefill once (prefix cache shares it across the group) 2·N·T_p + vision 2·N_v·T_v;
    decode is memory-bound: completion_tokens steps x bf16 weights / HBM bandwidth per step batch;
    training: G sequences of T_p + C tokens x 3 passes (fwd, bwd, recompute) + vision forward per sequence,
    + 1 forward for the reference adapter when beta > 0. Logits only over completion tokens (TRL keeps
    `logits_to_keep` = C).
    """
    a = ARCHS[arch]
    h, i, L, V = a["hidden"], a["intermediate"], a["layers"], a["vocab"]
    kv = h // a["heads"] * a["kv_heads"]
    per_frame = max_pixels // (PATCH * PATCH * MERGE * MERGE)
    t_p = frames * (per_frame + 6) + text_tokens
    t_v = frames * TEMPORAL * max_pixels // (PATCH * PATCH)  # an image is repeated over the temporal patch
    n_llm = L * (2 * h * h + 2 * h * kv + 3 * h * i) + h * V
    vh, vi, vd = a["v_hidden"], a["v_intermediate"], a["v_depth"]
    n_vis = vd * (4 * vh * vh + 3 * vh * vi) + (4 * vh) ** 2 + 4 * vh * a["v_out"]
    seq = t_p + completion_tokens
    passes = 3 + (1 if beta > 0 else 0)
    train = group * (passes * 2 * n_llm * seq + 2 * n_vis * t_v + 4 * seq * seq * h * L)
    generate = 2 * n_llm * t_p + 2 * n_vis * t_v + group * 2 * n_llm * completion_tokens
    flops = train + generate
    weights_gb = (n_llm + h * V + n_vis) * 2 / 1e9
    decode_s = completion_tokens * weights_gb / (hbm_tb_s * 1e3)  # one weight read per decode step
    steps = prompts / prompts_per_step
    hours = {}
    for gpu, peak in GPUS.items():
        lo, hi = (flops * prompts / (peak * m) + decode_s * steps for m in (mfu[1], mfu[0]))
        hours[gpu] = f"{lo / 3600:.1f}-{hi / 3600:.1f}"
    n_lora = lora_params(a, lora_r)
    micro = group  # one prompt's group per micro-batch
    act = micro * (seq * h * 2 * L + 34 * seq * h)
    logits = micro * completion_tokens * V * 10
    policy = weights_gb + (n_lora * 16 + act + logits) / 1e9 + 3.0
    vllm = vllm_memory_fraction * gpu_memory_gb
    return GRPOEstimate(
        arch, t_p, completion_tokens, group, prompts, round(flops / 1e12, 1), round(decode_s, 2), hours,
        round(policy, 1), round(vllm, 1), round(policy + vllm, 1),
    )  # fmt: skip


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--arch", default="qwen2_5_vl_7b", choices=sorted(ARCHS))
    p.add_argument("--video-s", type=float, default=30.0, help="typical video length (Charades ~30 s)")
    p.add_argument("--fps", type=float, default=SAMPLING.fps)
    p.add_argument("--max-frames", type=int, default=SAMPLING.max_frames)
    p.add_argument("--max-pixels", type=int, default=128 * 28 * 28, help="per frame")
    p.add_argument(
        "--samples", type=int, default=12404, help="Charades-STA train (lighthouse release) = 12404"
    )
    p.add_argument("--epochs", type=float, default=1.0)
    p.add_argument("--lora-r", type=int, default=16)
    p.add_argument("--no-gradient-checkpointing", action="store_true")
    p.add_argument("--qlora", action="store_true", help="4-bit base weights")
    p.add_argument("--json", action="store_true")
    p.add_argument("--recipe", choices=["sft", "grpo"], default="sft")
    p.add_argument("--group", type=int, default=8, help="grpo: completions per prompt")
    p.add_argument("--completion-tokens", type=int, default=256, help="grpo: reasoning answers ~256")
    p.add_argument("--prompts", type=int, default=2500, help="grpo: prompts seen (Time-R1 used ~2.5k)")
    args = p.parse_args(argv)
    if args.recipe == "grpo":
        est = estimate_grpo(
            args.arch, frames=args.max_frames, max_pixels=args.max_pixels, group=args.group,
            completion_tokens=args.completion_tokens, prompts=args.prompts, lora_r=args.lora_r,
        )  # fmt: skip
        return _print(est, args.json)
    est = estimate(
        args.arch, video_s=args.video_s, fps=args.fps, max_frames=args.max_frames, max_pixels=args.max_pixels,
        samples=args.samples, epochs=args.epochs, lora_r=args.lora_r,
        gradient_checkpointing=not args.no_gradient_checkpointing, quant_4bit=args.qlora,
    )  # fmt: skip
    return _print(est, args.json)


def _print(est: Estimate | GRPOEstimate, as_json: bool) -> int:
    if as_json:
        print(json.dumps(asdict(est), indent=2))
        return 0
    print("ESTIMATE (derived from FLOP and byte counts, not measured)")
    for key, value in asdict(est).items():
        print(f"  {key:<18} {value}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
