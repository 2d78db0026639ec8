"""Model families the ``vlm`` backend knows, by the checkpoint's ``model_type``."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from lift.services.critic.backends.vlm.families.base import Family, VisionInput
from lift.services.critic.backends.vlm.families.qwen2_vl import Qwen2VLFamily, Qwen25VLFamily
from lift.services.critic.backends.vlm.families.vila import VilaFamily

FAMILIES: dict[str, Callable[[Path], Family]] = {
    "qwen2_vl": Qwen2VLFamily,
    "qwen2_5_vl": Qwen25VLFamily,
    "llava_llama": VilaFamily,  # VILA-1.5, the LiFT-Critic base
}
"""``config.json`` model_type -> adapter factory (given the checkpoint directory)."""


def family_for(model_type: str, checkpoint: Path) -> Family:
    """The adapter for ``model_type``, or a ValueError naming the supported ones."""
    try:
        return FAMILIES[model_type](checkpoint)
    except KeyError:
        raise ValueError(
            f"the checkpoint's model_type {model_type!r} is not supported by the vlm backend; "
            f"supported: {', '.join(sorted(FAMILIES))}"
        ) from None


__all__ = ["FAMILIES", "Family", "VisionInput", "family_for"]
