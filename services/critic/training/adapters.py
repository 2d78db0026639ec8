"""What is trained on each family, and the adapter layout its ``apply_adapter`` loads back.

Both families train a LoRA on the language model's attention and MLP projections; the
vision tower stays frozen. The vision-to-language projector (Qwen2-VL's ``merger``, VILA's
``mm_projector``) is trained in full when asked (``--train-projector``); by default on
Qwen2-VL / Qwen2.5-VL (a small tiny-model run learns the rule test's visual cues through
it), not on VILA: LiFT's own recipe (LiFT-Critic/train/train_critic_13b.sh) passes
``--tune_mm_projector False``. What is written:

* Qwen2-VL / Qwen2.5-VL: a peft adapter directory (``adapter_config.json``,
  ``adapter_model.safetensors``; the merger, when trained, as peft ``modules_to_save``),
  which :meth:`Qwen2VLFamily.apply_adapter` loads with ``PeftModel.from_pretrained``.
* VILA: LiFT's LLaVA-style directory (``adapter_config.json`` naming every LoRA layer by its
  full path, ``adapter_model.safetensors`` with ``base_model.model.<module>.lora_A/B.weight``
  keys and the base's root ``config.json``), which :meth:`VilaFamily.apply_adapter` merges;
  a trained projector is written as ``non_lora_trainables.safetensors`` (read by
  ``llava_lora``) and as ``non_lora_trainables.bin`` (plain tensors, the only file LiFT's
  own loader reads; ``llava_lora`` prefers the safetensors one).

One class per layout, chosen by the family's name from :data:`FORMATS`.
"""

from __future__ import annotations

import copy
import json
import warnings
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from torch import nn

LLM_PROJECTIONS = ("q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj")
PEFT_PREFIX = "base_model.model."
ADAPTER = "default"


@dataclass(frozen=True)
class LoraOptions:
    """The LoRA's shape."""

    rank: int = 16
    alpha: int = 32
    projector: bool | None = None
    """Train the vision projector in full too (None: the format's default)."""


def _llm_targets(model: nn.Module, prefix: str) -> list[str]:
    """Full names of the language model's projection layers (under ``prefix``)."""
    names = [
        name
        for name, module in model.named_modules()
        if name.startswith(prefix)
        and isinstance(module, nn.Linear)
        and name.rsplit(".", 1)[-1] in LLM_PROJECTIONS
    ]
    if not names:
        raise ValueError(f"no language-model projection layers under {prefix!r} to train")
    return sorted(names)


def trainable_parameters(model: nn.Module) -> dict[str, nn.Parameter]:
    """The parameters the run trains, by name."""
    return {n: p for n, p in model.named_parameters() if p.requires_grad}


def upcast_trainables(model: nn.Module) -> int:
    """Keep every trainable tensor in float32 whatever the model's dtype (bf16 / fp16
    parameters barely move under small updates); the forward runs under autocast in the
    model's dtype. Returns how many tensors were upcast."""
    count = 0
    for p in trainable_parameters(model).values():
        if p.dtype != torch.float32:
            p.data = p.data.float()
            count += 1
    return count


class QwenFormat:
    """Qwen2-VL / Qwen2.5-VL: peft LoRA + the merger as ``modules_to_save``."""

    llm_prefix = "model.language_model."
    projector = "merger"
    train_projector = True

    def attach(self, model: nn.Module, lora: LoraOptions) -> Any:
        """Inject the LoRA into ``model`` in place (the scorer keeps using ``model``)."""
        from peft import LoraConfig, get_peft_model

        projector = self.train_projector if lora.projector is None else lora.projector
        config = LoraConfig(
            r=lora.rank,
            lora_alpha=lora.alpha,
            lora_dropout=0.0,
            target_modules=_llm_targets(model, self.llm_prefix),
            modules_to_save=[self.projector] if projector else None,
        )
        with warnings.catch_warnings():  # peft asks a deprecated transformers property
            warnings.simplefilter("ignore", FutureWarning)
            return get_peft_model(model, config)  # type: ignore[arg-type]

    def save(self, handle: Any, model: nn.Module, out: Path, base: Path) -> None:
        out.mkdir(parents=True, exist_ok=True)
        handle.save_pretrained(str(out), safe_serialization=True)
        _set_base_path(out / "adapter_config.json", base)


class VilaFormat:
    """VILA / LiFT-Critic: LLaVA-style LoRA directory + the projector as non-LoRA trainables."""

    llm_prefix = "llm.model.layers."
    projector = "mm_projector"
    train_projector = False

    def attach(self, model: nn.Module, lora: LoraOptions) -> Any:
        from peft import LoraConfig
        from peft.tuners.lora import LoraModel

        config = LoraConfig(
            r=lora.rank,
            lora_alpha=lora.alpha,
            lora_dropout=0.0,
            target_modules=_llm_targets(model, self.llm_prefix),
            task_type="CAUSAL_LM",
        )
        handle = LoraModel(model, config, ADAPTER)  # injects into ``model`` in place
        if self.train_projector if lora.projector is None else lora.projector:
            for p in getattr(model, self.projector).parameters():
                p.requires_grad_(True)
        return handle

    def save(self, handle: Any, model: nn.Module, out: Path, base: Path) -> None:
        from safetensors.torch import save_file

        out.mkdir(parents=True, exist_ok=True)
        lora, rest = {}, {}
        for name, p in model.named_parameters():
            if not p.requires_grad:
                continue
            value = p.detach().to("cpu", torch.float32).contiguous()
            if ".lora_" in name:  # X.lora_A.default.weight -> base_model.model.X.lora_A.weight
                lora[PEFT_PREFIX + name.replace(f".{ADAPTER}.", ".", 1)] = value
            else:
                rest[PEFT_PREFIX + name] = value
        save_file(lora, str(out / "adapter_model.safetensors"), metadata={"format": "pt"})
        for stale in ("non_lora_trainables.safetensors", "non_lora_trainables.bin"):
            (out / stale).unlink(missing_ok=True)
        if rest:
            save_file(rest, str(out / "non_lora_trainables.safetensors"), metadata={"format": "pt"})
            torch.save(rest, out / "non_lora_trainables.bin")  # plain tensors: LiFT's loader
        config = copy.deepcopy(handle.peft_config[ADAPTER])  # the live config stays trainable
        config.inference_mode = True
        config.save_pretrained(str(out))
        _set_base_path(out / "adapter_config.json", base)
        (out / "config.json").write_text((base / "config.json").read_text(encoding="utf-8"))


def _set_base_path(path: Path, base: Path) -> None:
    raw = json.loads(path.read_text(encoding="utf-8"))
    raw["base_model_name_or_path"] = str(base)
    path.write_text(json.dumps(raw, indent=2, sort_keys=True), encoding="utf-8")


AdapterFormat = QwenFormat | VilaFormat

FORMATS: dict[str, Callable[[], AdapterFormat]] = {
    "qwen2_vl": QwenFormat,
    "qwen2_5_vl": QwenFormat,
    "vila": VilaFormat,
}
"""Family name -> how its adapter is trained and written."""


def format_for(family: str) -> AdapterFormat:
    """The adapter format of ``family``, or a ValueError naming the trainable families."""
    try:
        return FORMATS[family]()
    except KeyError:
        raise ValueError(
            f"training is not supported for the {family} family; supported: "
            f"{', '.join(sorted(FORMATS))}"
        ) from None
