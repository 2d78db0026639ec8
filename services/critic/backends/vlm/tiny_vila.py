"""A tiny random VILA-1.5 checkpoint and a LiFT-style LoRA for it, in the published layout.

``write_tiny_vila`` writes what ``Efficient-Large-Model/VILA1.5-13b`` ships, at toy
sizes: a root ``config.json`` (model_type llava_llama, llm_cfg / vision_tower_cfg /
mm_projector_cfg, select layer -2, cls_patch, resize), ``llm/`` (LlamaForCausalLM
safetensors, config, a SentencePiece ``tokenizer.model`` with a LlamaTokenizer
config), ``vision_tower/`` (SiglipVisionModel + preprocessor config; a 5x5 patch
grid, odd like the real 27x27, so ``mlp_downsample`` pads) and ``mm_projector/``.

``write_tiny_vila_lora`` writes what LiFT's training saves for
``LiFT-Critic-13b-lora``: ``adapter_config.json`` (LoRA on every linear layer of the
language model, named by full module path), ``adapter_model.safetensors`` with
``base_model.model.llm...lora_A/B.weight`` keys, ``non_lora_trainables.bin`` (a plain
``torch.save`` of tensors under ``base_model.model.`` names; here the projector,
as if it had been tuned) and the fine-tuned model's root ``config.json``. The LoRA
weights are written directly, not through peft, so the loader is tested against
the layout rather than against our own writer.
"""

from __future__ import annotations

import io
import json
from pathlib import Path
from typing import Any

from lift.checkpoints import quiet_hf
from lift.templates import load_templates

IMAGE_SIZE, PATCH = 70, 14  # 5x5 patches per frame -> 3x3 tokens after mlp_downsample
LLM_HIDDEN, VISION_HIDDEN = 64, 32

_ANSWERS = [
    "The subjects match the prompt and the scene is correct",
    "The motion is smooth and natural with no stutter",
    "Frames are sharp and stable without flicker or noise",
    "Some objects are missing and the colors are wrong",
    "The camera jumps and the person freezes for a moment",
    "The hand of the person is deformed and a limb is missing",
    "A dog runs across a green field under a blue sky",
    "A red car drives along a wet city street at night",
]


def _corpus() -> list[str]:
    lines = []
    for preset in ("lift-13b", "lift-40b"):
        t = load_templates(preset)
        assert t.conversation is not None
        for d in t.questions:
            for a in _ANSWERS:
                lines.append(t.conversation.render("<image>\n" * 2 + t.question(d, a)))
        for word in t.labels.values():
            lines += [f"{word}{t.separator}{a}." for a in _ANSWERS] * 4
    return lines


def _write_tokenizer(directory: Path) -> None:
    """A SentencePiece BPE model with byte fallback, as Llama's ``tokenizer.model`` is."""
    import sentencepiece as spm

    model = io.BytesIO()
    spm.SentencePieceTrainer.train(
        sentence_iterator=iter(_corpus()),
        model_writer=model,
        model_type="bpe",
        vocab_size=600,
        byte_fallback=True,
        character_coverage=1.0,
        unk_id=0,
        bos_id=1,
        eos_id=2,
        pad_id=-1,
        add_dummy_prefix=True,
        remove_extra_whitespaces=False,
        normalization_rule_name="identity",
        split_digits=True,
        allow_whitespace_only_pieces=True,
        user_defined_symbols=["<|im_start|>", "<|im_end|>"],
        num_threads=1,
        minloglevel=2,
    )
    (directory / "tokenizer.model").write_bytes(model.getvalue())
    config = {
        "tokenizer_class": "LlamaTokenizer",
        "add_bos_token": True,
        "add_eos_token": False,
        "bos_token": "<s>",
        "eos_token": "</s>",
        "unk_token": "<unk>",
        "pad_token": "<unk>",
        "legacy": False,
        "model_max_length": 4096,
        "padding_side": "right",
        "clean_up_tokenization_spaces": False,
    }
    (directory / "tokenizer_config.json").write_text(json.dumps(config, indent=2))
    special = {"bos_token": "<s>", "eos_token": "</s>", "unk_token": "<unk>", "pad_token": "<unk>"}
    (directory / "special_tokens_map.json").write_text(json.dumps(special, indent=2))


def _vocab_size(directory: Path) -> int:
    import sentencepiece as spm

    return int(
        spm.SentencePieceProcessor(model_file=str(directory / "tokenizer.model")).vocab_size()
    )


def _as_dict(config: Any) -> dict[str, Any]:
    raw: dict[str, Any] = config.to_dict()
    return raw


INTERN_IMAGE = 56  # 4x4 patches + a class token; "patch" selection drops it -> 2x2 tokens


def _write_intern_tower(tower_dir: Path) -> dict[str, Any]:
    """VILA1.5-40B's vision_tower/ at toy size: InternViT config (with the remote-code auto_map
    the published one carries, which we never follow) and safetensors under its own names."""
    import torch
    from safetensors.torch import save_file

    from lift.services.critic.backends.vlm.intern_vit import InternConfig, InternVisionModel

    config: dict[str, Any] = {
        "_name_or_path": "./vision_tower",
        "architectures": ["InternVisionModel"],
        "auto_map": {
            "AutoConfig": "configuration_intern_vit.InternVisionConfig",
            "AutoModel": "modeling_intern_vit.InternVisionModel",
        },
        "attention_dropout": 0.0,
        "drop_path_rate": 0.0,
        "dropout": 0.0,
        "hidden_act": "gelu",
        "hidden_size": VISION_HIDDEN,
        "image_size": INTERN_IMAGE,
        "initializer_factor": 0.1,
        "initializer_range": 1e-10,
        "intermediate_size": 64,
        "layer_norm_eps": 1e-6,
        "model_type": "intern_vit_6b",
        "num_attention_heads": 2,
        "num_channels": 3,
        "num_hidden_layers": 3,
        "patch_size": PATCH,
        "qk_normalization": True,
        "qkv_bias": False,
        "torch_dtype": "float32",
        "use_flash_attn": True,
    }
    model = InternVisionModel(InternConfig.from_dict(config))
    with torch.no_grad():
        for p in model.parameters():
            p.copy_(torch.randn_like(p) * 0.2)
    save_file(
        {k: v.contiguous() for k, v in model.state_dict().items()},
        str(tower_dir / "model.safetensors"),
        metadata={"format": "pt"},
    )
    (tower_dir / "config.json").write_text(json.dumps(config, indent=2))
    return config


def write_tiny_vila(directory: Path, seed: int = 0, tower: str = "siglip") -> Path:
    """Write a tiny random VILA-1.5 checkpoint (loads with --backend vlm --model DIR).

    ``tower="intern"`` writes the VILA1.5-40B layout instead (InternViT tower, "patch"
    feature selection); serve it with ``--templates lift-40b``.
    """
    if tower not in ("siglip", "intern"):
        raise ValueError(f"tower must be siglip or intern, got {tower!r}")
    import torch
    from safetensors.torch import save_file
    from transformers import (
        LlamaConfig,
        LlamaForCausalLM,
        SiglipVisionConfig,
        SiglipVisionModel,
    )

    from lift.services.critic.backends.vlm.projector import Projector

    quiet_hf()
    directory.mkdir(parents=True, exist_ok=True)
    llm_dir, tower_dir, proj_dir = (directory / p for p in ("llm", "vision_tower", "mm_projector"))
    for d in (llm_dir, tower_dir, proj_dir):
        d.mkdir(exist_ok=True)
    _write_tokenizer(llm_dir)
    llm_config = LlamaConfig(
        vocab_size=_vocab_size(llm_dir),
        hidden_size=LLM_HIDDEN,
        intermediate_size=128,
        num_hidden_layers=2,
        num_attention_heads=4,
        num_key_value_heads=4,
        max_position_embeddings=4096,
        rms_norm_eps=1e-5,
        bos_token_id=1,
        eos_token_id=2,
        pad_token_id=0,
        tie_word_embeddings=False,
        initializer_range=0.2,
    )
    llm_config.tokenizer_model_max_length = 4096
    llm_config.tokenizer_padding_side = "right"
    tower_config = SiglipVisionConfig(
        hidden_size=VISION_HIDDEN,
        intermediate_size=64,
        num_hidden_layers=3,
        num_attention_heads=2,
        image_size=IMAGE_SIZE,
        patch_size=PATCH,
        hidden_act="gelu_pytorch_tanh",
        layer_norm_eps=1e-6,
    )
    torch.manual_seed(seed)
    llm = LlamaForCausalLM(llm_config).eval()
    llm.save_pretrained(str(llm_dir), safe_serialization=True)
    siglip = SiglipVisionModel(tower_config).eval()
    with torch.no_grad():  # SigLIP's init leaves the position table at zero-ish scale
        for p in siglip.parameters():
            p.add_(torch.randn_like(p) * 0.05)
    siglip.save_pretrained(str(tower_dir), safe_serialization=True)
    _published_tower_keys(tower_dir / "model.safetensors")
    tower_cfg = dict(_as_dict(tower_config), _name_or_path="./vision_tower")
    if tower == "intern":
        for f in tower_dir.iterdir():
            f.unlink()
        tower_cfg = _write_intern_tower(tower_dir)
    preprocessor = {  # google/siglip-so400m-patch14-384's, at the tiny size
        "do_normalize": True,
        "do_rescale": True,
        "do_resize": True,
        "image_mean": [0.5, 0.5, 0.5],
        "image_processor_type": "SiglipImageProcessor",
        "image_std": [0.5, 0.5, 0.5],
        "processor_class": "SiglipProcessor",
        "resample": 3,
        "rescale_factor": 1 / 255,
        "size": {"height": IMAGE_SIZE, "width": IMAGE_SIZE},
    }
    if tower == "siglip":  # VILA's InternViT preprocessing is code, not a file
        (tower_dir / "preprocessor_config.json").write_text(json.dumps(preprocessor, indent=2))
    projector = Projector("mlp_downsample", VISION_HIDDEN, LLM_HIDDEN)
    with torch.no_grad():
        for p in projector.parameters():
            p.copy_(torch.randn_like(p) * 0.3)
    save_file(
        {k: v.contiguous() for k, v in projector.state_dict().items()},
        str(proj_dir / "model.safetensors"),
        metadata={"format": "pt"},
    )
    proj_config = {
        "_name_or_path": "./mm_projector",
        "architectures": ["MultimodalProjector"],
        "mm_projector_type": "mlp_downsample",
        "model_type": "v2l_projector",
        "torch_dtype": "float32",
    }
    (proj_dir / "config.json").write_text(json.dumps(proj_config, indent=2))
    root = {
        "_name_or_path": "./vlm",
        "architectures": ["LlavaLlamaModel"],
        "drop_path_rate": 0.0,
        "hidden_size": LLM_HIDDEN,
        "image_aspect_ratio": "resize",
        "interpolate_mode": "linear",
        "llm_cfg": dict(_as_dict(llm_config), _name_or_path="./llm"),
        "mm_hidden_size": VISION_HIDDEN,
        "mm_projector_cfg": proj_config,
        "mm_projector_lr": None,
        "mm_use_im_patch_token": False,
        "mm_use_im_start_end": False,
        "mm_vision_select_feature": "patch" if tower == "intern" else "cls_patch",
        "mm_vision_select_layer": -2,
        "model_dtype": "torch.float32",
        "model_type": "llava_llama",
        "num_video_frames": 8,
        "resume_path": "./vlm",
        "s2": False,
        "s2_max_split_size": 336,
        "s2_scales": "336,672,1008",
        "tune_language_model": True,
        "tune_mm_projector": True,
        "tune_vision_tower": True,
        "vision_resolution": -1,
        "vision_tower_cfg": tower_cfg,
    }
    (directory / "config.json").write_text(json.dumps(root, indent=2, default=str))
    (directory / "README.md").write_text(
        "# Tiny random VILA-1.5 critic\n\nRandom weights in the published VILA1.5 layout, for "
        "tests and demos only. Written by `lift debug tiny-model critic --family vila`.\n"
    )
    return directory


def _published_tower_keys(path: Path) -> None:
    """SigLIP weights under ``vision_model.*``, as VILA's checkpoints (transformers 4.x) hold them."""
    from safetensors.torch import load_file, save_file

    state = load_file(str(path))
    named = {
        k if k.startswith("vision_model.") else f"vision_model.{k}": v for k, v in state.items()
    }
    save_file(named, str(path), metadata={"format": "pt"})


LLM_LINEAR: tuple[str, ...] = ("self_attn.q_proj", "self_attn.k_proj", "self_attn.v_proj")
LLM_LINEAR += ("self_attn.o_proj", "mlp.gate_proj", "mlp.up_proj", "mlp.down_proj")


def write_tiny_vila_lora(base: Path, directory: Path, seed: int = 1, rank: int = 4) -> Path:
    """Write a LiFT-style LoRA directory for the tiny VILA checkpoint at ``base``."""
    import torch
    from safetensors.torch import save_file

    root = json.loads((base / "config.json").read_text(encoding="utf-8"))
    llm = root["llm_cfg"]
    hidden, inter, layers = llm["hidden_size"], llm["intermediate_size"], llm["num_hidden_layers"]
    shapes = {
        "self_attn.q_proj": (hidden, hidden),
        "self_attn.k_proj": (hidden, hidden),
        "self_attn.v_proj": (hidden, hidden),
        "self_attn.o_proj": (hidden, hidden),
        "mlp.gate_proj": (hidden, inter),
        "mlp.up_proj": (hidden, inter),
        "mlp.down_proj": (inter, hidden),
    }
    gen = torch.Generator().manual_seed(seed)
    targets, weights = [], {}
    for i in range(layers):
        for name in LLM_LINEAR:
            module = f"llm.model.layers.{i}.{name}"
            targets.append(module)
            fan_in, fan_out = shapes[name]
            key = f"base_model.model.{module}"
            weights[f"{key}.lora_A.weight"] = torch.randn(rank, fan_in, generator=gen) * 0.3
            weights[f"{key}.lora_B.weight"] = torch.randn(fan_out, rank, generator=gen) * 0.3
    directory.mkdir(parents=True, exist_ok=True)
    save_file(weights, str(directory / "adapter_model.safetensors"), metadata={"format": "pt"})
    adapter_config = {
        "peft_type": "LORA",
        "task_type": "CAUSAL_LM",
        "base_model_name_or_path": str(base),
        "r": rank,
        "lora_alpha": 2 * rank,
        "lora_dropout": 0.05,
        "bias": "none",
        "fan_in_fan_out": False,
        "inference_mode": True,
        "init_lora_weights": True,
        "layers_pattern": None,
        "layers_to_transform": None,
        "modules_to_save": None,
        "rank_pattern": {},
        "alpha_pattern": {},
        "revision": None,
        "use_dora": False,
        "use_rslora": False,
        "target_modules": sorted(targets),
    }
    (directory / "adapter_config.json").write_text(json.dumps(adapter_config, indent=2))
    # The tuned projector, saved as LiFT's trainer saves non-LoRA trainables.
    from safetensors.torch import load_file

    proj = load_file(str(base / "mm_projector" / "model.safetensors"))
    tuned = {
        f"base_model.model.mm_projector.{k}": v + torch.randn(v.shape, generator=gen) * 0.2
        for k, v in proj.items()
    }
    torch.save(tuned, directory / "non_lora_trainables.bin")
    (directory / "config.json").write_text((base / "config.json").read_text(encoding="utf-8"))
    return directory
