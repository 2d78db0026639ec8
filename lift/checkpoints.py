"""Shared by every service that loads a checkpoint: device, dtype, identity, quiet logs."""

from __future__ import annotations

import hashlib
from pathlib import Path
from typing import Any


def resolve_device(device: str) -> str:
    """ "auto" -> cuda when available, else cpu; "cuda" without a GPU is an error."""
    import torch

    if device == "auto":
        return "cuda" if torch.cuda.is_available() else "cpu"
    if device.startswith("cuda") and not torch.cuda.is_available():
        raise ValueError(f"device {device!r} was asked for but no CUDA GPU is available")
    return device


def resolve_dtype(dtype: str, device: str) -> Any:
    """The torch dtype for a settings name ("auto": bfloat16 on CUDA, float32 on CPU)."""
    import torch

    if dtype == "auto":
        return torch.bfloat16 if device.startswith("cuda") else torch.float32
    return {"float32": torch.float32, "bfloat16": torch.bfloat16, "float16": torch.float16}[dtype]


def fingerprint(*directories: Path | None) -> str:
    """Short, cheap identity of checkpoint directories: configs' bytes plus weight file sizes.

    Subdirectories count too (a diffusers pipeline keeps one per component).
    """
    h = hashlib.sha256()
    for d in directories:
        if d is None:
            continue
        for path in sorted(p for p in d.rglob("*") if p.is_file()):
            name = path.relative_to(d).as_posix()
            if path.suffix == ".json":
                h.update(name.encode() + path.read_bytes())
            elif path.suffix in (".safetensors", ".bin"):
                h.update(f"{name}:{path.stat().st_size}".encode())
    return h.hexdigest()[:12]


def quiet_hf() -> None:
    """Errors only from transformers and diffusers (when installed); no progress bars.

    Loading prints progress bars and advice meant for notebooks; a service's log
    should say what it loaded, once, in its own words.
    """
    from transformers.utils import logging as hf_logging

    hf_logging.set_verbosity_error()
    hf_logging.disable_progress_bar()
    try:
        from diffusers.utils import logging as diffusers_logging
    except ImportError:
        return
    diffusers_logging.set_verbosity_error()
    diffusers_logging.disable_progress_bar()


LFS_POINTER = b"version https://git-lfs"
"""How a Git LFS pointer file (a clone without ``git lfs pull``) starts."""


def load_weights_only(path: Path) -> dict[str, Any]:
    """A pickled dict of tensor name -> tensor, loaded without running any code from it.

    torch's weights-only unpickler refuses a pickle that would run code; every
    refusal, a text file (which that unpickler meets as a KeyError) and a Git LFS
    pointer become a ValueError naming the file.
    """
    import pickle

    import torch

    try:
        with path.open("rb") as f:
            head = f.read(len(LFS_POINTER))
    except OSError as exc:
        raise ValueError(f"{path} is not readable: {exc}") from None
    if head == LFS_POINTER:
        raise ValueError(
            f"{path} is a Git LFS pointer, not the weights: fetch them (git lfs pull) "
            "or download the file itself"
        )
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except (
        pickle.UnpicklingError,
        RuntimeError,
        EOFError,
        OSError,
        ValueError,
        KeyError,
        AttributeError,
    ) as exc:
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise ValueError(
            f"{path} does not load as a weights-only state dict ({first[:200]}); "
            f"{path.name} is refused: a pickle that would run code is never loaded (save "
            "plain tensors with torch.save(model.state_dict()))"
        ) from None
    if not isinstance(state, dict) or not all(
        isinstance(k, str) and isinstance(v, torch.Tensor) for k, v in state.items()
    ):
        raise ValueError(f"{path} must hold a dict of parameter name -> tensor")
    return state
