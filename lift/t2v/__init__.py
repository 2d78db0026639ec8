"""Text-to-video model families: the one place the generator and the trainer learn about them.

A family (by diffusers pipeline class name; anything else is driven by the
generic one) gives a loaded pipeline's defaults and native shapes and its
denoiser; a trainable family also gives the trainer its text and video
encodings and the denoiser call. :func:`load_pipeline` loads a diffusers
pipeline directory the same way for both services, and :mod:`lift.t2v.tiny`
builds the embedded demo model both use when no model is configured.

Only the services import this package (it is shared infrastructure, below
them); torch and diffusers load when a pipeline does, not on import.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

from lift.t2v.base import Defaults, PipelineFamily, PipelineSpec, TrainableFamily
from lift.t2v.cogvideox import CogVideoXFamily
from lift.t2v.generic import GenericFamily

if TYPE_CHECKING:
    import torch

FAMILIES: dict[str, PipelineFamily] = {
    "CogVideoXPipeline": CogVideoXFamily(),
}
"""Families by diffusers pipeline class name."""


def family_for(pipe: Any) -> PipelineFamily:
    """The family that drives ``pipe``."""
    return FAMILIES.get(type(pipe).__name__, GenericFamily())


def trainable_family_for(pipe: Any) -> TrainableFamily | None:
    """The family that trains ``pipe``; None when the trainer cannot train it."""
    family = FAMILIES.get(type(pipe).__name__)
    return family if family is not None and family.trainable else None  # type: ignore[return-value]


def trainable_pipelines() -> list[str]:
    """Pipeline class names the trainer can train (for messages)."""
    return [name for name, family in FAMILIES.items() if family.trainable]


def load_pipeline(model_dir: Path | str, dtype: torch.dtype) -> Any:
    """A diffusers pipeline from a local directory (``model_index.json`` layout), on the CPU."""
    from diffusers import DiffusionPipeline

    from lift.checkpoints import quiet_hf

    quiet_hf()
    return DiffusionPipeline.from_pretrained(model_dir, dtype=dtype)


__all__ = [
    "FAMILIES",
    "CogVideoXFamily",
    "Defaults",
    "GenericFamily",
    "PipelineFamily",
    "PipelineSpec",
    "TrainableFamily",
    "family_for",
    "load_pipeline",
    "trainable_family_for",
    "trainable_pipelines",
]
