"""The ``vlm`` backend: a transformers video VLM (Qwen2-VL family first) as the LiFT critic."""

from lift.services.critic.backends.vlm.backend import VlmBackend, VlmOptions

__all__ = ["VlmBackend", "VlmOptions"]
