"""VILA-1.5 (``model_type`` llava_llama): the LiFT-Critic base, loaded as published.

A VILA-1.5 directory holds three parts and a root ``config.json``::

    config.json        model_type llava_llama; llm_cfg / vision_tower_cfg / mm_projector_cfg,
                       mm_vision_select_layer, mm_vision_select_feature, image_aspect_ratio,
                       mm_use_im_start_end, hidden_size, mm_hidden_size
    llm/               LlamaForCausalLM weights + config + tokenizer
    vision_tower/      SiglipVisionModel weights + config + preprocessor_config.json
    mm_projector/      projector config (mm_projector_type) + weights named layers.*

Each part is built from transformers' own classes (Llama, SigLIP) or our own
projector module (``projector.py``) and loaded from its safetensors; nothing in
the checkpoint is executed. The parts sit in :class:`VilaModel` under the names
the reference uses (``llm``, ``vision_tower.vision_tower``, ``mm_projector``), so
LiFT's LoRA and ``non_lora_trainables.bin`` keys address them as they are.

The prompt follows the reference (``run_critic_13b.py`` with the LLaVA
``tokenizer_image_token``): one ``<image>`` line per sampled frame, then the
caption and question, in a plain-text conversation format from the template
file (``vicuna_v1`` for 13B, ``hermes-2`` for 40B). The text around the images
is tokenized chunk by chunk, as the reference does, and every ``<image>``
becomes that frame's projected tokens.
"""

from __future__ import annotations

import json
import math
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from PIL import Image
from torch import nn

from lift.services.critic.backends.vlm.families.base import VisionInput, decode_last, logits_at
from lift.services.critic.backends.vlm.intern_vit import (
    IMAGENET_MEAN,
    IMAGENET_STD,
    InternConfig,
    InternVisionModel,
)
from lift.services.critic.backends.vlm.projector import Projector
from lift.templates import Conversation, Templates

IMAGE_MARKER = "<image>"
IM_START, IM_END = "<im_start>", "<im_end>"
PLACEHOLDER = -200
"""Stands for one image feature position in token ids (never embedded; LLaVA's IMAGE_TOKEN_INDEX)."""
ASPECT_MODES = ("resize", "pad")
FEATURES = ("cls_patch", "patch")


class CheckpointError(ValueError):
    """The directory is not a VILA-1.5 checkpoint this loader can take; the message says why."""


MAX_CONFIG_BYTES = 16 * 1024 * 1024
"""Config files are small (VILA1.5's root config is ~8 KB); anything past this is refused unread."""


def _read_json(path: Path, what: str) -> dict[str, Any]:
    try:
        if path.exists() and not path.is_file():
            raise CheckpointError(f"{what}: {path} is not a regular file")
        with path.open("rb") as f:
            data = f.read(MAX_CONFIG_BYTES + 1)
        if len(data) > MAX_CONFIG_BYTES:
            raise CheckpointError(
                f"{what}: {path} is over {MAX_CONFIG_BYTES >> 20} MiB; not a config"
            )
        raw = json.loads(data.decode("utf-8"))
    except FileNotFoundError:
        raise CheckpointError(f"{what}: {path} is missing") from None
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise CheckpointError(f"{what}: {path} is not readable JSON ({exc})") from None
    if not isinstance(raw, dict):
        raise CheckpointError(f"{what}: {path} must hold a JSON object")
    return raw


def _int(value: Any, what: str) -> int:
    """A whole number from a config, or a CheckpointError naming the field."""
    if (
        isinstance(value, bool)
        or not isinstance(value, (int, float))
        or not math.isfinite(value)  # JSON's Infinity/NaN: int() raised OverflowError
        or value != int(value)
    ):
        raise CheckpointError(f"{what} must be a whole number, got {value!r}")
    return int(value)


def _part_config(root: Path, raw: dict[str, Any], part: str) -> dict[str, Any]:
    """``<part>/config.json``, else the root's ``<part>_cfg`` (both as published)."""
    directory = root / part
    if not directory.is_dir():
        hint = (
            " (it holds adapter_config.json: it is a LoRA adapter; give it as --adapter and "
            "the VILA base it was trained on as --model)"
            if (root / "adapter_config.json").is_file()
            else ""
        )
        raise CheckpointError(
            f"{root} is not a VILA checkpoint: the {part}/ folder is missing{hint}"
        )
    path = directory / "config.json"
    if path.exists() or path.is_symlink():  # _read_json refuses what is not a regular file
        return _read_json(path, f"the {part} config")
    cfg = raw.get(f"{part}_cfg")
    if isinstance(cfg, dict):
        return cfg
    raise CheckpointError(f"{root}: neither {part}/config.json nor {part}_cfg in config.json")


@dataclass(frozen=True)
class VilaLayout:
    """What the root config and the part configs say, checked before any weight is read."""

    root: Path
    llm: dict[str, Any]
    tower: dict[str, Any]
    projector_type: str
    hidden: int
    mm_hidden: int
    select_layer: int
    select_feature: str
    aspect: str
    im_start_end: bool
    max_length: int | None
    intern: bool = False
    """The tower is InternViT-6B (VILA1.5-40B): our own module, a class token before the patches."""

    @classmethod
    def read(cls, root: Path) -> VilaLayout:
        raw = _read_json(root / "config.json", "the VILA root config")
        llm = _part_config(root, raw, "llm")
        tower = _part_config(root, raw, "vision_tower")
        proj = _part_config(root, raw, "mm_projector")
        llm_type, tower_type = llm.get("model_type"), tower.get("model_type")
        if llm_type != "llama":
            raise CheckpointError(
                f"{root}: llm/ is a {llm_type!r} model; the vila family loads Llama-architecture "
                "language models (VILA-1.5 3B/8B/13B/40B)"
            )
        intern = tower_type == "intern_vit_6b"
        if tower_type not in ("siglip_vision_model", "siglip", "intern_vit_6b"):
            raise CheckpointError(
                f"{root}: vision_tower/ is a {tower_type!r} model; the vila family loads SigLIP "
                "towers (siglip_vision_model) and InternViT-6B (intern_vit_6b, VILA1.5-40B)"
            )
        if tower_type == "siglip":  # a full SigLIP config: its vision half
            tower = tower.get("vision_config") or {}
        if raw.get("s2"):
            raise CheckpointError(f"{root}: S2 multi-scale vision (s2: true) is not supported")
        resolution = raw.get("vision_resolution", -1)
        if resolution not in (-1, None, tower.get("image_size")):
            raise CheckpointError(
                f"{root}: vision_resolution {resolution} differs from the tower's image_size "
                f"{tower.get('image_size')} (interpolated position embeddings are not supported)"
            )
        hidden = _int(llm.get("hidden_size", raw.get("hidden_size")), f"{root}: llm hidden_size")
        mm_hidden = _int(
            tower.get("hidden_size", raw.get("mm_hidden_size")), f"{root}: vision hidden_size"
        )
        if raw.get("hidden_size") not in (None, hidden):
            raise CheckpointError(
                f"{root}: config.json hidden_size {raw['hidden_size']} does not match llm/ "
                f"hidden_size {hidden}"
            )
        if raw.get("mm_hidden_size") not in (None, mm_hidden):
            raise CheckpointError(
                f"{root}: config.json mm_hidden_size {raw['mm_hidden_size']} does not match "
                f"vision_tower/ hidden_size {mm_hidden}"
            )
        layers = _int(tower.get("num_hidden_layers"), f"{root}: vision num_hidden_layers")
        select = _int(raw.get("mm_vision_select_layer", -2), f"{root}: mm_vision_select_layer")
        for key in ("image_size", "patch_size"):
            if _int(tower.get(key), f"{root}: vision {key}") < 1:
                raise CheckpointError(f"{root}: vision {key} must be positive")
        if not -layers - 1 <= select <= layers:
            raise CheckpointError(
                f"{root}: mm_vision_select_layer {select} is outside the tower's {layers} layers"
            )
        feature = str(raw.get("mm_vision_select_feature", "patch"))
        if feature not in FEATURES:
            raise CheckpointError(
                f"{root}: mm_vision_select_feature {feature!r} is not one of {', '.join(FEATURES)}"
            )
        aspect = str(raw.get("image_aspect_ratio", "resize"))
        if aspect not in ASPECT_MODES:
            raise CheckpointError(
                f"{root}: image_aspect_ratio {aspect!r} is not supported "
                f"(supported: {', '.join(ASPECT_MODES)})"
            )
        kind = proj.get("mm_projector_type") or raw.get("mm_projector_type")
        if not isinstance(kind, str):
            raise CheckpointError(f"{root}: mm_projector/config.json has no mm_projector_type")
        max_length = llm.get("tokenizer_model_max_length") or llm.get("model_max_length")
        return cls(
            root=root,
            llm=llm,
            tower=tower,
            projector_type=kind,
            hidden=hidden,
            mm_hidden=mm_hidden,
            select_layer=select if select >= 0 else layers + 1 + select,
            select_feature=feature,
            aspect=aspect,
            im_start_end=bool(raw.get("mm_use_im_start_end", False)),
            max_length=_int(max_length, f"{root}: llm tokenizer_model_max_length")
            if max_length
            else None,
            intern=intern,
        )

    def sizes(self) -> dict[str, Any]:
        """The numbers an adapter trained on this base must agree with."""
        return {
            "llm hidden_size": self.hidden,
            "llm num_hidden_layers": self.llm.get("num_hidden_layers"),
            "llm intermediate_size": self.llm.get("intermediate_size"),
            "llm num_attention_heads": self.llm.get("num_attention_heads"),
            "llm vocab_size": self.llm.get("vocab_size"),
            "vision hidden_size": self.mm_hidden,
            "vision num_hidden_layers": self.tower.get("num_hidden_layers"),
            "vision image_size": self.tower.get("image_size"),
            "vision patch_size": self.tower.get("patch_size"),
            "mm_projector_type": self.projector_type,
        }


@dataclass(frozen=True)
class FramePrep:
    """The tower's preprocessing (``vision_tower/preprocessor_config.json``)."""

    height: int
    width: int
    mean: tuple[float, ...]
    std: tuple[float, ...]
    rescale: float
    resample: int
    normalize: bool
    do_rescale: bool

    @classmethod
    def read(cls, directory: Path, image_size: int) -> FramePrep:
        path = directory / "preprocessor_config.json"
        raw = _read_json(path, "the vision tower's preprocessor") if path.is_file() else {}
        size = raw.get("size") or {}
        if isinstance(size, int) and not isinstance(size, bool):
            size = {"height": size, "width": size}
        if not isinstance(size, dict):
            raise CheckpointError(
                f"{path}: size must be a number or {{height, width}}, got {size!r}"
            )

        def channels(key: str) -> tuple[float, ...]:
            value = raw.get(key, (0.5, 0.5, 0.5))
            if isinstance(value, (int, float)) and not isinstance(value, bool):
                value = [value] * 3
            if (
                not isinstance(value, (list, tuple))
                or len(value) != 3
                or not all(
                    isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v)
                    for v in value
                )
                or (key == "image_std" and 0 in value)  # frames would turn to inf/NaN
            ):
                raise CheckpointError(
                    f"{path}: {key} must be three finite numbers"
                    f"{' (none zero)' if key == 'image_std' else ''}, got {value!r}"
                )
            return tuple(float(v) for v in value)

        rescale = raw.get("rescale_factor", 1 / 255)
        if (
            isinstance(rescale, bool)
            or not isinstance(rescale, (int, float))
            or not math.isfinite(rescale)
        ):
            raise CheckpointError(f"{path}: rescale_factor must be a number, got {rescale!r}")
        height = _int(size.get("height", image_size), f"{path}: size height")
        width = _int(size.get("width", image_size), f"{path}: size width")
        if height < 1 or width < 1:
            raise CheckpointError(f"{path}: size must be positive, got {height}x{width}")
        return cls(
            height=height,
            width=width,
            mean=channels("image_mean"),
            std=channels("image_std"),
            rescale=float(rescale),
            resample=_int(raw.get("resample", Image.Resampling.BICUBIC), f"{path}: resample"),
            normalize=bool(raw.get("do_normalize", True)),
            do_rescale=bool(raw.get("do_rescale", True)),
        )

    def frame(self, rgb: np.ndarray, aspect: str) -> np.ndarray:
        """One RGB uint8 frame -> (3, H, W) float32, as LLaVA's process_image does."""
        image = Image.fromarray(rgb)
        if aspect == "resize":
            # the reference resizes to (crop height, crop width) with PIL's default filter
            image = image.resize((self.height, self.width))
        else:  # pad: centre on a square of the mean colour
            w, h = image.size
            if w != h:
                side = max(w, h)
                fill = tuple(int(m * 255) for m in self.mean)
                square = Image.new("RGB", (side, side), fill)
                square.paste(image, ((side - w) // 2, (side - h) // 2))
                image = square
        if image.size != (self.width, self.height):
            image = image.resize((self.width, self.height), resample=self.resample)
        x: np.ndarray = np.asarray(image, dtype=np.float32)
        if self.do_rescale:
            x = x * np.float32(self.rescale)
        if self.normalize:
            x = (x - np.asarray(self.mean, np.float32)) / np.asarray(self.std, np.float32)
        return np.ascontiguousarray(x.transpose(2, 0, 1), dtype=np.float32)


class VisionTower(nn.Module):
    """Holds the SigLIP model as ``vision_tower`` (the reference's parameter names)."""

    def __init__(self, model: nn.Module) -> None:
        super().__init__()
        self.vision_tower = model


class VilaModel(nn.Module):
    """The three VILA parts, named as in the reference ``LlavaLlamaModel``."""

    def __init__(self, llm: Any, tower: nn.Module, projector: Projector) -> None:
        super().__init__()
        self.llm: Any = llm
        self.vision_tower = VisionTower(tower)
        self.mm_projector = projector

    @property
    def device(self) -> torch.device:
        return next(self.llm.parameters()).device

    @property
    def dtype(self) -> torch.dtype:
        return next(self.llm.parameters()).dtype

    @property
    def generation_config(self) -> Any:
        return getattr(self.llm, "generation_config", None)

    def get_input_embeddings(self) -> Any:
        llm: Any = self.llm
        return llm.get_input_embeddings()

    def get_output_embeddings(self) -> Any:
        llm: Any = self.llm
        return llm.get_output_embeddings()


def _load_safetensors(directory: Path, what: str) -> dict[str, torch.Tensor]:
    from safetensors.torch import load_file

    files = sorted(directory.glob("*.safetensors"))
    if not files:
        bins = sorted(p.name for p in directory.glob("*.bin"))
        hint = f" (found {', '.join(bins)}: convert them to safetensors)" if bins else ""
        raise CheckpointError(f"{what}: no .safetensors weights in {directory}{hint}")
    state: dict[str, torch.Tensor] = {}
    for f in files:
        try:
            part = load_file(str(f))
        except Exception as exc:  # safetensors raises its own error type
            raise CheckpointError(
                f"{what}: {f.name} is not a readable safetensors file: {exc}"
            ) from None
        twice = sorted(set(part) & set(state))
        if twice:  # a stray second file must not silently override the weights
            raise CheckpointError(
                f"{what}: {f.name} repeats tensors another file in {directory} holds "
                f"({twice[:3]}); keep one set of weights there"
            )
        state.update(part)
    return state


def _load_strict(
    module: nn.Module, state: dict[str, torch.Tensor], what: str, assign: bool = False
) -> None:
    """Load ``state`` into ``module``; refuse unknown keys, missing keys and shape mismatches.

    ``assign``: take the tensors themselves (for a module built on the meta device).
    """
    own = module.state_dict()
    unknown = sorted(set(state) - set(own))
    missing = sorted(set(own) - set(state))
    if unknown or missing:
        parts = []
        if missing:
            parts.append(f"missing {missing[:3]}{' ...' if len(missing) > 3 else ''}")
        if unknown:
            parts.append(f"unexpected {unknown[:3]}{' ...' if len(unknown) > 3 else ''}")
        raise CheckpointError(f"{what}: the weights do not fit the config ({'; '.join(parts)})")
    for key, value in state.items():
        if tuple(value.shape) != tuple(own[key].shape):
            raise CheckpointError(
                f"{what}: {key} has shape {tuple(value.shape)}, the config implies "
                f"{tuple(own[key].shape)}"
            )
    module.load_state_dict(state, assign=assign)


def _from_pretrained(
    cls: Any, directory: Path, config: Any, dtype: Any, attn: str, optional: tuple[str, ...]
) -> Any:
    """transformers' loader on one part (safetensors only), refusing weights that do not fit."""
    what = f"{directory.name}/"
    if not sorted(directory.glob("*.safetensors")):
        _load_safetensors(directory, what)  # raises with what was found instead
    _check_layer_count(directory, what, getattr(config, "num_hidden_layers", None))
    extra: dict[str, Any] = {}
    if not (directory / "generation_config.json").is_file() and hasattr(cls, "generate"):
        # Without generation_config.json transformers falls back to the folder's
        # config.json, which a part described only by the root's *_cfg lacks (a
        # TypeError deep in transformers); give it the one the config implies.
        from transformers import GenerationConfig

        extra["generation_config"] = GenerationConfig.from_model_config(config)
    try:
        model, info = cls.from_pretrained(
            str(directory),
            config=config,
            dtype=dtype,
            attn_implementation=attn,
            use_safetensors=True,
            output_loading_info=True,
            **extra,
        )
    except Exception as exc:  # OSError, ValueError, safetensors' own errors, ...
        shapes = _shape_mismatches(cls, config, directory)
        if shapes:  # transformers only says "look at the above report", which is logged away
            raise CheckpointError(
                f"{what}: the weights do not fit its config ({'; '.join(shapes[:3])}"
                f"{' ...' if len(shapes) > 3 else ''}); the config's sizes are wrong for them"
            ) from None
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise CheckpointError(f"{what}: the weights do not load: {first}") from None
    missing = [k for k in info.get("missing_keys", []) if not k.startswith(optional)]
    unexpected = list(info.get("unexpected_keys", []))
    mismatched = list(info.get("mismatched_keys", []))
    if missing or unexpected or mismatched:
        parts = []
        for name, keys in (
            ("missing", missing),
            ("unexpected", unexpected),
            ("mismatched", mismatched),
        ):
            if keys:
                shown = [str(k) for k in list(keys)[:3]]
                parts.append(f"{name} {shown}{' ...' if len(keys) > 3 else ''}")
        raise CheckpointError(f"{what}: the weights do not fit its config ({'; '.join(parts)})")
    return model


_LAYER = re.compile(r"(?:^|\.)layers\.(\d+)\.")


def _check_layer_count(directory: Path, what: str, configured: Any) -> None:
    """Refuse a config with more layers than the weights hold, before building anything.

    transformers builds and randomly initialises every layer the config names before
    it reports the missing ones, so a wrong num_hidden_layers (40 -> 400) would
    exhaust memory at start-up instead of being refused. Keys come from the
    safetensors headers (or the shard index); nothing is loaded.
    """
    from safetensors import safe_open

    if not isinstance(configured, int):
        return
    try:
        keys: list[str] = []
        for f in sorted(directory.glob("*.safetensors")):
            with safe_open(str(f), framework="pt") as handle:
                keys.extend(handle.keys())
    except Exception:  # unreadable files are refused, with their name, by the loader
        return
    found = {int(m.group(1)) for k in keys if (m := _LAYER.search(k))}
    if found and configured > max(found) + 1:
        raise CheckpointError(
            f"{what}: its config has num_hidden_layers {configured}, but the weights hold "
            f"{max(found) + 1} layers"
        )


def _shape_mismatches(cls: Any, config: Any, directory: Path) -> list[str]:
    """``key: weights (shape), config (shape)`` for the saved tensors the config sizes differently.

    Read from the safetensors headers and a model built on the meta device, so
    nothing is allocated; empty when the headers cannot be read or all fit.
    """
    from safetensors import safe_open

    try:
        with torch.device("meta"):
            own = {k: tuple(v.shape) for k, v in cls(config).state_dict().items()}
        found = []
        for f in sorted(directory.glob("*.safetensors")):
            with safe_open(str(f), framework="pt") as handle:
                for key in handle.keys():  # noqa: SIM118 (not a dict)
                    # transformers 4.x saved SigLIP under vision_model.; 5.x has no such level
                    name = key if key in own else key.removeprefix("vision_model.")
                    shape = tuple(handle.get_slice(key).get_shape())
                    if name in own and own[name] != shape:
                        found.append(f"{key}: weights {shape}, config {own[name]}")
        return found
    except Exception:  # the plain message is still given
        return []


def _intern_tower(directory: Path, config: dict[str, Any]) -> nn.Module:
    """InternViT-6B from our own module (intern_vit.py), its safetensors loaded strictly."""
    try:
        # on the meta device: InternViT-6B is 5.9B parameters, which would otherwise be
        # allocated in float32 (24 GB) and randomly initialised before the weights replace them
        with torch.device("meta"):
            model = InternVisionModel(InternConfig.from_dict(config))
    except (TypeError, ValueError) as exc:
        raise CheckpointError(f"vision_tower/: the InternViT config is malformed: {exc}") from None
    _load_strict(model, _load_safetensors(directory, "vision_tower/"), "vision_tower/", True)
    return model


class VilaFamily:
    """VILA-1.5: a Llama language model with a SigLIP (3B-13B) or InternViT-6B (40B) tower."""

    name = "vila"
    sampling = "index"
    """Frames at floor(linspace(0, n - 1, k)) of the decoded frames, as the reference samples."""

    def __init__(self, checkpoint: Path) -> None:
        self.layout = VilaLayout.read(checkpoint)
        size = int(self.layout.tower.get("image_size", 384))
        if self.layout.intern:
            # VILA's InternViT preprocessor is code, not a config file: bicubic resize to the
            # tower's size, /255, ImageNet mean and std (intern_encoder.py in the reference)
            self.prep = FramePrep(size, size, IMAGENET_MEAN, IMAGENET_STD, 1 / 255, 3, True, True)
        else:
            self.prep = FramePrep.read(checkpoint / "vision_tower", size)
            if (self.prep.height, self.prep.width) != (size, size):
                # SigLIP's position embeddings are for image_size only: every request would fail
                raise CheckpointError(
                    f"{checkpoint}: vision_tower/preprocessor_config.json resizes frames to "
                    f"{self.prep.height}x{self.prep.width}, but the tower's image_size is {size}"
                )
        self.tokens_per_frame = 0
        self.max_length = self.layout.max_length

    # -- loading ---------------------------------------------------------------
    def load(self, path: Path, dtype: Any, device: str, attn: str) -> VilaModel:
        from transformers import (
            LlamaConfig,
            LlamaForCausalLM,
            SiglipVisionConfig,
            SiglipVisionModel,
        )

        layout = self.layout
        try:
            llm_config = LlamaConfig.from_dict(_clean_config(layout.llm))
            tower_config = (
                None if layout.intern else SiglipVisionConfig.from_dict(_clean_config(layout.tower))
            )
        except Exception as exc:  # transformers' strict config validation has its own errors
            first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
            raise CheckpointError(f"{path}: a part config is malformed: {first}") from None
        llm = _from_pretrained(LlamaForCausalLM, path / "llm", llm_config, dtype, attn, ())
        tower: nn.Module
        if layout.intern:
            tower = _intern_tower(path / "vision_tower", layout.tower)
        else:
            tower = _from_pretrained(
                SiglipVisionModel,
                path / "vision_tower",
                tower_config,
                dtype,
                attn,
                ("vision_model.head.", "head."),  # the pooling head VILA never uses
            )
        try:
            projector = Projector(layout.projector_type, layout.mm_hidden, layout.hidden)
        except ValueError as exc:
            raise CheckpointError(f"{path}: {exc}") from None
        proj_state = _load_safetensors(path / "mm_projector", "mm_projector/")
        _load_strict(projector, proj_state, "mm_projector/")
        model = VilaModel(llm, tower, projector)
        return model.to(device=device, dtype=dtype).eval()

    def apply_adapter(self, model: VilaModel, adapter: Path) -> Any:
        """A LiFT/LLaVA-style LoRA directory: non-LoRA tensors, then LoRA merged (llava_lora.py)."""
        from lift.services.critic.backends.vlm.llava_lora import (
            apply_lora,
            check_sizes,
            load_non_lora,
        )

        check_sizes(self.layout, adapter)
        load_non_lora(model, adapter)
        return apply_lora(model, adapter)

    def finish(self, model: VilaModel) -> None:
        """After any adapter is merged: drop tower layers past the selected one (never used)."""
        tower: Any = model.vision_tower.vision_tower
        vm = getattr(tower, "vision_model", tower)  # transformers 5 dropped the wrapper level
        vm.encoder.layers = vm.encoder.layers[: self.layout.select_layer]
        patches = (self.prep.height // int(self.layout.tower.get("patch_size", 14))) * (
            self.prep.width // int(self.layout.tower.get("patch_size", 14))
        )
        if self.layout.intern:
            patches += 1  # InternViT's class token
        if self.layout.select_feature == "patch":
            patches -= 1
        try:
            self.tokens_per_frame = model.mm_projector.tokens(patches)
        except ValueError as exc:
            raise CheckpointError(f"{self.layout.root}: {exc}") from None

    def tokenizer(self, path: Path) -> Any:
        from transformers import AutoTokenizer

        directory = path / "llm"
        # trust_remote_code=False: an auto_map in tokenizer_config.json would otherwise make
        # transformers ask on the terminal whether to run the checkpoint's code
        kwargs: dict[str, Any] = {"padding_side": "left", "trust_remote_code": False}
        if int(self.layout.llm.get("num_hidden_layers", -1)) != 60:
            kwargs["legacy"] = False  # as the reference loads non-Yi Llama tokenizers
        try:
            tokenizer = AutoTokenizer.from_pretrained(str(directory), **kwargs)
        except (OSError, ValueError) as exc:
            raise CheckpointError(f"{path}: cannot load the tokenizer from llm/: {exc}") from None
        if self.layout.im_start_end:
            for token in (IM_START, IM_END):
                tid = tokenizer.convert_tokens_to_ids(token)
                if not isinstance(tid, int) or tid == tokenizer.unk_token_id:
                    raise CheckpointError(
                        f"{path}: mm_use_im_start_end is set but the tokenizer in llm/ has no "
                        f"{token} token (the checkpoint was saved without its image tokens)"
                    )
        return tokenizer

    # -- request thread --------------------------------------------------------
    def prepare(self, frames: np.ndarray, seconds_per_frame: float) -> VisionInput:
        if frames.ndim != 4 or frames.shape[-1] != 3:
            raise ValueError(f"expected RGB frames (N, H, W, 3), got shape {frames.shape}")
        pixels = np.stack([self.prep.frame(f, self.layout.aspect) for f in frames])
        side = math.isqrt(self.tokens_per_frame)
        return VisionInput(
            pixels=pixels,
            grid=(len(frames), side, self.tokens_per_frame // max(side, 1)),
            num_tokens=len(frames) * self.tokens_per_frame,
            seconds_per_grid_t=seconds_per_frame,
        )

    def placeholder_id(self, tokenizer: Any) -> int:
        return PLACEHOLDER

    def render(
        self, tokenizer: Any, templates: Templates, question: str, vision: VisionInput
    ) -> list[int]:
        """Token ids of one question about one video, image positions expanded."""
        conv = _conversation(templates)
        if IMAGE_MARKER in question:
            # every <image> in the text becomes a frame's features (LLaVA's rule)
            raise ValueError(
                f"the prompt contains {IMAGE_MARKER!r}, which this model reads as a video frame; "
                "remove it from the prompt"
            )
        marker = f"{IM_START}{IMAGE_MARKER}{IM_END}" if self.layout.im_start_end else IMAGE_MARKER
        message = f"{marker}\n" * vision.grid[0] + question
        ids = image_token_ids(tokenizer, conv.render(message))
        expanded: list[int] = []
        for t in ids:
            expanded.extend([PLACEHOLDER] * self.tokens_per_frame if t == PLACEHOLDER else [t])
        return expanded

    def answer_ids(self, tokenizer: Any, templates: Templates, text: str) -> list[int]:
        """The tokens the model emits for ``text`` right after the prompt."""
        conv = _conversation(templates)  # called at start-up: refuse templates without one there
        tail = conv.render("").rsplit(IMAGE_MARKER, 1)[-1]
        before = tokenizer(tail).input_ids
        after = tokenizer(tail + conv.answer_lead + text).input_ids
        if after[: len(before)] != before:
            raise ValueError(
                f"the answer {text!r} does not tokenize as a continuation of the prompt in this "
                "tokenizer; check [conversation] answer_lead"
            )
        return list(after[len(before) :])

    def stop_texts(self, templates: Templates) -> list[str]:
        conv = templates.conversation
        return [conv.stop] if conv is not None and conv.stop else []

    # -- model thread ----------------------------------------------------------
    def encode_videos(self, model: VilaModel, videos: list[VisionInput]) -> list[Any]:
        device, dtype = model.device, model.dtype
        pixels = torch.from_numpy(np.concatenate([v.pixels for v in videos])).to(device, dtype)
        features = self.frame_features(model, pixels)
        out, start = [], 0
        for v in videos:
            n = v.grid[0]
            out.append(features[start : start + n].reshape(n * self.tokens_per_frame, -1))
            start += n
        return out

    def frame_features(self, model: VilaModel, pixels: torch.Tensor) -> torch.Tensor:
        """(F, 3, H, W) frames -> (F, tokens_per_frame, hidden): tower, select, projector."""
        tower = model.vision_tower.vision_tower
        hidden = tower(pixel_values=pixels, output_hidden_states=True).hidden_states[-1]
        if self.layout.select_feature == "patch":
            hidden = hidden[:, 1:]
        projected: torch.Tensor = model.mm_projector(hidden)
        return projected

    def position_ids(
        self, model: Any, input_ids: Any, attention_mask: Any, videos: list[VisionInput]
    ) -> Any:
        return (attention_mask.long().cumsum(-1) - 1).clamp(min=0)

    def next_position_ids(self, prefill: Any, step: int) -> Any:
        return prefill.amax(dim=-1, keepdim=True) + 1 + step

    def embed(self, model: VilaModel, input_ids: Any) -> Any:
        return model.get_input_embeddings()(input_ids)

    def decode(
        self,
        model: VilaModel,
        inputs_embeds: Any,
        attention_mask: Any,
        position_ids: Any,
        past_key_values: Any = None,
        use_cache: bool = False,
    ) -> tuple[Any, Any]:
        llm: Any = model.llm
        return decode_last(
            llm.model,
            llm.lm_head,
            inputs_embeds,
            attention_mask,
            position_ids,
            past_key_values,
            use_cache,
        )

    def logits_at(
        self,
        model: VilaModel,
        inputs_embeds: Any,
        attention_mask: Any,
        position_ids: Any,
        select: Any,
    ) -> Any:
        """Training: (N, V) logits at the ``select``-ed positions of the full sequences."""
        llm: Any = model.llm
        return logits_at(
            llm.model, llm.lm_head, inputs_embeds, attention_mask, position_ids, select
        )


def _conversation(templates: Templates) -> Conversation:
    if templates.conversation is None:
        raise ValueError(
            "the vila family prompts in a plain-text conversation format: use a template "
            "preset (--templates lift-13b or lift-40b) or add [conversation] to the file"
        )
    return templates.conversation


def image_token_ids(tokenizer: Any, prompt: str) -> list[int]:
    """LLaVA's tokenizer_image_token: chunks around ``<image>`` tokenized one by one.

    Every chunk is tokenized on its own (so each gets the tokenizer's word-start
    handling), the beginning-of-sequence token is kept once, and each ``<image>``
    becomes one :data:`PLACEHOLDER`.
    """
    chunks = [tokenizer(chunk).input_ids for chunk in prompt.split(IMAGE_MARKER)]
    bos = tokenizer.bos_token_id
    ids: list[int] = []
    offset = 0
    if chunks and chunks[0] and bos is not None and chunks[0][0] == bos:
        offset = 1
        ids.append(bos)
    for i, chunk in enumerate(chunks):
        if i:
            ids.append(PLACEHOLDER)
        ids.extend(chunk[offset:])
    return ids


_DROP = {"architectures", "_name_or_path", "transformers_version", "auto_map", "torch_dtype"}


def _clean_config(cfg: dict[str, Any]) -> dict[str, Any]:
    """A part config without the keys that only describe where it came from."""
    return {k: v for k, v in cfg.items() if k not in _DROP}
