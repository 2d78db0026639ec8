"""Checkpoint helpers of ``lift critic train``: what a resumed run must match, and the
optimizer state as safetensors (safe formats only: no pickle in a checkpoint)."""

from __future__ import annotations

import hashlib
from typing import Any

import torch


def fingerprint_videos(digests: dict[str, str]) -> str:
    """One digest of every video's bytes (order-free)."""
    h = hashlib.sha256()
    for path in sorted(digests):
        h.update(digests[path].encode())
    return h.hexdigest()


def differences(saved: dict[str, Any], now: dict[str, Any]) -> list[str]:
    """What differs between a checkpoint's run identity and this run's, as flags to name."""
    out = []
    names = {"data": "--data contents", "eval": "--eval contents", "videos": "videos"}
    names["model"] = "--model checkpoint"
    for key in ("data", "eval", "videos", "model"):
        if saved.get(key) != now.get(key):
            out.append(names[key])
    old, new = saved.get("options", {}), now.get("options", {})
    for key in new:
        if old.get(key) != new[key]:
            flag = "--" + key.replace("_", "-")
            out.append(f"{flag} ({old.get(key)!r} then, {new[key]!r} now)")
    return out


def flatten_optimizer(state: dict[str, Any]) -> tuple[dict[str, torch.Tensor], Any]:
    """An optimizer state dict as (flat tensors for safetensors, JSON-able param groups)."""
    tensors = {}
    for index, slots in state["state"].items():
        for name, value in slots.items():
            v = value if isinstance(value, torch.Tensor) else torch.tensor(value)
            tensors[f"{index}.{name}"] = v.detach().cpu().contiguous()
    return tensors, state["param_groups"]


def unflatten_optimizer(tensors: dict[str, torch.Tensor], groups: Any) -> dict[str, Any]:
    """The inverse of :func:`flatten_optimizer`."""
    state: dict[int, dict[str, torch.Tensor]] = {}
    for key, value in tensors.items():
        index, name = key.split(".", 1)
        state.setdefault(int(index), {})[name] = value
    return {"state": state, "param_groups": groups}
