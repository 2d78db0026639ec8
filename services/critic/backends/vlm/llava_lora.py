"""LLaVA/VILA-style LoRA directories (LiFT-Critic-13b-lora), merged into a loaded VILA model.

Such a directory holds what LiFT's trainer saves::

    adapter_config.json        peft LoRA config; target_modules name the language model's
                               linear layers by full path (llm.model.layers.N.self_attn.q_proj)
    adapter_model.safetensors  (or .bin) base_model.model.<module>.lora_A/B.weight
    non_lora_trainables.bin    torch.save of the other tuned tensors (base_model.model.<name>)
    config.json                the fine-tuned model's root config

The reference applies it as: load the non-LoRA tensors into the base, wrap it in
peft, merge. We do the same with stricter checks: pickles load weights-only (a
pickle that would run code is refused), every key must address a parameter of
the model with the same shape, every LoRA layer the config asks for must have its
weights, and the adapter's config.json must describe a model of the base's sizes.
(The reference strips only ``base_model.`` from non-LoRA names and loads them
non-strictly, so under VILA's ``LlavaLlamaModel`` they silently match nothing; here
they load into the parts they name.)
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import torch
from torch import nn

from lift.checkpoints import load_weights_only
from lift.services.critic.backends.vlm.families.vila import CheckpointError, VilaLayout

PEFT_PREFIX = "base_model.model."
LORA_PARTS = ("lora_A", "lora_B", "lora_magnitude_vector", "lora_embedding_A", "lora_embedding_B")
ADAPTER_NAME = "default"
TOWER = "vision_tower.vision_tower."


def _tensors(directory: Path, stem: str) -> dict[str, torch.Tensor] | None:
    safe, pickled = directory / f"{stem}.safetensors", directory / f"{stem}.bin"
    if safe.is_file():
        from safetensors.torch import load_file

        try:
            return load_file(str(safe))
        except Exception as exc:
            raise CheckpointError(f"{safe} is not a readable safetensors file: {exc}") from None
    if pickled.is_file():
        try:
            return load_weights_only(pickled)
        except ValueError as exc:
            raise CheckpointError(str(exc)) from None
    return None


def _sizes_of_root(raw: dict[str, Any]) -> dict[str, Any]:
    llm = raw.get("llm_cfg") if isinstance(raw.get("llm_cfg"), dict) else {}
    tower = raw.get("vision_tower_cfg") if isinstance(raw.get("vision_tower_cfg"), dict) else {}
    proj = raw.get("mm_projector_cfg") if isinstance(raw.get("mm_projector_cfg"), dict) else {}
    assert isinstance(llm, dict) and isinstance(tower, dict) and isinstance(proj, dict)
    return {
        "llm hidden_size": llm.get("hidden_size", raw.get("hidden_size")),
        "llm num_hidden_layers": llm.get("num_hidden_layers"),
        "llm intermediate_size": llm.get("intermediate_size"),
        "llm num_attention_heads": llm.get("num_attention_heads"),
        "llm vocab_size": llm.get("vocab_size"),
        "vision hidden_size": tower.get("hidden_size", raw.get("mm_hidden_size")),
        "vision num_hidden_layers": tower.get("num_hidden_layers"),
        "vision image_size": tower.get("image_size"),
        "vision patch_size": tower.get("patch_size"),
        "mm_projector_type": proj.get("mm_projector_type"),
    }


def check_sizes(layout: VilaLayout, adapter: Path) -> None:
    """Refuse an adapter whose config.json describes a model of other sizes than the base."""
    path = adapter / "config.json"
    if not path.is_file():
        return
    try:
        raw = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise CheckpointError(f"{path} is not readable JSON ({exc})") from None
    if not isinstance(raw, dict):
        raise CheckpointError(f"{path} must hold a JSON object")
    base, tuned = layout.sizes(), _sizes_of_root(raw)
    wrong = [
        f"{k}: adapter {tuned[k]}, base {base[k]}"
        for k in base
        if tuned.get(k) is not None and base[k] is not None and tuned[k] != base[k]
    ]
    if wrong:
        raise CheckpointError(
            f"the adapter {adapter} was trained on a model of other sizes than {layout.root} "
            f"({'; '.join(wrong)}); give the base it was trained from as --model"
        )


def _own_name(key: str, names: set[str]) -> str | None:
    """The model's name for a saved non-LoRA key (peft-wrapped or not), or None."""
    candidates = [key]
    for prefix in (PEFT_PREFIX, "base_model.", "model."):
        if key.startswith(prefix):
            candidates.append(key[len(prefix) :])
    candidates += [c[len("model.") :] for c in list(candidates) if c.startswith("model.")]
    # transformers 4.x named SigLIP's parameters under vision_model.; 5.x has no such level
    candidates += [_no_level(c) for c in list(candidates) if c.startswith(TOWER + "vision_model.")]
    return next((c for c in candidates if c in names), None)


def _no_level(name: str) -> str:
    """A tower name without transformers 4.x's ``vision_model.`` level (any prefix kept)."""
    return name.replace(TOWER + "vision_model.", TOWER, 1)


def load_non_lora(model: nn.Module, adapter: Path) -> int:
    """Load ``non_lora_trainables`` into ``model``; returns how many tensors it held."""
    state = _tensors(adapter, "non_lora_trainables")
    if not state:
        return 0
    own = model.state_dict()
    names = set(own)
    unknown, wrong, mapped = [], [], {}
    for key, value in state.items():
        name = _own_name(key, names)
        if name is None:
            unknown.append(key)
        elif tuple(value.shape) != tuple(own[name].shape):
            wrong.append(f"{key} {tuple(value.shape)} vs {tuple(own[name].shape)}")
        else:
            mapped[name] = value
    if unknown:
        raise CheckpointError(
            f"{adapter}/non_lora_trainables: {len(unknown)} tensors match no part of the model, "
            f"e.g. {unknown[:3]}; was it trained on another architecture?"
        )
    if wrong:
        raise CheckpointError(
            f"{adapter}/non_lora_trainables: shapes differ from the base: {wrong[:3]}"
        )
    with torch.no_grad():
        for name, value in mapped.items():
            own[name].copy_(value.to(own[name].dtype))
    return len(mapped)


def _param_name(key: str) -> str | None:
    """``base_model.model.X.lora_A.weight`` -> ``X.lora_A.default.weight`` (peft's in-memory name)."""
    if not key.startswith(PEFT_PREFIX):
        return None
    rest = key[len(PEFT_PREFIX) :]
    for part in LORA_PARTS:
        marker = f".{part}"
        if marker in rest:
            head, tail = rest.split(marker, 1)
            return f"{head}{marker}.{ADAPTER_NAME}{tail}"
    return None


def apply_lora(model: nn.Module, adapter: Path) -> nn.Module:
    """Inject the adapter's LoRA layers, load its weights strictly, merge; returns the model."""
    from peft import LoraConfig
    from peft.tuners.lora import LoraModel

    try:
        config = LoraConfig.from_pretrained(str(adapter))
    except (OSError, TypeError, ValueError) as exc:
        raise CheckpointError(
            f"{adapter}/adapter_config.json is not a LoRA config: {exc}"
        ) from None
    kind = getattr(config, "peft_type", None)
    if not isinstance(config, LoraConfig) or kind != "LORA":
        # peft hands back the config class its peft_type names (IA3Config, ...)
        raise CheckpointError(
            f"{adapter}/adapter_config.json describes a {getattr(kind, 'value', kind)} adapter; "
            "only LoRA adapters (peft_type LORA) apply to VILA"
        )
    r, alpha = config.r, config.lora_alpha
    if not (isinstance(r, int) and not isinstance(r, bool) and r > 0) or not (
        isinstance(alpha, (int, float)) and not isinstance(alpha, bool)
    ):
        raise CheckpointError(
            f"{adapter}/adapter_config.json: r must be a positive integer and lora_alpha a "
            f"number (got r={r!r}, lora_alpha={alpha!r})"
        )
    config.inference_mode = True
    weights = _tensors(adapter, "adapter_model")
    if weights is None:
        raise CheckpointError(f"{adapter} has no adapter_model.safetensors (or adapter_model.bin)")
    if not any(n.startswith(TOWER + "vision_model.") for n, _ in model.named_parameters()):
        # LoRA on the tower (VILA's lora_vt) names it as transformers 4.x did
        if isinstance(config.target_modules, (list, set)):
            config.target_modules = sorted({_no_level(t) for t in config.target_modules})
        weights = {_no_level(k): v for k, v in weights.items()}
    try:
        lora = LoraModel(model, config, ADAPTER_NAME)
    except ValueError as exc:
        raise CheckpointError(
            f"{adapter}: its target_modules match no layer of the model ({exc})"
        ) from None
    except (TypeError, AttributeError, KeyError) as exc:
        raise CheckpointError(
            f"{adapter}/adapter_config.json does not apply to this model: {exc}"
        ) from None
    params = dict(model.named_parameters())
    unknown, wrong, loaded = [], [], set()
    for key, value in weights.items():
        name = _param_name(key)
        if name is None or name not in params:
            unknown.append(key)
            continue
        if tuple(value.shape) != tuple(params[name].shape):
            wrong.append(f"{key} {tuple(value.shape)} vs {tuple(params[name].shape)}")
            continue
        with torch.no_grad():
            params[name].copy_(value.to(params[name].dtype))
        loaded.add(name)
    if unknown:
        raise CheckpointError(
            f"{adapter}: {len(unknown)} adapter weights match no LoRA layer of the model, "
            f"e.g. {unknown[:3]}"
        )
    if wrong:
        raise CheckpointError(
            f"{adapter}: adapter weight shapes differ from the model: {wrong[:3]}"
        )
    empty = sorted(
        n for n in params if f".{ADAPTER_NAME}" in n and "lora_" in n and n not in loaded
    )
    if empty:
        raise CheckpointError(
            f"{adapter}: target_modules reach {len(empty)} LoRA weights the file does not hold, "
            f"e.g. {empty[:3]}"
        )
    merged: nn.Module = lora.merge_and_unload()
    return merged.eval()
