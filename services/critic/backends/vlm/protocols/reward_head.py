"""The ``reward_head`` protocol: VideoAlign's VideoReward (a Qwen2-VL with a linear reward head).

Checkpoint layout (as KwaiVGI/VideoAlign publishes it; read, not copied):

* ``model_config.json`` with ``data_config`` (frame sampling: ``fps`` or ``num_frames``,
  ``max_frame_pixels``, ``sample_type``; ``eval_dim``; ``prompt_template_type``),
  ``model_config`` (``model_name_or_path`` of the base Qwen2-VL, ``output_dim``,
  ``use_special_tokens``, ``reward_token``), ``peft_lora_config`` (``lora_enable``,
  ``lora_r``, ``lora_alpha``, ``use_rslora``) and ``inference_config`` (``VQ_mean``,
  ``VQ_std``, ... : the normalisation);
* ``checkpoint-N/`` (the highest ``N`` is used) holding ``adapter_model.safetensors`` (LoRA)
  plus ``non_lora_state_dict.pth`` (reward head, resized embeddings, merger, ...), or a
  full ``model.pth``. ``.pth`` files load with ``torch.load(weights_only=True)``: a pickle
  that would run code is refused.

**The base model.** ``model_config.model_name_or_path`` names the base by hub id
(``Qwen/Qwen2-VL-2B-Instruct``); nothing is downloaded. The base is the first of: that
path when it is a local checkpoint directory (absolute, or relative to the VideoAlign
directory), else ``<VideoAlign dir>/base`` (put or link the base checkpoint there).

**Scoring.** The three special tokens ``<|VQ_reward|>``, ``<|MQ_reward|>``,
``<|TA_reward|>`` are added to the base tokenizer and the embeddings resized to it; the
LoRA is merged into the weights. The prompt is the checkpoint's template (the exact
text, ``reward_head_prompts.toml``) in the base's chat template with the video first;
one forward per video (a batch of videos in one pass, left-padded). The head reads the
final hidden state at each reward token: VQ is output 0 at ``<|VQ_reward|>``, MQ output 1
at ``<|MQ_reward|>``, TA output 2 at ``<|TA_reward|>`` (``reward_token: last``: outputs
0-2 at the last token). ``z = (raw - mean) / std`` with the checkpoint's
``inference_config`` (absent: ``z = raw``); VideoReward's Overall is ``z_VQ + z_MQ + z_TA``.

**Mapping.** VQ -> ``video_fidelity``, MQ -> ``motion_smoothness``, TA ->
``semantic_consistency``. Label probabilities come from an ordinal logistic model on
``z`` with cut points at -1 and +1 (one training-set standard deviation either side of
the mean): ``p_bad = σ(-1 - z)``, ``p_good = σ(z - 1)``, ``p_normal`` the rest; the label
is the most likely one (good above z ≈ +1.2, bad below z ≈ -1.2). The dimension's score
in [0, 1] is, as for every backend, ``p_good + p_normal / 2`` = ``(σ(z + 1) + σ(z - 1)) / 2``:
monotone in ``z``, 0.5 at the training mean; the reward is the critic's usual one (the
reward map's expectation under these probabilities, averaged over dimensions). A
``Critique`` reason carries the raw value, ``z``, the normalisation and Overall.

**Pairs** (``Compare``, judged natively from the head): per dimension the checkpoint's own
preference model on the raw outputs' difference ``d = raw_a - raw_b``: with
``loss_type: btt`` (Bradley-Terry with ties, Rao-Kupper, k = 5, as VideoAlign trains)
``P(a) = σ(d - ln k)``, ``P(b) = σ(-d - ln k)``, ``P(tie)`` the rest; with any other
loss plain Bradley-Terry ``P(a) = σ(d)``, no tie. Overall uses the same model on the
difference of VideoReward's Overall (the sum of the normalised values). Motion is not
compared when either video is a still.

**Frames.** As the checkpoint was trained: by ``fps`` (``total / video_fps * fps`` frames,
at least 4, at most 768 and the video's length, rounded to even) or ``num_frames``
(rounded to even, at most the video's length), at evenly spread indices; each frame
resized to at most ``max_frame_pixels`` (at least 128*28*28, or ``max_frame_pixels`` when
that is smaller). The engine decodes up to ``max_frames_analysed`` frames: the indices are
exact when the video has no more frames than that, else the nearest decoded frames.

Everything is greedy arithmetic under ``torch.inference_mode``: repeats are identical.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import logging
import math
import re
import tomllib
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from lift.checkpoints import (
    fingerprint,
    load_weights_only,
    quiet_hf,
    resolve_device,
    resolve_dtype,
)
from lift.critique import (
    DIMENSIONS,
    Dimension,
    DimensionPreference,
    DimensionVerdict,
    LabelProbabilities,
    ModelInfo,
    Preference,
)
from lift.errors import InvalidInput
from lift.services.critic.backends.base import Judgement, PairJudgement, one_frame
from lift.video import DecodedVideo

log = logging.getLogger(__name__)

REWARD_TOKENS = ("<|VQ_reward|>", "<|MQ_reward|>", "<|TA_reward|>")
"""The special tokens the head reads, in output order (VQ, MQ, TA)."""
HEAD_DIMENSIONS = (
    ("VQ", Dimension.VIDEO_FIDELITY),
    ("MQ", Dimension.MOTION_SMOOTHNESS),
    ("TA", Dimension.SEMANTIC_CONSISTENCY),
)
"""VideoReward output -> LiFT dimension."""
CUT = 1.0
"""Ordinal cut points at ±CUT (normalised units) between bad / normal / good."""
VIDEO_MIN_PIXELS = 128 * 28 * 28
FPS_MIN_FRAMES = 4
FPS_MAX_FRAMES = 768
TEMPLATE_TYPES = ("detailed_special", "none")
TIES_K = 5.0
"""VideoAlign's Bradley-Terry-with-ties constant (loss_type btt)."""
_PROMPTS = Path(__file__).with_name("reward_head_prompts.toml")


def is_reward_head_layout(directory: Path) -> bool:
    """Whether ``directory`` looks like a VideoAlign checkpoint (model_config.json + weights)."""
    if not (directory / "model_config.json").is_file():
        return False
    if (directory / "model.pth").is_file():
        return True
    return any(p.is_dir() for p in directory.glob("checkpoint-*"))


# -- configuration ---------------------------------------------------------------------


@dataclass(frozen=True)
class RewardHeadConfig:
    """What ``model_config.json`` and the directory say, checked."""

    directory: Path
    checkpoint: Path
    """The ``checkpoint-N`` directory used (or ``directory`` for a top-level model.pth)."""
    base: Path
    fps: float | None
    num_frames: int | None
    max_pixels: int
    template: str
    reward_token: str
    output_dim: int
    special_tokens: bool
    lora: bool
    lora_scale: float
    lora_r: int
    norm: dict[str, tuple[float, float]] | None
    """{"VQ": (mean, std), ...}; None: the checkpoint has no inference_config."""
    ties: bool = False
    """Trained with Bradley-Terry with ties (loss_type btt): pairs have a tie probability."""

    @classmethod
    def read(cls, directory: Path) -> RewardHeadConfig:
        """Read and check the layout; ValueError naming the problem."""
        path = directory / "model_config.json"
        if not path.is_file():
            raise ValueError(f"{directory} has no model_config.json (not a VideoAlign checkpoint)")
        if path.stat().st_size > 4 * 1024 * 1024:
            raise ValueError(f"{path} is over 4 MiB; a model_config.json is a small JSON file")
        try:
            raw = json.loads(path.read_text(encoding="utf-8"))
        except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
            raise ValueError(f"{path} is not readable JSON: {exc}") from None
        if not isinstance(raw, dict):
            raise ValueError(f"{path} must hold a JSON object")
        data = _section(raw, "data_config", path)
        model = _section(raw, "model_config", path)
        peft = _section(raw, "peft_lora_config", path)
        inference = raw.get("inference_config")

        eval_dim = data.get("eval_dim")
        if eval_dim != ["VQ", "MQ", "TA"]:
            raise ValueError(
                f"{path}: data_config.eval_dim must be ['VQ', 'MQ', 'TA'] (got {eval_dim!r})"
            )
        fps, num_frames = data.get("fps"), data.get("num_frames")
        if num_frames is not None:
            num_frames = _number(num_frames, "data_config.num_frames", path, minimum=1)
            num_frames = int(num_frames)
            fps = None
        else:
            fps = _number(fps, "data_config.fps", path, minimum=1e-6)
        max_pixels = int(
            _number(data.get("max_frame_pixels"), "data_config.max_frame_pixels", path, minimum=784)
        )
        if data.get("sample_type", "uniform") != "uniform":
            raise ValueError(
                f"{path}: data_config.sample_type {data.get('sample_type')!r} is not supported "
                "(only 'uniform', as the published checkpoints use)"
            )
        template = data.get("prompt_template_type", "none")
        if template not in TEMPLATE_TYPES:
            raise ValueError(
                f"{path}: data_config.prompt_template_type {template!r} is not supported; "
                f"one of {', '.join(TEMPLATE_TYPES)}"
            )

        output_dim = model.get("output_dim")
        special = model.get("use_special_tokens") is True
        token = "special" if special else model.get("reward_token", "last")
        if special:
            if output_dim not in (1, 3):
                raise ValueError(
                    f"{path}: model_config.output_dim must be 1 or 3 (got {output_dim!r})"
                )
            if template != "detailed_special":
                raise ValueError(
                    f"{path}: use_special_tokens needs prompt_template_type 'detailed_special' "
                    f"(the template holding the reward tokens), got {template!r}"
                )
        else:
            if token != "last":
                raise ValueError(
                    f"{path}: model_config.reward_token {token!r} is not supported without "
                    "special tokens (use 'last', or use_special_tokens: true)"
                )
            if output_dim != 3:
                raise ValueError(
                    f"{path}: model_config.output_dim must be 3 (VQ, MQ, TA) with "
                    f"reward_token 'last' (got {output_dim!r})"
                )

        lora = peft.get("lora_enable") is True
        r = int(_number(peft.get("lora_r", 16), "peft_lora_config.lora_r", path, minimum=1))
        alpha = _number(peft.get("lora_alpha", 32), "peft_lora_config.lora_alpha", path)
        scale = alpha / math.sqrt(r) if peft.get("use_rslora") is True else alpha / r

        norm = None
        if inference is not None:
            if not isinstance(inference, dict):
                raise ValueError(f"{path}: inference_config must be an object")
            norm = {}
            for code, _ in HEAD_DIMENSIONS:
                mean = _number(inference.get(f"{code}_mean"), f"inference_config.{code}_mean", path)
                std = _number(inference.get(f"{code}_std"), f"inference_config.{code}_std", path)
                if std <= 0:
                    raise ValueError(f"{path}: inference_config.{code}_std must be > 0 (got {std})")
                norm[code] = (mean, std)

        return cls(
            directory=directory,
            checkpoint=_checkpoint_dir(directory),
            base=_base_dir(directory, model.get("model_name_or_path")),
            fps=fps,
            num_frames=num_frames,
            max_pixels=max_pixels,
            template=template,
            reward_token=token,
            output_dim=int(output_dim),
            special_tokens=special,
            lora=lora,
            lora_scale=float(scale),
            lora_r=r,
            norm=norm,
            ties=model.get("loss_type") == "btt",
        )

    @property
    def sampling(self) -> str:
        """The frame sampling in words."""
        if self.num_frames is not None:
            return f"{self.num_frames} frames"
        return f"{self.fps:g} fps"


def _section(raw: dict[str, Any], name: str, path: Path) -> dict[str, Any]:
    value = raw.get(name)
    if not isinstance(value, dict):
        raise ValueError(f"{path} has no {name} object (a VideoAlign model_config.json has one)")
    return value


def _number(value: Any, field: str, path: Path, minimum: float | None = None) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
        raise ValueError(f"{path}: {field} must be a finite number (got {value!r})")
    if minimum is not None and value < minimum:
        raise ValueError(f"{path}: {field} must be at least {minimum:g} (got {value!r})")
    return float(value)


def _checkpoint_dir(directory: Path) -> Path:
    steps = []
    for p in directory.glob("checkpoint-*"):
        m = re.fullmatch(r"checkpoint-(\d+)", p.name)
        if m and p.is_dir():
            steps.append((int(m.group(1)), p))
    if steps:
        return max(steps)[1]
    if (directory / "model.pth").is_file():
        return directory
    raise ValueError(
        f"{directory} has no checkpoint-N/ directory (with adapter_model.safetensors + "
        "non_lora_state_dict.pth, or model.pth) and no model.pth"
    )


def _base_dir(directory: Path, name: Any) -> Path:
    tried = []
    if isinstance(name, str) and name:
        p = Path(name).expanduser()
        tried.append(p if p.is_absolute() else directory / p)
    tried.append(directory / "base")
    for p in tried:
        if (p / "config.json").is_file():
            return p
    raise ValueError(
        f"the base model {name!r} (model_config.model_name_or_path in "
        f"{directory}/model_config.json) is not a local checkpoint directory, and there is no "
        f"{directory / 'base'}: put or link the base Qwen2-VL checkpoint there (nothing is "
        "downloaded), or set model_name_or_path to its directory"
    )


def template_text(template: str) -> str:
    """The checkpoint's prompt template, ``{text_prompt}`` where the prompt goes."""
    if template == "none":
        return "{text_prompt}"
    return str(tomllib.loads(_PROMPTS.read_text(encoding="utf-8"))["templates"][template])


# -- weights ---------------------------------------------------------------------------


def read_state(checkpoint: Path) -> dict[str, Any]:
    """Every tensor the checkpoint holds, under the VideoAlign (peft) names."""
    from safetensors import SafetensorError
    from safetensors.torch import load_file

    full = checkpoint / "model.pth"
    if full.is_file():
        return load_weights_only(full)
    adapter = checkpoint / "adapter_model.safetensors"
    non_lora = checkpoint / "non_lora_state_dict.pth"
    missing = [p.name for p in (adapter, non_lora) if not p.is_file()]
    if missing:
        raise ValueError(
            f"{checkpoint} lacks {' and '.join(missing)} (a checkpoint holds "
            "adapter_model.safetensors + non_lora_state_dict.pth, or model.pth)"
        )
    try:
        lora = load_file(str(adapter))
    except (SafetensorError, OSError, ValueError) as exc:
        raise ValueError(f"{adapter} is not a readable safetensors file: {exc}") from None
    state = load_weights_only(non_lora)
    clash = sorted(set(lora) & set(state))
    if clash:
        raise ValueError(f"{non_lora} repeats tensors of {adapter.name}: {', '.join(clash[:3])}")
    return {**state, **lora}


def canonical_name(key: str) -> str:
    """A VideoAlign / peft parameter name -> this transformers' Qwen2-VL name."""
    k = key.removeprefix("base_model.model.")
    k = k.replace(".base_layer.", ".")
    k = re.sub(r"\.(lora_[AB])\.default\.", r".\1.", k)
    # VideoAlign trained on the older layout (model.layers.*, visual.*)
    if k.startswith("visual."):
        k = "model." + k
    elif k.startswith("model.") and not k.startswith(("model.language_model.", "model.visual.")):
        k = "model.language_model." + k.removeprefix("model.")
    return k


def apply_state(model: Any, state: dict[str, Any], config: RewardHeadConfig) -> Any:
    """Load plain tensors into ``model``, merge the LoRA pairs; the head weight (output, hidden)."""
    import torch

    own = model.state_dict()
    head = None
    plain: dict[str, Any] = {}
    lora: dict[str, dict[str, Any]] = {}
    for key, tensor in state.items():
        name = canonical_name(key)
        if "lora_embedding" in name or "lora_magnitude" in name:
            raise ValueError(f"{key}: LoRA on embeddings / DoRA is not supported")
        m = re.fullmatch(r"(.+)\.(lora_[AB])\.weight", name)
        if m:
            lora.setdefault(m.group(1), {})[m.group(2)] = tensor
        elif name == "rm_head.weight":
            head = tensor
        else:
            plain[name] = tensor
    if head is None:
        raise ValueError(f"{config.checkpoint} has no rm_head.weight (the reward head)")
    hidden = int(model.config.get_text_config().hidden_size)
    if tuple(head.shape) != (config.output_dim, hidden):
        raise ValueError(
            f"rm_head.weight in {config.checkpoint} is {tuple(head.shape)}; the config says "
            f"({config.output_dim}, {hidden}) (output_dim, the base's hidden size)"
        )
    unknown = sorted(k for k in plain if k not in own)
    if unknown:
        raise ValueError(
            f"{config.checkpoint} holds tensors the base model has not: {', '.join(unknown[:3])}"
            + (f" and {len(unknown) - 3} more" if len(unknown) > 3 else "")
            + " (is the base the model it was trained from?)"
        )
    if config.special_tokens and not any(k.endswith("embed_tokens.weight") for k in plain):
        raise ValueError(
            f"{config.checkpoint} has no embed_tokens.weight: the reward tokens' embeddings "
            "were trained and must be in non_lora_state_dict.pth (or model.pth)"
        )
    if lora and not config.lora:
        raise ValueError(
            f"{config.checkpoint} holds LoRA weights but peft_lora_config.lora_enable is not true"
        )
    with torch.no_grad():
        for name, tensor in plain.items():
            target = own[name]
            if tuple(target.shape) != tuple(tensor.shape):
                raise ValueError(
                    f"{name} is {tuple(tensor.shape)} in {config.checkpoint}, "
                    f"{tuple(target.shape)} in the base model"
                )
            target.copy_(tensor.to(target.dtype))
        for prefix, pair in sorted(lora.items()):
            if set(pair) != {"lora_A", "lora_B"}:
                raise ValueError(f"{prefix}: a LoRA needs lora_A and lora_B weights")
            target = own.get(prefix + ".weight")
            a, b = pair["lora_A"].float(), pair["lora_B"].float()
            if target is None or target.ndim != 2:
                raise ValueError(f"{prefix}: a LoRA for a module the base model has not")
            if a.shape[0] != config.lora_r or b.shape[1] != config.lora_r:
                raise ValueError(
                    f"{prefix}: LoRA rank {a.shape[0]}, peft_lora_config.lora_r {config.lora_r}"
                )
            if (b.shape[0], a.shape[1]) != tuple(target.shape):
                raise ValueError(
                    f"{prefix}: LoRA {(b.shape[0], a.shape[1])} for a {tuple(target.shape)} weight"
                )
            merged = target.float() + config.lora_scale * (b @ a)
            target.copy_(merged.to(target.dtype))
    return head.float()


# -- values ----------------------------------------------------------------------------


def _logistic(x: float) -> float:
    """1 / (1 + e^-x), without math.exp's OverflowError for x below about -709.

    (A head value hundreds of units from the mean, or a tiny std, raised it: every
    request failed as an internal error.) Beyond the clamp the result rounds to 0 anyway.
    """
    return 1.0 / (1.0 + math.exp(min(-x, 700.0)))


def probabilities(z: float) -> LabelProbabilities:
    """Ordinal logistic good / normal / bad from the normalised value (cut points ±CUT)."""
    good = _logistic(z - CUT)
    bad = _logistic(-(z + CUT))
    g, b = round(good, 6), round(bad, 6)
    return LabelProbabilities(good=g, normal=round(max(0.0, 1.0 - g - b), 6), bad=b)


def sample_indices(
    total: int, video_fps: float, fps: float | None, num_frames: int | None
) -> list[int]:
    """Frame indices VideoAlign's uniform sampling takes from a ``total``-frame video."""
    if total < 2:
        return [0] * max(total, 1)
    if num_frames is not None:
        n = max(2, round(num_frames / 2) * 2)
    else:
        assert fps is not None
        lo = math.ceil(FPS_MIN_FRAMES / 2) * 2
        hi = math.floor(min(FPS_MAX_FRAMES, total) / 2) * 2
        wanted = total / video_fps * fps if video_fps > 0 else lo
        n = round(min(max(wanted, lo), hi) / 2) * 2
    n = max(2, min(n, total))
    return [int(i) for i in np.round(np.linspace(0, total - 1, n)).astype(np.int64)]


@dataclass(frozen=True)
class PreparedVideo:
    """One video, tokenized, with where the head reads."""

    vision: Any
    ids: tuple[int, ...]
    read_at: tuple[int, ...]
    """Positions of the VQ, MQ, TA reads (special tokens, or the last token three times)."""
    frames: int
    still: bool = False
    """One frame: motion is not judged."""


@dataclass(frozen=True)
class HeadValues:
    """The head's outputs for one video."""

    raw: tuple[float, float, float]
    normalised: tuple[float, float, float]

    @property
    def overall(self) -> float:
        """VideoReward's Overall: the sum of the normalised values."""
        return round(sum(self.normalised), 6)


class RewardHeadBackend:
    """VideoAlign's VideoReward as a critic backend (see the module docstring)."""

    assessed: tuple[Dimension, ...] = DIMENSIONS
    pixel_format = "rgb24"
    batched = True
    frame_sampling = "time"
    protocol = "reward_head"

    def __init__(self, options: Any) -> None:
        import torch

        from lift.services.critic.backends.vlm.families.qwen2_vl import Qwen2VLFamily
        from lift.services.critic.backends.vlm.preprocess import PatchConfig

        quiet_hf()
        if options.adapter is not None:
            raise ValueError(
                "the reward_head protocol reads its LoRA from the checkpoint directory; "
                "unset the adapter setting"
            )
        if options.templates is not None:
            raise ValueError(
                "the reward_head protocol prompts with the checkpoint's own template "
                "(model_config.json: prompt_template_type); unset the templates setting"
            )
        if options.vision != "torch":
            raise ValueError(
                "the reward_head protocol runs on the vlm backend (torch vision tower)"
            )
        self.config = cfg = RewardHeadConfig.read(Path(options.model))
        base_config = json.loads((cfg.base / "config.json").read_text(encoding="utf-8"))
        if not isinstance(base_config, dict) or base_config.get("model_type") != "qwen2_vl":
            kind = base_config.get("model_type") if isinstance(base_config, dict) else None
            raise ValueError(
                f"the base model {cfg.base} is {kind!r}; VideoReward is a Qwen2-VL (qwen2_vl)"
            )
        state = read_state(cfg.checkpoint)  # before the model: a bad file fails fast

        self.family = family = Qwen2VLFamily(cfg.base)
        patches = PatchConfig.from_checkpoint(cfg.base)
        family.patches = dataclasses.replace(
            patches, min_pixels=min(VIDEO_MIN_PIXELS, cfg.max_pixels), max_pixels=cfg.max_pixels
        )
        device = resolve_device(options.device)
        dtype = resolve_dtype(options.dtype, device)
        torch.manual_seed(0)
        tokenizer = family.tokenizer(cfg.base)
        if cfg.special_tokens:
            tokenizer.add_special_tokens({"additional_special_tokens": list(REWARD_TOKENS)})
        model = family.load(cfg.base, dtype, device, options.attn_implementation)
        if cfg.special_tokens:
            model.resize_token_embeddings(len(tokenizer), mean_resizing=False)
        self.head = apply_state(model, state, cfg).to(model.device)
        del state
        self.net = model.eval()
        self.tokenizer = tokenizer
        self.video_token_id = family.placeholder_id(tokenizer)
        self.pad_id = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else 0
        self.read_ids = (
            tuple(int(i) for i in tokenizer.convert_tokens_to_ids(list(REWARD_TOKENS)))
            if cfg.special_tokens
            else ()
        )
        self.template = template_text(cfg.template)
        self.max_frames = cfg.num_frames if cfg.num_frames is not None else FPS_MAX_FRAMES
        step = cfg.checkpoint.name if cfg.checkpoint != cfg.directory else "model.pth"
        digest = hashlib.sha256(fingerprint(cfg.base, cfg.directory).encode())
        for p in sorted(cfg.directory.rglob("*.pth")):
            digest.update(f"{p.relative_to(cfg.directory)}:{p.stat().st_size}".encode())
        self.model = ModelInfo(
            backend="vlm",
            name=f"{cfg.directory.name}/{step} (reward_head on {cfg.base.name})",
            version=digest.hexdigest()[:12],
        )
        log.info(
            "reward_head critic: %s on %s, %s, %s, max %d pixels, normalised: %s",
            self.model.name,
            device,
            str(dtype).removeprefix("torch."),
            cfg.sampling,
            cfg.max_pixels,
            "yes" if cfg.norm else "no (no inference_config)",
        )

    @property
    def score_semantics(self) -> str:
        """What GetInfo reports: scores from the (normalised) head output, ordinal cuts ±1."""
        z = "normalised" if self.config.norm else "raw"
        return f"videoreward_{z}_head_ordinal_logistic_cuts_pm{CUT:g}_to_0_1"

    # -- request thread -----------------------------------------------------------------
    def prepare(self, video: DecodedVideo, prompt: str, check: Callable[[], None]) -> PreparedVideo:
        """Pick the checkpoint's frames, resize, patchify, render the prompt."""
        for token in REWARD_TOKENS:
            if token in prompt:
                raise InvalidInput(f"the prompt must not contain the reward token {token}")
        cfg = self.config
        wanted = sample_indices(video.total_frames, video.fps, cfg.fps, cfg.num_frames)
        pick = np.searchsorted(video.indices, wanted).clip(0, video.num_sampled - 1)
        # nearest decoded frame (exact when every frame was decoded)
        left = (pick - 1).clip(0)
        closer = np.abs(video.indices[left] - wanted) < np.abs(video.indices[pick] - wanted)
        pick = np.where(closer, left, pick)
        frames = video.frames[pick]
        times = video.timestamps[pick]
        spf = float(np.mean(np.diff(times))) if len(times) > 1 and times[-1] > times[0] else 1.0
        try:
            vision = self.family.prepare(frames, spf)
        except ValueError as exc:
            raise InvalidInput(f"the model cannot take this video: {exc}") from None
        check()
        text = self.template.replace("{text_prompt}", prompt)
        ids = self._render(text, vision.num_tokens)
        if self.read_ids:
            where = []
            for token, tid in zip(REWARD_TOKENS, self.read_ids, strict=True):
                at = [i for i, t in enumerate(ids) if t == tid]
                if len(at) != 1:
                    raise InvalidInput(
                        f"the rendered prompt holds {token} {len(at)} times, not once"
                    )
                where.append(at[0])
            read_at = tuple(where)
        else:
            read_at = (len(ids) - 1,) * 3
        return PreparedVideo(vision, tuple(ids), read_at, len(wanted), one_frame(video))

    def _render(self, text: str, num_tokens: int) -> list[int]:
        messages = [
            {"role": "user", "content": [{"type": "video"}, {"type": "text", "text": text}]}
        ]
        rendered = self.tokenizer.apply_chat_template(
            messages, tokenize=False, add_generation_prompt=True
        )
        ids = list(self.tokenizer.encode(rendered, add_special_tokens=False))
        where = [i for i, t in enumerate(ids) if t == self.video_token_id]
        if len(where) != 1:
            raise ValueError(
                f"the base's chat template rendered {len(where)} video placeholders; it must render one"
            )
        i = where[0]
        return ids[:i] + [self.video_token_id] * num_tokens + ids[i + 1 :]

    # -- model thread -------------------------------------------------------------------
    def values(self, items: Sequence[PreparedVideo]) -> list[HeadValues]:
        """The head's raw and normalised outputs, one forward for all ``items``."""
        import torch

        with torch.inference_mode():
            return self._values(items)

    def _values(self, items: Sequence[PreparedVideo]) -> list[HeadValues]:
        import torch

        model, family = self.net, self.family
        device = model.device
        per_video = family.encode_videos(model, [it.vision for it in items])
        width = max(len(it.ids) for it in items)
        ids = torch.full((len(items), width), self.pad_id, dtype=torch.long)
        mask = torch.zeros((len(items), width), dtype=torch.long)
        for b, it in enumerate(items):
            ids[b, width - len(it.ids) :] = torch.tensor(it.ids)
            mask[b, width - len(it.ids) :] = 1
        ids, mask = ids.to(device), mask.to(device)
        placed = ids == self.video_token_id
        embeds = family.embed(model, ids.masked_fill(placed, self.pad_id))
        embeds = embeds.masked_scatter(placed.unsqueeze(-1), torch.cat(per_video).to(embeds.dtype))
        positions = family.position_ids(model, ids, mask, [it.vision for it in items])
        out = family._inner(model).language_model(
            inputs_embeds=embeds, attention_mask=mask, position_ids=positions, use_cache=False
        )
        hidden = out.last_hidden_state
        results = []
        for b, it in enumerate(items):
            pad = width - len(it.ids)
            raw = []
            for d, at in enumerate(it.read_at):
                row = 0 if self.config.output_dim == 1 else d
                value = float(hidden[b, pad + at].float() @ self.head[row])
                if not math.isfinite(value):
                    raise RuntimeError(
                        "the reward head produced a non-finite value: the checkpoint's weights "
                        "hold NaN/inf or overflow in this dtype (try --dtype float32)"
                    )
                raw.append(value)
            results.append(self._normalise(raw))
        return results

    def _normalise(self, raw: list[float]) -> HeadValues:
        norm = self.config.norm
        zs = []
        for (code, _), value in zip(HEAD_DIMENSIONS, raw, strict=True):
            mean, std = norm[code] if norm else (0.0, 1.0)
            zs.append(round((value - mean) / std, 6))
        r = (round(raw[0], 6), round(raw[1], 6), round(raw[2], 6))
        return HeadValues(r, (zs[0], zs[1], zs[2]))

    def judge_batch(
        self, prepared: Sequence[PreparedVideo], with_reasons: bool, check: Callable[[], None]
    ) -> list[Judgement]:
        """One vision pass and one text pass for the whole batch."""
        results = []
        for item, v in zip(prepared, self.values(prepared), strict=True):
            judged = {}
            for i, (code, dim) in enumerate(HEAD_DIMENSIONS):
                reasons: tuple[str, ...] = ()
                if with_reasons:
                    reasons = (self._reason(code, v.raw[i], v.normalised[i], v, item.frames),)
                judged[dim] = DimensionVerdict.assessed(
                    dim, probabilities(v.normalised[i]), reasons
                )
            results.append(Judgement(tuple(judged[d] for d in DIMENSIONS)))
        return results

    def _reason(self, code: str, raw: float, z: float, v: HeadValues, frames: int) -> str:
        norm = self.config.norm
        how = (
            f"mean {norm[code][0]:g}, std {norm[code][1]:g}"
            if norm
            else "not normalised: the checkpoint has no inference_config"
        )
        return (
            f"VideoReward {code} {z:+.6f} normalised (raw {raw:.6f}; {how}); "
            f"Overall {v.overall:+.6f}; {frames} frames at {self.config.sampling}"
        )

    def compare_batch(
        self, pairs: Sequence[tuple[PreparedVideo, PreparedVideo]], check: Callable[[], None]
    ) -> list[PairJudgement]:
        """Both videos of every pair in one forward; the checkpoint's preference model per head."""
        flat = [v for pair in pairs for v in pair]
        values = self.values(flat)
        check()
        out = []
        for i, (a, b) in enumerate(pairs):
            va, vb = values[2 * i], values[2 * i + 1]
            prefs: dict[Dimension, DimensionPreference] = {}
            for d, (_, dim) in enumerate(HEAD_DIMENSIONS):
                if dim == Dimension.MOTION_SMOOTHNESS and (a.still or b.still):
                    prefs[dim] = DimensionPreference(dim)
                else:
                    prefs[dim] = DimensionPreference(dim, self._preference(va.raw[d] - vb.raw[d]))
            if a.still or b.still:  # no motion to judge: Overall without MQ, as the critique
                keep = [
                    i
                    for i, (_, dim) in enumerate(HEAD_DIMENSIONS)
                    if dim != Dimension.MOTION_SMOOTHNESS
                ]
                gap = sum(va.normalised[i] - vb.normalised[i] for i in keep)
            else:
                gap = va.overall - vb.overall
            overall = self._preference(gap)
            method = "videoreward_" + (
                "bradley_terry_ties_k5" if self.config.ties else "bradley_terry"
            )
            out.append(PairJudgement(tuple(prefs[d] for d in DIMENSIONS), overall, method))
        return out

    def _preference(self, d: float) -> Preference:
        if not self.config.ties:
            pa = round(_logistic(d), 6)
            return Preference(pa, round(1.0 - pa, 6))
        log_k = math.log(TIES_K)
        pa = round(_logistic(d - log_k), 6)
        pb = round(_logistic(-(d + log_k)), 6)
        return Preference(pa, pb, round(max(0.0, 1.0 - pa - pb), 6))
