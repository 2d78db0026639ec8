"""A tiny random VideoAlign / VideoReward checkpoint in the published layout: tests, demos, `lift debug`.

``DIR/model_config.json`` (data, training, model, LoRA and inference configs, as
VideoAlign's training script writes them; ``model_name_or_path`` the hub id, as
published), ``DIR/checkpoint-N/adapter_model.safetensors`` (LoRA on every linear layer of
the language model, peft's names in the older transformers layout VideoAlign was trained
with) + ``non_lora_state_dict.pth`` (the reward head, the embeddings resized for the three
reward tokens, the merger) and ``adapter_config.json``; the base is a tiny random Qwen2-VL
at ``DIR/base`` (where the ``reward_head`` protocol looks when the hub id is not a local
directory). ``full=True`` writes ``checkpoint-N/model.pth`` (one full state dict) instead.
The weights are random: the scores mean nothing but are deterministic.
"""

from __future__ import annotations

import json
from pathlib import Path

TINY_INFERENCE = {
    "VQ_mean": 0.25,
    "VQ_std": 1.5,
    "MQ_mean": -0.5,
    "MQ_std": 2.0,
    "TA_mean": 0.1,
    "TA_std": 0.75,
}
"""The tiny checkpoint's normalisation (made up, distinct per output so mix-ups show)."""
TINY_STEP = 4
TINY_LORA_R = 4
TINY_LORA_ALPHA = 8
TINY_MAX_PIXELS = 28 * 28 * 4


def _old_name(name: str) -> str:
    """This transformers' Qwen2-VL name -> the older layout VideoAlign saved (model.layers.*)."""
    if name.startswith("model.visual."):
        return name.removeprefix("model.")
    if name.startswith("model.language_model."):
        return "model." + name.removeprefix("model.language_model.")
    return name


def model_config(fps: float | None = 2.0, num_frames: int | None = None) -> dict[str, object]:
    """The tiny checkpoint's model_config.json content."""
    return {
        "data_config": {
            "meta_data": "datasets/train/train.csv",
            "data_dir": "datasets/train",
            "meta_data_test": None,
            "max_frame_pixels": TINY_MAX_PIXELS,
            "num_frames": num_frames,
            "fps": fps,
            "p_shuffle_frames": 0.0,
            "p_color_jitter": 0.0,
            "eval_dim": ["VQ", "MQ", "TA"],
            "prompt_template_type": "detailed_special",
            "add_noise": False,
            "sample_type": "uniform",
            "use_tied_data": True,
        },
        "training_args": {"output_dir": "rm_output", "bf16": True, "learning_rate": 2e-6},
        "model_config": {
            "model_name_or_path": "Qwen/Qwen2-VL-2B-Instruct",
            "model_revision": "main",
            "output_dim": 3,
            "use_special_tokens": True,
            "freeze_vision_tower": True,
            "freeze_llm": False,
            "tune_merger": True,
            "torch_dtype": "bfloat16",
            "trust_remote_code": False,
            "attn_implementation": None,
            "load_in_8bit": False,
            "load_in_4bit": False,
            "bnb_4bit_quant_type": "nf4",
            "use_bnb_nested_quant": False,
            "reward_token": "special",
            "loss_type": "btt",
        },
        "peft_lora_config": {
            "lora_enable": True,
            "vision_lora": False,
            "lora_r": TINY_LORA_R,
            "lora_alpha": TINY_LORA_ALPHA,
            "lora_dropout": 0.05,
            "lora_target_modules": None,
            "lora_namespan_exclude": ["lm_head", "rm_head", "embed_tokens", "visual"],
            "lora_modules_to_save": None,
            "lora_task_type": "CAUSAL_LM",
            "use_rslora": False,
            "num_lora_modules": -1,
        },
        "inference_config": dict(TINY_INFERENCE),
    }


def write_tiny_videoalign(directory: Path, seed: int = 0, full: bool = False) -> Path:
    """Write a tiny random VideoReward checkpoint (and its tiny base at ``directory/base``)."""
    import torch
    from safetensors.torch import save_file
    from transformers import AutoModelForImageTextToText, AutoTokenizer

    from lift.services.critic.backends.vlm.protocols.reward_head import REWARD_TOKENS
    from lift.services.critic.backends.vlm.tiny import _quiet, write_tiny_critic

    _quiet()
    directory.mkdir(parents=True, exist_ok=True)
    base = write_tiny_critic(directory / "base", seed=seed)
    tokenizer = AutoTokenizer.from_pretrained(str(base))
    tokenizer.add_special_tokens({"additional_special_tokens": list(REWARD_TOKENS)})
    model = AutoModelForImageTextToText.from_pretrained(str(base))
    torch.manual_seed(seed + 1)
    model.resize_token_embeddings(len(tokenizer), mean_resizing=False)
    hidden = model.config.get_text_config().hidden_size
    g = torch.Generator().manual_seed(seed + 2)

    def rand(*shape: int, scale: float = 0.2) -> torch.Tensor:
        return (torch.randn(*shape, generator=g) * scale).contiguous()

    # what training changed outside the LoRA: the embeddings (reward tokens), the merger
    non_lora: dict[str, torch.Tensor] = {}
    for name, param in model.named_parameters():
        if name.endswith("embed_tokens.weight") or ".merger." in name:
            non_lora["base_model.model." + _old_name(name)] = (
                param.detach() + rand(*param.shape, scale=0.05)
            ).contiguous()
    non_lora["base_model.model.rm_head.weight"] = rand(3, hidden, scale=0.5)
    lora: dict[str, torch.Tensor] = {}
    targets = []
    for name, module in model.named_modules():
        if isinstance(module, torch.nn.Linear) and not any(
            ex in name for ex in ("lm_head", "rm_head", "embed_tokens", "visual")
        ):
            old = "base_model.model." + _old_name(name)
            lora[f"{old}.lora_A.weight"] = rand(TINY_LORA_R, module.in_features)
            lora[f"{old}.lora_B.weight"] = rand(module.out_features, TINY_LORA_R)
            targets.append(_old_name(name))

    ckpt = directory / f"checkpoint-{TINY_STEP}"
    ckpt.mkdir(exist_ok=True)
    if full:
        state = {"base_model.model." + _old_name(k): v for k, v in model.state_dict().items()}
        state = {k: v for k, v in state.items() if not k.endswith("lm_head.weight")}
        state.update(non_lora)
        state.update(lora)
        torch.save({k: v.contiguous().clone() for k, v in state.items()}, ckpt / "model.pth")
    else:
        save_file(lora, str(ckpt / "adapter_model.safetensors"))
        torch.save(non_lora, ckpt / "non_lora_state_dict.pth")
        adapter_config = {
            "peft_type": "LORA",
            "task_type": "CAUSAL_LM",
            "base_model_name_or_path": "Qwen/Qwen2-VL-2B-Instruct",
            "r": TINY_LORA_R,
            "lora_alpha": TINY_LORA_ALPHA,
            "lora_dropout": 0.05,
            "bias": "none",
            "target_modules": sorted(targets),
            "use_rslora": False,
        }
        (ckpt / "adapter_config.json").write_text(json.dumps(adapter_config, indent=2))
    (directory / "model_config.json").write_text(json.dumps(model_config(), indent=4))
    (directory / "README.md").write_text(
        "# Tiny random VideoReward\n\nRandom weights in VideoAlign's published layout, for tests "
        "and demos only: its scores mean nothing. Written by `lift debug tiny-model critic "
        "--family videoalign`; the tiny base Qwen2-VL is in base/.\n"
    )
    return directory
