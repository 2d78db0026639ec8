"""CogVideoX (2B/5B 1.0 and 1.5): the first-class family, read from the model's configs."""

from __future__ import annotations

from typing import Any

import torch

from lift.services.generator.pipelines.base import Defaults, PipelineSpec, check_callable


class CogVideoXFamily:
    """``CogVideoXPipeline``: defaults from the transformer's sample size, 8 fps (16 for 1.5)."""

    name = "cogvideox"

    def spec(self, pipe: Any) -> PipelineSpec:
        check_callable(pipe)
        cfg = pipe.transformer.config
        spatial = int(pipe.vae_scale_factor_spatial)
        temporal = int(pipe.vae_scale_factor_temporal)
        patch_t = cfg.patch_size_t
        return PipelineSpec(
            pipeline=type(pipe).__name__,
            defaults=Defaults(
                num_frames=int(cfg.sample_frames),
                height=int(cfg.sample_height) * spatial,
                width=int(cfg.sample_width) * spatial,
                num_inference_steps=50,
                guidance_scale=6.0,
                # CogVideoX 1.0 was trained on 8 fps clips, 1.5 (temporal patches) on 16.
                fps=16.0 if patch_t else 8.0,
            ),
            frames_multiple=temporal,
            latent_frames_multiple=int(patch_t or 1),
            size_multiple=spatial * int(cfg.patch_size),
        )

    def denoiser(self, pipe: Any) -> torch.nn.Module:
        return pipe.transformer  # type: ignore[no-any-return]
