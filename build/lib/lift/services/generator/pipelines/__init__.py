"""Pipeline families by diffusers class name; anything else goes through the generic one."""

from __future__ import annotations

from typing import Any

from lift.services.generator.pipelines.base import Defaults, PipelineFamily, PipelineSpec
from lift.services.generator.pipelines.cogvideox import CogVideoXFamily
from lift.services.generator.pipelines.generic import GenericFamily

FAMILIES: dict[str, PipelineFamily] = {
    "CogVideoXPipeline": CogVideoXFamily(),
}


def family_for(pipe: Any) -> PipelineFamily:
    """The family that drives ``pipe``."""
    return FAMILIES.get(type(pipe).__name__, GenericFamily())


__all__ = ["FAMILIES", "Defaults", "PipelineFamily", "PipelineSpec", "family_for"]
