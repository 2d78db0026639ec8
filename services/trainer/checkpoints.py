"""Atomic training checkpoints: a directory per step, complete or absent.

A checkpoint is written into ``.partial-step-N`` (every file fsynced), then
renamed to ``step-0000000N`` and the parent directory fsynced. A rename is
atomic on POSIX filesystems, so after ``kill -9`` at any instant the directory
holds only complete checkpoints (plus, perhaps, a partial one that is ignored and
cleared). Nothing is pickled: tensors are safetensors, the rest JSON.

Files: ``trainable.safetensors`` (the weights that train), ``optimizer.safetensors``
(its moments), ``rng.safetensors`` (torch's CPU generator state), ``policy.safetensors``
(the adapter the generator was serving, when one was published) and
``state.json`` (step, optimizer groups, scheduler, what was published, the
evaluation before training, and ``reward``: the mean step reward since the
checkpoint before, which ranks checkpoints).

Retention: after each save a run keeps its newest ``keep`` checkpoints plus its
best one (highest ``reward``); older ones are deleted, so a long run with a
checkpoint every step uses bounded disk. Resuming takes the newest, always kept.
"""

from __future__ import annotations

import json
import os
import re
import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch


def tensors_to_bytes(tensors: dict[str, torch.Tensor]) -> bytes:
    """safetensors bytes of ``tensors``."""
    from safetensors.torch import save

    return save({k: v.detach().cpu().contiguous() for k, v in tensors.items()})


def tensors_from_bytes(data: bytes) -> dict[str, torch.Tensor]:
    """The tensors in safetensors ``data``."""
    from safetensors.torch import load

    return load(data)


def optimizer_state(optimizer: torch.optim.Optimizer) -> tuple[dict[str, torch.Tensor], Any]:
    """An optimizer's state as tensors (safetensors) plus its param groups (JSON)."""
    sd = optimizer.state_dict()
    tensors: dict[str, torch.Tensor] = {}
    for idx, state in sd["state"].items():
        for key, value in state.items():
            tensors[f"{idx}.{key}"] = torch.as_tensor(value).detach().cpu().clone()
    return tensors, sd["param_groups"]


def load_optimizer_state(
    optimizer: torch.optim.Optimizer, tensors: dict[str, torch.Tensor], groups: Any
) -> None:
    """Inverse of :func:`optimizer_state`."""
    state: dict[int, dict[str, torch.Tensor]] = {}
    for name, value in tensors.items():
        idx, key = name.split(".", 1)
        state.setdefault(int(idx), {})[key] = value
    for group in groups:
        if "betas" in group:
            group["betas"] = tuple(group["betas"])
    optimizer.load_state_dict({"state": state, "param_groups": groups})


_DIR = re.compile(r"step-(\d{8})")
PARTIAL = ".partial-"


@dataclass
class Checkpoint:
    """What a run needs to continue exactly where it was."""

    step: int
    trainable: dict[str, torch.Tensor]
    optimizer: dict[str, torch.Tensor]
    rng: torch.Tensor
    state: dict[str, Any]
    policy_weights: bytes | None = None


def _fsync_write(path: Path, data: bytes) -> None:
    with open(path, "wb") as f:
        f.write(data)
        f.flush()
        os.fsync(f.fileno())


def _fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


class CheckpointDir:
    """The checkpoints of one run; ``keep`` newest ones (plus the best) survive a save."""

    def __init__(self, root: Path, keep: int = 3) -> None:
        if keep < 1:
            raise ValueError("keep must be at least 1 (resuming needs the newest checkpoint)")
        self.root = root
        self.keep = keep

    def path(self, step: int) -> Path:
        """Where the checkpoint of ``step`` lives once complete."""
        return self.root / f"step-{step:08d}"

    def steps(self) -> list[int]:
        """Steps with a complete checkpoint, ascending."""
        if not self.root.is_dir():
            return []
        found = []
        for p in self.root.iterdir():
            m = _DIR.fullmatch(p.name)
            if m and (p / "state.json").is_file():
                found.append(int(m.group(1)))
        return sorted(found)

    def clear_partial(self) -> None:
        """Remove what a crash left half-written."""
        if self.root.is_dir():
            for p in self.root.iterdir():
                if p.name.startswith(PARTIAL):
                    shutil.rmtree(p, ignore_errors=True)

    def save(self, ckpt: Checkpoint) -> Path:
        """Write ``ckpt`` atomically; returns its directory."""
        self.root.mkdir(parents=True, exist_ok=True)
        final = self.path(ckpt.step)
        tmp = self.root / f"{PARTIAL}{final.name}"
        shutil.rmtree(tmp, ignore_errors=True)
        tmp.mkdir()
        _fsync_write(tmp / "trainable.safetensors", tensors_to_bytes(ckpt.trainable))
        _fsync_write(tmp / "optimizer.safetensors", tensors_to_bytes(ckpt.optimizer))
        _fsync_write(tmp / "rng.safetensors", tensors_to_bytes({"cpu": ckpt.rng}))
        if ckpt.policy_weights is not None:
            _fsync_write(tmp / "policy.safetensors", ckpt.policy_weights)
        state = {**ckpt.state, "step": ckpt.step}
        _fsync_write(tmp / "state.json", json.dumps(state, indent=1).encode())
        _fsync_dir(tmp)
        if final.exists():  # the same step again (a resumed run re-reaching it): replace
            shutil.rmtree(final)
        os.rename(tmp, final)
        _fsync_dir(self.root)
        self.prune()
        return final

    def reward(self, step: int) -> float | None:
        """The ``reward`` a checkpoint recorded (None when it has none or cannot be read)."""
        try:
            value = json.loads((self.path(step) / "state.json").read_text()).get("reward")
        except (OSError, ValueError, AttributeError):
            return None
        return float(value) if isinstance(value, int | float) else None

    def best(self) -> int | None:
        """The step of the checkpoint with the highest recorded reward (the newest on ties)."""
        scored = [(r, s) for s in self.steps() if (r := self.reward(s)) is not None]
        return max(scored)[1] if scored else None

    def prune(self) -> list[int]:
        """Delete all but the newest ``keep`` checkpoints and the best; the steps deleted."""
        steps = self.steps()
        keep = set(steps[-self.keep :])
        best = self.best()
        if best is not None:
            keep.add(best)
        dropped = [s for s in steps if s not in keep]
        for s in dropped:
            # Rename first: a crash mid-delete leaves a partial directory that
            # clear_partial removes, never a half-deleted "complete" checkpoint.
            doomed = self.root / f"{PARTIAL}drop-{self.path(s).name}"
            shutil.rmtree(doomed, ignore_errors=True)
            os.rename(self.path(s), doomed)
            shutil.rmtree(doomed, ignore_errors=True)
        if dropped:
            _fsync_dir(self.root)
        return dropped

    def load(self, step: int) -> Checkpoint:
        """Read the complete checkpoint of ``step``."""
        d = self.path(step)
        state = json.loads((d / "state.json").read_text())
        policy = d / "policy.safetensors"
        return Checkpoint(
            step=int(state["step"]),
            trainable=tensors_from_bytes((d / "trainable.safetensors").read_bytes()),
            optimizer=tensors_from_bytes((d / "optimizer.safetensors").read_bytes()),
            rng=tensors_from_bytes((d / "rng.safetensors").read_bytes())["cpu"],
            state=state,
            policy_weights=policy.read_bytes() if policy.is_file() else None,
        )

    def latest(self) -> Checkpoint | None:
        """The newest complete checkpoint, or None."""
        steps = self.steps()
        return self.load(steps[-1]) if steps else None


_PEFT_PREFIX = "base_model.model."
_DIFFUSERS_PREFIX = "transformer."
_METADATA_KEY = "lora_adapter_metadata"


def diffusers_lora(weights: bytes, config_json: str | None) -> bytes:
    """peft adapter weights in the layout diffusers' ``pipe.load_lora_weights(dir)`` applies.

    diffusers' CogVideoX loader (diffusers/loaders/lora_pipeline.py,
    ``CogVideoXLoraLoaderMixin``) reads ``pytorch_lora_weights.safetensors`` and keeps
    the keys under the pipeline's ``transformer.`` prefix, each named as peft names
    it (``<module>.lora_A.weight`` / ``.lora_B.weight``); the ``LoraConfig`` comes from
    the safetensors metadata ``lora_adapter_metadata``, a JSON object of the config's
    fields under the same prefix (diffusers/loaders/lora_base.py,
    ``_pack_lora_weights``). Without it diffusers would take alpha = rank, which is
    not ours when ``lora.alpha`` differs from ``lora.rank``.
    """
    tensors = tensors_from_bytes(weights)
    renamed = {_DIFFUSERS_PREFIX + k.removeprefix(_PEFT_PREFIX): v for k, v in tensors.items()}
    metadata = {"format": "pt"}
    if config_json:
        config = json.loads(config_json)
        packed = {_DIFFUSERS_PREFIX + k: v for k, v in config.items()}
        metadata[_METADATA_KEY] = json.dumps(packed, indent=2, sort_keys=True)
    from safetensors.torch import save

    return save({k: v.contiguous() for k, v in renamed.items()}, metadata=metadata)


def write_adapter(directory: Path, weights: bytes, config_json: str | None) -> None:
    """Write an adapter directory atomically (replacing an older one), in two layouts.

    peft's (``adapter_model.safetensors`` + ``adapter_config.json``: the generator's
    LoadAdapter and ``PeftModel.from_pretrained``) and diffusers'
    (``pytorch_lora_weights.safetensors``: ``pipe.load_lora_weights(dir)``).
    """
    from lift.generation import CONFIG_FILE, DIFFUSERS_WEIGHTS_FILE, WEIGHTS_FILE

    tmp = directory.with_name(PARTIAL + directory.name)
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir(parents=True)
    _fsync_write(tmp / WEIGHTS_FILE, weights)
    _fsync_write(tmp / DIFFUSERS_WEIGHTS_FILE, diffusers_lora(weights, config_json))
    if config_json is not None:
        _fsync_write(tmp / CONFIG_FILE, config_json.encode())
    _fsync_dir(tmp)
    old = directory.with_name(".old-" + directory.name)
    if directory.exists():
        shutil.rmtree(old, ignore_errors=True)
        os.rename(directory, old)
    os.rename(tmp, directory)
    shutil.rmtree(old, ignore_errors=True)
    _fsync_dir(directory.parent)
