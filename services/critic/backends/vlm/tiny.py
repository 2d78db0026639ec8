"""A tiny random Qwen2-VL (or Qwen2.5-VL) checkpoint, built in code: for tests, the demo and `lift debug`.

It is a real checkpoint in every way but size and training: ``config.json``,
``model.safetensors``, a byte-level BPE tokenizer trained here with
``tokenizers`` (with the Qwen chat special tokens), a chat template and the
preprocessor configs, so it goes through exactly the loading path a real
checkpoint does (``from_pretrained`` on a directory). Its answers are
meaningless but deterministic. ``write_tiny_lora`` writes a peft LoRA adapter
for it with non-zero weights, so loading it visibly changes the outputs.
"""

from __future__ import annotations

import json
import re
import warnings
from pathlib import Path

from lift.checkpoints import quiet_hf
from lift.templates import load_templates

SPECIAL_TOKENS = [
    "<|endoftext|>",
    "<|im_start|>",
    "<|im_end|>",
    "<|vision_start|>",
    "<|vision_end|>",
    "<|image_pad|>",
    "<|video_pad|>",
]

# Written for this project: ChatML turns; a content list may hold text, image and
# video parts, each vision part rendered as one placeholder between vision markers.
CHAT_TEMPLATE = (
    "{%- for message in messages -%}"
    "{{- '<|im_start|>' + message['role'] + '\\n' -}}"
    "{%- if message['content'] is string -%}{{- message['content'] -}}"
    "{%- else -%}{%- for part in message['content'] -%}"
    "{%- if part['type'] == 'video' -%}{{- '<|vision_start|><|video_pad|><|vision_end|>' -}}"
    "{%- elif part['type'] == 'image' -%}{{- '<|vision_start|><|image_pad|><|vision_end|>' -}}"
    "{%- elif part['type'] == 'text' -%}{{- part['text'] -}}{%- endif -%}"
    "{%- endfor -%}{%- endif -%}"
    "{{- '<|im_end|>\\n' -}}"
    "{%- endfor -%}"
    "{%- if add_generation_prompt -%}{{- '<|im_start|>assistant\\n' -}}{%- endif -%}"
)

_ANSWERS = [
    "The subjects match the prompt and the scene is correct",
    "The motion is smooth and natural with no stutter",
    "Frames are sharp and stable without flicker or noise",
    "Some objects are missing and the colors are wrong",
    "The camera jumps and the person freezes for a moment",
    "The picture is blurry with visible compression blocks",
    "A dog runs across a green field under a blue sky",
    "A red car drives along a wet city street at night",
]


RATING_PRESETS = ("videoscore2", "unifiedreward")
"""Rating templates whose words the tiny tokenizer learns (the checkpoint serves them too)."""


def _corpus() -> list[str]:
    t = load_templates()
    lines = [t.question(d, a) for d in t.questions for a in _ANSWERS]
    for word in t.labels.values():
        lines += [f"{word}{t.separator}{a}." for a in _ANSWERS] * 4
    for name in RATING_PRESETS:
        rating = load_templates(name).rating
        assert rating is not None
        # No digits: every score digit stays its own byte token, as the rating protocol needs
        # (a learned " 1" merge would tokenize ": 1" unlike ": 4", and the digits would differ).
        text = [rating.question(a) for a in _ANSWERS[:2]] + ["".join(rating.texts)] * 4
        lines += [re.sub(r"[0-9]", "", line) for line in text]
    return lines + ["user assistant system"] * 4


def _tokenizer():  # -> PreTrainedTokenizerFast
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import PreTrainedTokenizerFast

    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=640,
        min_frequency=1,
        special_tokens=SPECIAL_TOKENS,
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False,
    )
    tok.train_from_iterator(_corpus(), trainer)
    fast = PreTrainedTokenizerFast(
        tokenizer_object=tok,
        eos_token="<|im_end|>",
        pad_token="<|endoftext|>",
        padding_side="left",
    )
    fast.chat_template = CHAT_TEMPLATE
    return fast


def _quiet() -> None:
    quiet_hf()
    warnings.filterwarnings("ignore", category=FutureWarning, module="transformers")


TINY_FAMILIES = ("qwen2_vl", "qwen2_5_vl")


def _vision_config(family: str) -> dict[str, object]:
    common: dict[str, object] = {"depth": 2, "num_heads": 2, "patch_size": 14}
    common |= {"spatial_merge_size": 2}
    common |= {"temporal_patch_size": 2, "initializer_range": 0.2}
    if family == "qwen2_5_vl":  # windowed attention, one full-attention block
        return common | {
            "hidden_size": 32,
            "intermediate_size": 64,
            "out_hidden_size": 64,
            "window_size": 56,
            "fullatt_block_indexes": [1],
            "tokens_per_second": 2,
        }
    return common | {"embed_dim": 32, "hidden_size": 64, "mlp_ratio": 2}


def write_tiny_critic(directory: Path, seed: int = 0, family: str = "qwen2_vl") -> Path:
    """Write a tiny random Qwen2-VL (or Qwen2.5-VL) critic checkpoint into ``directory``."""
    import torch
    from transformers import (
        Qwen2_5_VLConfig,
        Qwen2_5_VLForConditionalGeneration,
        Qwen2VLConfig,
        Qwen2VLForConditionalGeneration,
    )

    if family not in TINY_FAMILIES:
        raise ValueError(f"family must be one of {TINY_FAMILIES}, got {family!r}")
    config_cls, model_cls = (  # type: ignore[var-annotated]
        (Qwen2_5_VLConfig, Qwen2_5_VLForConditionalGeneration)
        if family == "qwen2_5_vl"
        else (Qwen2VLConfig, Qwen2VLForConditionalGeneration)
    )
    _quiet()

    directory.mkdir(parents=True, exist_ok=True)
    tokenizer = _tokenizer()
    ids = {t: tokenizer.convert_tokens_to_ids(t) for t in SPECIAL_TOKENS}
    config = config_cls(
        text_config={
            "vocab_size": len(tokenizer),
            "hidden_size": 64,
            "intermediate_size": 128,
            "num_hidden_layers": 2,
            "num_attention_heads": 4,
            "num_key_value_heads": 2,
            "max_position_embeddings": 4096,
            "rope_parameters": {
                "rope_type": "default",
                "rope_theta": 10000.0,
                "mrope_section": [2, 3, 3],
            },
            "bos_token_id": ids["<|endoftext|>"],
            "eos_token_id": ids["<|im_end|>"],
            "pad_token_id": ids["<|endoftext|>"],
            "initializer_range": 0.2,
        },
        vision_config=_vision_config(family),
        image_token_id=ids["<|image_pad|>"],
        video_token_id=ids["<|video_pad|>"],
        vision_start_token_id=ids["<|vision_start|>"],
        vision_end_token_id=ids["<|vision_end|>"],
        tie_word_embeddings=False,
    )
    torch.manual_seed(seed)
    model = model_cls(config).eval()  # type: ignore[arg-type]
    model.save_pretrained(directory, safe_serialization=True)
    tokenizer.save_pretrained(directory)
    common = {
        "patch_size": 14,
        "temporal_patch_size": 2,
        "merge_size": 2,
        "size": {"shortest_edge": 28 * 28 * 4, "longest_edge": 28 * 28 * 8},
        "image_mean": [0.48145466, 0.4578275, 0.40821073],
        "image_std": [0.26862954, 0.26130258, 0.27577711],
        "rescale_factor": 1 / 255,
        "do_resize": True,
        "do_rescale": True,
        "do_normalize": True,
        "do_convert_rgb": True,
    }
    (directory / "preprocessor_config.json").write_text(
        json.dumps({**common, "image_processor_type": "Qwen2VLImageProcessor"}, indent=2)
    )
    (directory / "video_preprocessor_config.json").write_text(
        json.dumps({**common, "video_processor_type": "Qwen2VLVideoProcessor"}, indent=2)
    )
    (directory / "README.md").write_text(
        "# Tiny random LiFT critic\n\nRandom weights, for tests and demos only: its labels "
        "and reasons mean nothing. Written by `lift debug tiny-model critic`.\n"
    )
    return directory


def write_tiny_lora(model_dir: Path, directory: Path, seed: int = 1, rank: int = 4) -> Path:
    """Write a peft LoRA adapter for the tiny critic with random, non-zero weights."""
    import torch
    from peft import LoraConfig, get_peft_model
    from transformers import AutoModelForImageTextToText

    _quiet()
    base = AutoModelForImageTextToText.from_pretrained(str(model_dir))
    config = LoraConfig(
        r=rank,
        lora_alpha=2 * rank,
        target_modules=r".*language_model.*\.(q_proj|v_proj)",
        init_lora_weights=False,  # random B as well as A, so the adapter changes outputs
    )
    torch.manual_seed(seed)
    peft_model = get_peft_model(base, config)
    peft_model.save_pretrained(str(directory), safe_serialization=True)
    return directory
