"""Build tiny random-weight models of the real architectures, offline, for tests and benchmarks.

    python tests/assets/build_tiny_models.py OUTDIR

writes OUTDIR/{qwen2_vl, qwen2_5_vl, qwen3_vl, clip, qwen2_5_vl_lora}. Each Qwen folder is what
`from_pretrained` expects from a hub checkpoint: a shrunk config of the real architecture
(`Qwen2VLForConditionalGeneration`, `Qwen2_5_VLForConditionalGeneration`,
`Qwen3VLForConditionalGeneration`) with seeded random weights, and the processor (image processor, video
processor, a byte-level BPE tokenizer trained here, and the real Qwen chat template). `clip` is a tiny
`CLIPModel` with the real OpenAI CLIP BPE vocabulary; `qwen2_5_vl_lora` is a PEFT LoRA adapter folder.
The same folders load in vLLM 0.32 (its env has transformers 5.19), so configs only use fields both know.

From Python (tests, benchmarks, fine-tuning recipes):

    from tests.assets.build_tiny_models import build_all, cached_tiny_models
    paths = cached_tiny_models()  # name -> Path, built once per version of this file

`build_clip_vit_b32(outdir)` builds the full-size CLIP ViT-B/32 architecture (random weights, ~151 M
params) for speed benchmarks; it is not part of `build_all`.
"""

from __future__ import annotations

import argparse
import gzip
import hashlib
import json
import os
import shutil
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

SEED = 0
SHARED_DATA = Path(__file__).resolve().parents[3] / "shared" / "data"
CLIP_BPE_GZ = SHARED_DATA / "clip_tokenizer" / "bpe_simple_vocab_16e6.txt.gz"
CACHE_ROOT = Path(os.environ.get("GA_TINY_MODELS_CACHE", Path.home() / ".cache" / "grounding-agent"))

# --- tokenizer ---------------------------------------------------------------------------------------

# Qwen's special tokens, in the real vocabulary's order (ids differ: ours start at 0).
QWEN_SPECIAL_TOKENS = [
    "<|endoftext|>",
    "<|im_start|>",
    "<|im_end|>",
    "<|object_ref_start|>",
    "<|object_ref_end|>",
    "<|box_start|>",
    "<|box_end|>",
    "<|quad_start|>",
    "<|quad_end|>",
    "<|vision_start|>",
    "<|vision_end|>",
    "<|vision_pad|>",
    "<|image_pad|>",
    "<|video_pad|>",
]
# Added (non-special) tokens of the real Qwen2.5/Qwen3 vocabularies: they stay visible in decoded text.
QWEN_ADDED_TOKENS = ["<tool_call>", "</tool_call>", "<think>", "</think>"]

# Qwen2's pre-tokenizer split: letters in runs, every digit on its own, punctuation runs, whitespace.
QWEN_SPLIT_REGEX = (
    r"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}| ?[^\s\p{L}\p{N}]+[\r\n]*"
    r"|\s*[\r\n]+|\s+(?!\S)|\s+"
)

# Charades-style sentences and the phrasing of grounding prompts and answers.
_SENTENCES = (
    """\
a person is opening a door.
person sitting on a chair eating a sandwich.
a person takes a picture of the window.
the person puts the book on the table.
person pours water into a glass.
a person walks through the doorway holding a laptop.
the person closes the refrigerator and starts laughing.
someone is washing dishes in the kitchen sink.
a person turns on the light in the bedroom.
person throws a pillow onto the bed.
the person is sneezing into a towel.
a man is flipping a pancake in a pan.
a woman is cooking on the stove then she drinks coffee.
person opens the closet and takes out a blanket.
the person sits down on the sofa and watches television.
a person is tidying up the shelf with a broom.
the person runs down the stairs and grabs a phone.
person holding a cup of tea smiles at the mirror.
after the person closes the door, they sit on the floor.
before eating, the person washes their hands.
what time does the person open the door?
find the moment when the person puts the book on the table.
give the start and end time in seconds.
the event happens between 12.5 and 18.0 seconds.
answer: 3.2 - 9.8 seconds.
the moment is from 00:01:05 to 00:01:12.
in the video, the person drinks water during 24.0 - 30.7 seconds.
describe the video. explain why this moment matches the query.
you are a helpful assistant.
the query is not present in the video.
the camera shows a small kitchen with white cabinets, a wooden floor and a window facing the garden.
early in the morning a young woman enters the living room, switches on the lamp and looks around.
later, an old man carefully folds his laundry while the dog sleeps quietly next to the heater.
the children are playing a board game; one of them suddenly jumps up and runs outside.
highlights: the most exciting part of the video is when the chef flips the omelette in the air.
summary of events: first the person arrives, second they prepare dinner, finally they leave home.
temporal grounding means finding exactly when something happens, given a natural language question.
please respond with the beginning and the ending timestamp, separated by a dash, using decimal seconds.
the evidence is weak, so the confidence is low; another possible interval would be slightly earlier.
video frames were sampled at two frames per second and each frame is labelled with its timestamp.
"""
    + """\
monday tuesday wednesday thursday friday saturday sunday january february march april may june july
august september october november december yesterday today tomorrow morning afternoon evening night
red orange yellow green blue purple black white gray brown pink big small long short quick slow
happy sad angry surprised tired hungry quiet loud bright dark warm cold clean dirty empty full
"""
)


_SUBJECTS = ["a person", "the person", "someone", "a man", "a woman", "the child", "he", "she", "they"]
_ACTIONS = """\
opens, closes, holds, takes, puts down, picks up, throws, washes, eats, drinks from, pours, cooks,
looks at, sits on, stands up from, walks to, runs past, lies on, plays with, fixes, tidies, cleans,
watches, reads, writes on, laughs at, smiles at, sneezes into, grabs, carries, turns on, turns off,
dresses in, undresses, snuggles with, wipes, sweeps, hugs, talks on, leaves"""
_OBJECTS = """\
a door, the window, a chair, a table, a sandwich, a book, a glass, a laptop, the refrigerator, a towel,
the bed, a pillow, a blanket, the sofa, the television, a phone, a cup of tea, the mirror, a broom,
the floor, the stairs, the shelf, a bag, a box, shoes, clothes, a picture, the light, a camera, food,
a dish, the sink, the stove, a pan, a pancake, coffee, water, a medicine bottle, a vacuum, the closet"""


def _corpus() -> list[str]:
    """A few thousand short lines: Charades-style sentences, prompt phrasing, numbers and time formats."""
    lines = _SENTENCES.splitlines()
    actions = [a.strip() for a in _ACTIONS.replace("\n", " ").split(",")]
    objects = [o.strip() for o in _OBJECTS.replace("\n", " ").split(",")]
    for i, action in enumerate(actions):
        for j, obj in enumerate(objects):
            subject = _SUBJECTS[(i + j) % len(_SUBJECTS)]
            lines.append(f"{subject} {action} {obj}.")
            lines.append(f"{subject.capitalize()} {action} {obj} then {actions[(i + j) % len(actions)]} it.")
    for i in range(400):
        s, e = i * 0.7, i * 0.7 + 3.4
        lines.append(f"{s:.1f} - {e:.1f} seconds")
        lines.append(f"<{s:.1f} seconds> from {s:.2f} to {e:.2f}")
        lines.append(f"{int(s) // 60:02d}:{int(s) % 60:02d} to {int(e) // 60:02d}:{int(e) % 60:02d}")
        lines.append(f'{{"start_s": {s:.1f}, "end_s": {e:.1f}, "score": 0.{i % 10}}}')
    return lines


def train_qwen_tokenizer(vocab_size: int = 1536):
    """Train a byte-level BPE tokenizer shaped like Qwen2's and wrap it as a fast HF tokenizer.

    Returns:
        `PreTrainedTokenizerFast` with Qwen's special tokens (ids 0..13) and added tokens.
    """
    from tokenizers import (
        Regex,
        Tokenizer,
        decoders,
        models,
        normalizers,
        pre_tokenizers,
        processors,
        trainers,
    )
    from transformers import PreTrainedTokenizerFast

    tok = Tokenizer(models.BPE(byte_fallback=False))
    tok.normalizer = normalizers.NFC()
    tok.pre_tokenizer = pre_tokenizers.Sequence(
        [
            pre_tokenizers.Split(Regex(QWEN_SPLIT_REGEX), behavior="isolated", invert=False),
            pre_tokenizers.ByteLevel(add_prefix_space=False, trim_offsets=False, use_regex=False),
        ]
    )
    tok.decoder = decoders.ByteLevel()
    tok.post_processor = processors.ByteLevel(trim_offsets=False)
    trainer = trainers.BpeTrainer(
        vocab_size=vocab_size,
        min_frequency=1,
        special_tokens=QWEN_SPECIAL_TOKENS,
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False,
    )
    tok.train_from_iterator(_corpus(), trainer=trainer)
    tok.add_tokens(QWEN_ADDED_TOKENS)
    return PreTrainedTokenizerFast(
        tokenizer_object=tok,
        eos_token="<|im_end|>",
        pad_token="<|endoftext|>",
        model_max_length=32768,
        clean_up_tokenization_spaces=False,
        extra_special_tokens={
            name: tok_str
            for name, tok_str in (
                ("image_token", "<|image_pad|>"),
                ("video_token", "<|video_pad|>"),
                ("vision_start_token", "<|vision_start|>"),
                ("vision_end_token", "<|vision_end|>"),
            )
        },
    )


# --- chat templates (data: the real templates shipped with the Qwen checkpoints) ----------------------

# Qwen/Qwen2-VL-*-Instruct and Qwen/Qwen2.5-VL-*-Instruct ship the same template.
QWEN2_VL_CHAT_TEMPLATE = (
    "{% set image_count = namespace(value=0) %}{% set video_count = namespace(value=0) %}"
    "{% for message in messages %}{% if loop.first and message['role'] != 'system' %}"
    "<|im_start|>system\nYou are a helpful assistant.<|im_end|>\n{% endif %}"
    "<|im_start|>{{ message['role'] }}\n"
    "{% if message['content'] is string %}{{ message['content'] }}<|im_end|>\n"
    "{% else %}{% for content in message['content'] %}"
    "{% if content['type'] == 'image' or 'image' in content or 'image_url' in content %}"
    "{% set image_count.value = image_count.value + 1 %}"
    "{% if add_vision_id %}Picture {{ image_count.value }}: {% endif %}"
    "<|vision_start|><|image_pad|><|vision_end|>"
    "{% elif content['type'] == 'video' or 'video' in content %}"
    "{% set video_count.value = video_count.value + 1 %}"
    "{% if add_vision_id %}Video {{ video_count.value }}: {% endif %}"
    "<|vision_start|><|video_pad|><|vision_end|>"
    "{% elif 'text' in content %}{{ content['text'] }}{% endif %}{% endfor %}<|im_end|>\n"
    "{% endif %}{% endfor %}{% if add_generation_prompt %}<|im_start|>assistant\n{% endif %}"
)

# Qwen/Qwen3-VL-*-Instruct: content rendered by a macro, tools in the system turn, no default system turn.
QWEN3_VL_CHAT_TEMPLATE = """\
{%- set image_count = namespace(value=0) %}
{%- set video_count = namespace(value=0) %}
{%- macro render_content(content, do_vision_count) %}
    {%- if content is string %}
        {{- content }}
    {%- else %}
        {%- for item in content %}
            {%- if 'image' in item or 'image_url' in item or item.type == 'image' %}
                {%- if do_vision_count %}
                    {%- set image_count.value = image_count.value + 1 %}
                {%- endif %}
                {%- if add_vision_id %}Picture {{ image_count.value }}: {% endif -%}
                <|vision_start|><|image_pad|><|vision_end|>
            {%- elif 'video' in item or item.type == 'video' %}
                {%- if do_vision_count %}
                    {%- set video_count.value = video_count.value + 1 %}
                {%- endif %}
                {%- if add_vision_id %}Video {{ video_count.value }}: {% endif -%}
                <|vision_start|><|video_pad|><|vision_end|>
            {%- elif 'text' in item %}
                {{- item.text }}
            {%- endif %}
        {%- endfor %}
    {%- endif %}
{%- endmacro %}
{%- if tools %}
    {{- '<|im_start|>system\\n' }}
    {%- if messages[0].role == 'system' %}
        {{- render_content(messages[0].content, false) + '\\n\\n' }}
    {%- endif %}
    {{- "# Tools\\n\\nYou may call one or more functions to assist with the user query.\\n\\n\
You are provided with function signatures within <tools></tools> XML tags:\\n<tools>" }}
    {%- for tool in tools %}
        {{- "\\n" }}
        {{- tool | tojson }}
    {%- endfor %}
    {{- "\\n</tools>\\n\\nFor each function call, return a json object with function name and arguments \
within <tool_call></tool_call> XML tags:\\n<tool_call>\\n{\\"name\\": <function-name>, \
\\"arguments\\": <args-json-object>}\\n</tool_call><|im_end|>\\n" }}
{%- else %}
    {%- if messages[0].role == 'system' %}
        {{- '<|im_start|>system\\n' + render_content(messages[0].content, false) + '<|im_end|>\\n' }}
    {%- endif %}
{%- endif %}
{%- for message in messages %}
    {%- set content = render_content(message.content, true) %}
    {%- if (message.role == "user") or (message.role == "system" and not loop.first) %}
        {{- '<|im_start|>' + message.role + '\\n' + content + '<|im_end|>' + '\\n' }}
    {%- elif message.role == "assistant" %}
        {{- '<|im_start|>' + message.role + '\\n' + content }}
        {%- if message.tool_calls %}
            {%- for tool_call in message.tool_calls %}
                {%- if (loop.first and content) or (not loop.first) %}
                    {{- '\\n' }}
                {%- endif %}
                {%- if tool_call.function %}
                    {%- set tool_call = tool_call.function %}
                {%- endif %}
                {{- '<tool_call>\\n{"name": "' }}
                {{- tool_call.name }}
                {{- '", "arguments": ' }}
                {%- if tool_call.arguments is string %}
                    {{- tool_call.arguments }}
                {%- else %}
                    {{- tool_call.arguments | tojson }}
                {%- endif %}
                {{- '}\\n</tool_call>' }}
            {%- endfor %}
        {%- endif %}
        {{- '<|im_end|>\\n' }}
    {%- elif message.role == "tool" %}
        {%- if loop.first or (messages[loop.index0 - 1].role != "tool") %}
            {{- '<|im_start|>user' }}
        {%- endif %}
        {{- '\\n<tool_response>\\n' }}
        {{- content }}
        {{- '\\n</tool_response>' }}
        {%- if loop.last or (messages[loop.index0 + 1].role != "tool") %}
            {{- '<|im_end|>\\n' }}
        {%- endif %}
    {%- endif %}
{%- endfor %}
{%- if add_generation_prompt %}
    {{- '<|im_start|>assistant\\n' }}
{%- endif %}
"""

# --- Qwen-VL models ----------------------------------------------------------------------------------

# Pixel budgets: a 360p frame becomes 3x5 merged patches (15 tokens per image or per 2-frame video
# group), so 16 frames stay ~120 video tokens. Each Qwen generation counts in its own patch units.
_QWEN2_PIXELS = {"shortest_edge": 28 * 28 * 4, "longest_edge": 28 * 28 * 16}
_QWEN3_PIXELS = {"shortest_edge": 32 * 32 * 4, "longest_edge": 32 * 32 * 16}
# Qwen3-VL's video budget counts pixels over all frames (T*H*W): 16 frames of 360p -> ~16 tokens per
# 2-frame group (fewer frames get more pixels each).
_QWEN3_VIDEO_PIXELS = {"shortest_edge": 32 * 32 * 4, "longest_edge": 32 * 32 * 16 * 16}


def _text_config(tokenizer, **extra) -> dict:
    vocab = -(-len(tokenizer) // 64) * 64  # round up: a padded embedding, like the real checkpoints
    return {
        "vocab_size": vocab,
        "hidden_size": 64,
        "intermediate_size": 128,
        "num_hidden_layers": 2,
        # head_dim 32: the smallest vLLM's CPU attention kernels accept (16 fails at the first request).
        "num_attention_heads": 2,
        "num_key_value_heads": 1,
        "max_position_embeddings": 32768,
        "rms_norm_eps": 1e-6,
        "tie_word_embeddings": False,
        "bos_token_id": tokenizer.convert_tokens_to_ids("<|endoftext|>"),
        "eos_token_id": tokenizer.convert_tokens_to_ids("<|im_end|>"),
        "pad_token_id": tokenizer.convert_tokens_to_ids("<|endoftext|>"),
        **extra,
    }


def _vision_token_ids(tokenizer) -> dict:
    ids = tokenizer.convert_tokens_to_ids
    return {
        "image_token_id": ids("<|image_pad|>"),
        "video_token_id": ids("<|video_pad|>"),
        "vision_start_token_id": ids("<|vision_start|>"),
        "vision_end_token_id": ids("<|vision_end|>"),
    }


def _save_qwen(outdir: Path, model_cls, config, processor, tokenizer) -> Path:
    """Seeded random init, then save weights, generation config and processor side by side."""
    import torch
    from transformers import GenerationConfig

    torch.manual_seed(SEED)
    model = model_cls(config).eval()
    ids = tokenizer.convert_tokens_to_ids
    model.generation_config = GenerationConfig(
        bos_token_id=ids("<|endoftext|>"),
        eos_token_id=[ids("<|im_end|>"), ids("<|endoftext|>")],
        pad_token_id=ids("<|endoftext|>"),
    )
    model.save_pretrained(outdir)
    processor.save_pretrained(outdir)
    return outdir


def build_qwen2_vl(outdir: str | Path, tokenizer=None) -> Path:
    """Tiny `Qwen2VLForConditionalGeneration` + `Qwen2VLProcessor` in `outdir`."""
    from transformers import (
        Qwen2VLConfig,
        Qwen2VLForConditionalGeneration,
        Qwen2VLImageProcessor,
        Qwen2VLProcessor,
        Qwen2VLVideoProcessor,
    )

    tokenizer = tokenizer or train_qwen_tokenizer()
    rope = {"rope_type": "default", "rope_theta": 1e6, "mrope_section": [4, 6, 6]}
    config = Qwen2VLConfig(
        text_config=_text_config(tokenizer, rope_parameters=rope),
        vision_config={
            "depth": 2,
            "embed_dim": 64,
            "hidden_size": 64,
            "mlp_ratio": 2,
            "num_heads": 2,
            "patch_size": 14,
            "spatial_merge_size": 2,
            "temporal_patch_size": 2,
        },
        **_vision_token_ids(tokenizer),
    )
    processor = Qwen2VLProcessor(
        image_processor=Qwen2VLImageProcessor(size=dict(_QWEN2_PIXELS)),
        video_processor=Qwen2VLVideoProcessor(size=dict(_QWEN2_PIXELS)),
        tokenizer=tokenizer,
        chat_template=QWEN2_VL_CHAT_TEMPLATE,
    )
    tokenizer.chat_template = QWEN2_VL_CHAT_TEMPLATE
    return _save_qwen(Path(outdir), Qwen2VLForConditionalGeneration, config, processor, tokenizer)


def build_qwen2_5_vl(outdir: str | Path, tokenizer=None) -> Path:
    """Tiny `Qwen2_5_VLForConditionalGeneration` + `Qwen2_5_VLProcessor` in `outdir`.

    Vision width 64 so bitsandbytes 4-bit (QLoRA) can quantize every Linear.
    """
    from transformers import (
        Qwen2_5_VLConfig,
        Qwen2_5_VLForConditionalGeneration,
        Qwen2_5_VLProcessor,
        Qwen2VLImageProcessor,
        Qwen2VLVideoProcessor,
    )

    tokenizer = tokenizer or train_qwen_tokenizer()
    rope = {"rope_type": "default", "rope_theta": 1e6, "mrope_section": [4, 6, 6]}
    config = Qwen2_5_VLConfig(
        text_config=_text_config(tokenizer, rope_parameters=rope),
        vision_config={
            "depth": 2,
            "hidden_size": 64,
            "intermediate_size": 128,
            "num_heads": 2,
            "out_hidden_size": 64,
            "patch_size": 14,
            "spatial_merge_size": 2,
            "temporal_patch_size": 2,
            "window_size": 112,
            "fullatt_block_indexes": [1],
            "tokens_per_second": 2,
        },
        **_vision_token_ids(tokenizer),
    )
    processor = Qwen2_5_VLProcessor(
        image_processor=Qwen2VLImageProcessor(size=dict(_QWEN2_PIXELS)),
        video_processor=Qwen2VLVideoProcessor(size=dict(_QWEN2_PIXELS)),
        tokenizer=tokenizer,
        chat_template=QWEN2_VL_CHAT_TEMPLATE,
    )
    tokenizer.chat_template = QWEN2_VL_CHAT_TEMPLATE
    return _save_qwen(Path(outdir), Qwen2_5_VLForConditionalGeneration, config, processor, tokenizer)


def build_qwen3_vl(outdir: str | Path, tokenizer=None) -> Path:
    """Tiny `Qwen3VLForConditionalGeneration` + `Qwen3VLProcessor` (`<t seconds>` markers) in `outdir`."""
    from transformers import (
        Qwen2VLImageProcessor,
        Qwen3VLConfig,
        Qwen3VLForConditionalGeneration,
        Qwen3VLProcessor,
        Qwen3VLVideoProcessor,
    )

    tokenizer = tokenizer or train_qwen_tokenizer()
    rope = {"rope_type": "default", "rope_theta": 5e6, "mrope_section": [8, 4, 4], "mrope_interleaved": True}
    config = Qwen3VLConfig(
        text_config=_text_config(tokenizer, head_dim=32, rope_parameters=rope),
        vision_config={
            "depth": 2,
            "hidden_size": 64,
            "intermediate_size": 128,
            "num_heads": 2,
            "out_hidden_size": 64,
            "patch_size": 16,
            "spatial_merge_size": 2,
            "temporal_patch_size": 2,
            "num_position_embeddings": 64,
            "deepstack_visual_indexes": [1],
        },
        **_vision_token_ids(tokenizer),
    )
    processor = Qwen3VLProcessor(
        image_processor=Qwen2VLImageProcessor(size=dict(_QWEN3_PIXELS), patch_size=16),
        video_processor=Qwen3VLVideoProcessor(size=dict(_QWEN3_VIDEO_PIXELS), patch_size=16),
        tokenizer=tokenizer,
        chat_template=QWEN3_VL_CHAT_TEMPLATE,
    )
    tokenizer.chat_template = QWEN3_VL_CHAT_TEMPLATE
    return _save_qwen(Path(outdir), Qwen3VLForConditionalGeneration, config, processor, tokenizer)


def build_qwen2_5_vl_lora(outdir: str | Path, base_dir: str | Path) -> Path:
    """A PEFT LoRA adapter (q_proj, v_proj, r=8) for the tiny Qwen2.5-VL in `base_dir`.

    B is random (not PEFT's zero init) so the adapter visibly changes the logits.
    """
    import torch
    from peft import LoraConfig, get_peft_model
    from transformers import AutoModelForImageTextToText

    base = AutoModelForImageTextToText.from_pretrained(base_dir)
    torch.manual_seed(SEED + 1)
    lora = LoraConfig(
        r=8, lora_alpha=16, lora_dropout=0.0, target_modules=["q_proj", "v_proj"], init_lora_weights=False
    )
    get_peft_model(base, lora).save_pretrained(outdir)
    # Saving needs the real base path (PEFT reads its config); the folder should not keep the builder's
    # absolute path though (the cache is built in a temp dir and renamed): name the sibling folder.
    config_path = Path(outdir) / "adapter_config.json"
    config = json.loads(config_path.read_text())
    config["base_model_name_or_path"] = "qwen2_5_vl"
    config["target_modules"] = sorted(config["target_modules"])  # saved from a set: fix the order
    config_path.write_text(json.dumps(config, indent=2, sort_keys=True))
    (Path(outdir) / "README.md").unlink(missing_ok=True)  # PEFT's model-card stub names the temp path
    return Path(outdir)


# --- CLIP --------------------------------------------------------------------------------------------


def _clip_vocab_and_merges(bpe_gz: Path) -> tuple[dict[str, int], list[str]]:
    """vocab.json / merges.txt contents of OpenAI CLIP's tokenizer, derived from its BPE file.

    Same construction as OpenAI's `SimpleTokenizer`: 256 byte symbols, the same with `</w>`, one token per
    merge (the first 49152 - 256 - 2 merges), then the two special tokens: 49408 ids in all.
    """
    from transformers.convert_slow_tokenizer import bytes_to_unicode

    lines = gzip.open(bpe_gz, "rt", encoding="utf-8").read().split("\n")
    merges = lines[1 : 49152 - 256 - 2 + 1]
    symbols = list(bytes_to_unicode().values())
    tokens = symbols + [s + "</w>" for s in symbols] + ["".join(m.split()) for m in merges]
    tokens += ["<|startoftext|>", "<|endoftext|>"]
    return {t: i for i, t in enumerate(tokens)}, merges


def clip_tokenizer():
    """OpenAI CLIP's real tokenizer (vocabulary from shared/data/clip_tokenizer)."""
    from transformers import CLIPTokenizer

    if not CLIP_BPE_GZ.is_file():
        raise FileNotFoundError(f"CLIP BPE vocabulary missing: expected {CLIP_BPE_GZ}")
    vocab, merges = _clip_vocab_and_merges(CLIP_BPE_GZ)
    return CLIPTokenizer(vocab=vocab, merges=[tuple(m.split()) for m in merges], model_max_length=77)


def _save_clip(outdir: Path, config, image_size: int) -> Path:
    import torch
    from transformers import CLIPImageProcessor, CLIPModel, CLIPProcessor

    torch.manual_seed(SEED)
    CLIPModel(config).eval().save_pretrained(outdir)
    image_processor = CLIPImageProcessor(
        size={"shortest_edge": image_size}, crop_size={"height": image_size, "width": image_size}
    )
    CLIPProcessor(image_processor=image_processor, tokenizer=clip_tokenizer()).save_pretrained(outdir)
    return outdir


def build_clip(outdir: str | Path) -> Path:
    """Tiny `CLIPModel` (32-px images, 2 layers, width 32) + `CLIPProcessor` with the real CLIP vocabulary."""
    from transformers import CLIPConfig

    config = CLIPConfig(
        text_config={
            "vocab_size": 49408,
            "hidden_size": 32,
            "intermediate_size": 64,
            "num_hidden_layers": 2,
            "num_attention_heads": 2,
            "max_position_embeddings": 77,
        },
        vision_config={
            "hidden_size": 32,
            "intermediate_size": 64,
            "num_hidden_layers": 2,
            "num_attention_heads": 2,
            "image_size": 32,
            "patch_size": 8,
        },
        projection_dim=32,
    )
    return _save_clip(Path(outdir), config, image_size=32)


def build_clip_vit_b32(outdir: str | Path) -> Path:
    """Full-size CLIP ViT-B/32 architecture (CLIPConfig defaults, ~151 M params, random weights, ~600 MB)."""
    from transformers import CLIPConfig

    return _save_clip(Path(outdir), CLIPConfig(), image_size=224)


# --- all of them, and the cache -------------------------------------------------------------------------


def build_all(outdir: str | Path) -> dict[str, Path]:
    """Build every tiny model into `outdir`.

    Returns:
        name -> folder, for `qwen2_vl`, `qwen2_5_vl`, `qwen3_vl`, `clip`, `qwen2_5_vl_lora`.
    """
    outdir = Path(outdir)
    outdir.mkdir(parents=True, exist_ok=True)
    tokenizer = train_qwen_tokenizer()
    builders: dict[str, Callable[[Path], Path]] = {
        "qwen2_vl": lambda d: build_qwen2_vl(d, tokenizer),
        "qwen2_5_vl": lambda d: build_qwen2_5_vl(d, tokenizer),
        "qwen3_vl": lambda d: build_qwen3_vl(d, tokenizer),
        "clip": build_clip,
        "qwen2_5_vl_lora": lambda d: build_qwen2_5_vl_lora(d, outdir / "qwen2_5_vl"),
    }
    return {name: build(outdir / name) for name, build in builders.items()}


def build_hash() -> str:
    """Key of the cached build: this file plus the library versions that write the saved formats."""
    from importlib.metadata import version  # not `import transformers`: a cache hit must stay instant

    h = hashlib.sha256(Path(__file__).read_bytes())
    h.update(" ".join(version(dist) for dist in ("transformers", "tokenizers", "peft")).encode())
    return h.hexdigest()[:12]


def cached_tiny_models(cache_root: str | Path | None = None) -> dict[str, Path]:
    """`build_all` once per `build_hash()` under `cache_root` (default ~/.cache/grounding-agent).

    Atomic: built in a temporary sibling folder and renamed into place, so a crashed or concurrent
    build never leaves a half-written cache; when two processes race, the first rename wins.
    """
    root = Path(cache_root) if cache_root is not None else CACHE_ROOT
    final = root / f"tiny-models-{build_hash()}"
    names = ["qwen2_vl", "qwen2_5_vl", "qwen3_vl", "clip", "qwen2_5_vl_lora"]
    if not (final / "DONE").is_file():
        root.mkdir(parents=True, exist_ok=True)
        tmp = Path(tempfile.mkdtemp(prefix=f"{final.name}.tmp-", dir=root))
        try:
            build_all(tmp)
            (tmp / "DONE").write_text(json.dumps({"built_at": time.time()}))
            os.rename(tmp, final)
        except OSError:
            if not (final / "DONE").is_file():  # not a lost race: a real failure
                raise
        finally:
            shutil.rmtree(tmp, ignore_errors=True)
    return {name: final / name for name in names}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("outdir", type=Path, help="folder to write the models into (created if missing)")
    parser.add_argument("--clip-vit-b32", action="store_true", help="also build full-size CLIP ViT-B/32")
    args = parser.parse_args(argv)
    start = time.perf_counter()
    paths = build_all(args.outdir)
    if args.clip_vit_b32:
        paths["clip_vit_b32"] = build_clip_vit_b32(args.outdir / "clip_vit_b32")
    for name, path in paths.items():
        print(f"{name:18s} {path}")
    print(f"built in {time.perf_counter() - start:.1f} s", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
