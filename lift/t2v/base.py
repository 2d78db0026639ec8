"""What the generator and the trainer need to know about a diffusers pipeline class.

A family maps a loaded pipeline onto a :class:`PipelineSpec` (defaults and the
shapes it can generate, which follow from its VAE's compression and the
denoiser's patch size) and names its denoiser (the module LoRA adapters attach
to). The generator calls every text-to-video pipeline the same way, with
diffusers' own argument names. A family the trainer can train also says how
text and video become the denoiser's inputs and how the denoiser is called
(:class:`TrainableFamily`); the diffusion loss around them is the trainer's.

torch is imported only where a tensor is made, so importing this package
costs nothing until a model is loaded.
"""

from __future__ import annotations

import inspect
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Protocol

if TYPE_CHECKING:
    import torch

# Arguments of __call__ the engine passes; a pipeline lacking one cannot be driven.
CALL_ARGUMENTS = (
    "prompt",
    "negative_prompt",
    "num_frames",
    "height",
    "width",
    "num_inference_steps",
    "guidance_scale",
    "generator",
    "output_type",
    "callback_on_step_end",
)


@dataclass(frozen=True)
class Defaults:
    """Values for request fields left unset."""

    num_frames: int
    height: int
    width: int
    num_inference_steps: int
    guidance_scale: float
    fps: float


@dataclass(frozen=True)
class PipelineSpec:
    """Defaults of a loaded pipeline and the shapes it generates natively.

    Frame counts the pipeline can make are ``frames_multiple * k + 1`` whose latent
    length ``k + 1`` is a multiple of ``latent_frames_multiple``; heights and widths
    are multiples of ``size_multiple``. Other requested shapes are generated at the
    next larger native shape and trimmed (frames) or centre-cropped (sides).
    """

    pipeline: str
    defaults: Defaults
    frames_multiple: int = 1
    latent_frames_multiple: int = 1
    size_multiple: int = 16

    def native_num_frames(self, n: int) -> int:
        """The smallest frame count >= ``n`` the pipeline generates."""
        m, p = self.frames_multiple, self.latent_frames_multiple
        latent = -(-(n - 1) // m) + 1
        latent = -(-latent // p) * p
        return (latent - 1) * m + 1

    def native_side(self, px: int) -> int:
        """The smallest side >= ``px`` the pipeline generates."""
        return -(-px // self.size_multiple) * self.size_multiple


class PipelineFamily(Protocol):
    """Adapter between the suite and one kind of diffusers pipeline."""

    name: str
    trainable: bool
    """Whether the family is a :class:`TrainableFamily` (the trainer can train it)."""

    def spec(self, pipe: Any) -> PipelineSpec:
        """Defaults and native shapes of a loaded pipeline."""
        ...

    def denoiser(self, pipe: Any) -> torch.nn.Module:
        """The module LoRA adapters attach to (transformer or UNet)."""
        ...


class TrainableFamily(PipelineFamily, Protocol):
    """A family whose denoiser the trainer can train with the diffusion loss."""

    def text_embeddings(self, pipe: Any, prompt: str, device: torch.device) -> torch.Tensor:
        """The denoiser's text conditioning for one prompt, [L, D] (no guidance copy)."""
        ...

    def video_latents(self, pipe: Any, video: torch.Tensor) -> torch.Tensor:
        """Latents [B, F', C, h, w] of videos [B, C, F, H, W] in [-1, 1] (the posterior mean).

        The mean, not a sample: encoding is deterministic, so a resumed run sees
        the same latents.
        """
        ...

    def predict(
        self,
        pipe: Any,
        denoiser: torch.nn.Module,
        noisy: torch.Tensor,
        embeds: torch.Tensor,
        timesteps: torch.Tensor,
    ) -> torch.Tensor:
        """The denoiser's prediction for noisy latents [B, F', C, h, w] at ``timesteps``.

        ``denoiser`` is passed in because the trainer may have wrapped
        ``pipe``'s own (distributed training, mixed precision).
        """
        ...


def check_callable(pipe: Any) -> None:
    """Refuse a pipeline whose __call__ lacks an argument the engine passes."""
    params = inspect.signature(pipe.__call__).parameters
    missing = [a for a in CALL_ARGUMENTS if a not in params]
    if missing:
        raise ValueError(
            f"{type(pipe).__name__} is not a text-to-video pipeline this generator can drive: "
            f"its __call__ lacks {', '.join(missing)}"
        )


def call_defaults(pipe: Any) -> dict[str, Any]:
    """Defaults declared in the pipeline's __call__ signature (None where it has none)."""
    params = inspect.signature(pipe.__call__).parameters
    return {
        name: p.default
        for name, p in params.items()
        if p.default is not inspect.Parameter.empty and p.default is not None
    }
