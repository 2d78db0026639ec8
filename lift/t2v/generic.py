"""Any other diffusers text-to-video pipeline, driven through its declared defaults.

Works for pipelines whose __call__ takes diffusers' usual text-to-video
arguments (Wan, HunyuanVideo, LTX-Video, Mochi, ...); the native shapes come
from the attributes those pipelines set, with conservative fallbacks.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from lift.t2v.base import Defaults, PipelineSpec, call_defaults, check_callable

if TYPE_CHECKING:
    import torch


def _patch(denoiser: torch.nn.Module) -> int:
    patch = getattr(getattr(denoiser, "config", None), "patch_size", None)
    if isinstance(patch, int):
        return patch
    if isinstance(patch, list | tuple) and patch:
        return int(patch[-1])
    return 1


class GenericFamily:
    """A text-to-video pipeline without a dedicated family (the generator drives it; no training)."""

    name = "generic"
    trainable = False

    def spec(self, pipe: Any) -> PipelineSpec:
        """Defaults from the pipeline's __call__ signature, native shapes from its attributes."""
        check_callable(pipe)
        declared = call_defaults(pipe)
        spatial = int(
            getattr(pipe, "vae_scale_factor_spatial", None)
            or getattr(pipe, "vae_spatial_compression_ratio", None)
            or 8
        )
        temporal = int(
            getattr(pipe, "vae_scale_factor_temporal", None)
            or getattr(pipe, "vae_temporal_compression_ratio", None)
            or 1
        )
        return PipelineSpec(
            pipeline=type(pipe).__name__,
            defaults=Defaults(
                num_frames=int(declared.get("num_frames", 16)),
                height=int(declared.get("height", 480)),
                width=int(declared.get("width", 720)),
                num_inference_steps=int(declared.get("num_inference_steps", 50)),
                guidance_scale=float(declared.get("guidance_scale", 6.0)),
                fps=float(declared.get("frame_rate", 16)),
            ),
            frames_multiple=temporal,
            size_multiple=spatial * _patch(self.denoiser(pipe)),
        )

    def denoiser(self, pipe: Any) -> torch.nn.Module:
        """The pipeline's transformer, else its UNet."""
        import torch

        for name in ("transformer", "unet"):
            module = getattr(pipe, name, None)
            if isinstance(module, torch.nn.Module):
                return module
        raise ValueError(f"{type(pipe).__name__} has no transformer or unet to attach adapters to")
