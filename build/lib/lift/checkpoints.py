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
