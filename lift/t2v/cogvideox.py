"""CogVideoX (2B/5B 1.0 and 1.5): the first-class family, read from the model's configs.

The generator drives it through diffusers' ``CogVideoXPipeline``; the trainer
trains its transformer with the text encoder and VAE frozen.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from lift.t2v.base import Defaults, PipelineSpec, check_callable

if TYPE_CHECKING:
    import torch


class CogVideoXFamily:
    """``CogVideoXPipeline``: defaults from the transformer's sample size, 8 fps (16 for 1.5)."""

    name = "cogvideox"
    trainable = True

    def spec(self, pipe: Any) -> PipelineSpec:
        """Defaults and native shapes from the transformer's config and the VAE's compression."""
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
        """The CogVideoX transformer."""
        return pipe.transformer  # type: ignore[no-any-return]

    def text_embeddings(self, pipe: Any, prompt: str, device: torch.device) -> torch.Tensor:
        """T5 embeddings padded to the transformer's text length."""
        emb, _ = pipe.encode_prompt(
            prompt,
            do_classifier_free_guidance=False,
            max_sequence_length=pipe.transformer.config.max_text_seq_length,
            device=device,
        )
        return emb[0].float()  # type: ignore[no-any-return]

    def video_latents(self, pipe: Any, video: torch.Tensor) -> torch.Tensor:
        """The VAE's posterior mean, scaled, in the transformer's frame-major layout."""
        dist = pipe.vae.encode(video).latent_dist
        latents = dist.mean * pipe.vae.config.scaling_factor
        return latents.permute(0, 2, 1, 3, 4)  # type: ignore[no-any-return]

    def predict(
        self,
        pipe: Any,
        denoiser: torch.nn.Module,
        noisy: torch.Tensor,
        embeds: torch.Tensor,
        timesteps: torch.Tensor,
    ) -> torch.Tensor:
        """The transformer's output; rotary position embeddings where the model uses them."""
        rotary = None
        if getattr(pipe.transformer.config, "use_rotary_positional_embeddings", False):
            vae_scale = pipe.vae_scale_factor_spatial
            rotary = pipe._prepare_rotary_positional_embeddings(
                noisy.shape[3] * vae_scale,
                noisy.shape[4] * vae_scale,
                noisy.shape[1],
                noisy.device,
            )
        return denoiser(  # type: ignore[no-any-return]
            hidden_states=noisy,
            encoder_hidden_states=embeds,
            timestep=timesteps,
            image_rotary_emb=rotary,
            return_dict=False,
        )[0]
