"""The trainer's own copy of the T2V model: what it trains and how the loss is computed.

The model's family (:mod:`lift.t2v`, shared with the generator) says how text
and video become the denoiser's inputs and how the denoiser is called; the
loss around them is here. The denoiser trains (a peft LoRA on it by default); the text encoder and VAE
are frozen. One training example is a video at the training shape and its
caption: the VAE encodes the video to its posterior *mean* (deterministic, so a
resumed run sees the same latents; on real CogVideoX VAEs the posterior spread is
negligible anyway), a timestep and noise drawn from the caller's generator make
the noisy latent, and the per-example loss is the mean squared error of the
denoiser's prediction against the scheduler's target (``v`` for v-prediction
models such as CogVideoX-2B, the noise for epsilon models).
"""

from __future__ import annotations

import json
import logging
from pathlib import Path

import numpy as np
import torch

from lift.errors import InvalidInput
from lift.generation import AdapterFiles
from lift.services.trainer.config import LoraConfigModel
from lift.t2v import load_pipeline, trainable_family_for, trainable_pipelines

log = logging.getLogger(__name__)


class Policy:
    """A pipeline of a trainable family split into frozen encoders and a trainable denoiser."""

    def __init__(
        self, model_dir: Path, lora: LoraConfigModel, device: str = "cpu", seed: int = 0
    ) -> None:
        if not (model_dir / "model_index.json").is_file():
            raise InvalidInput(f"model: {model_dir} is not a diffusers pipeline directory")
        pipe = load_pipeline(model_dir, torch.float32)
        family = trainable_family_for(pipe)
        if family is None:
            raise InvalidInput(
                f"model: the trainer trains {', '.join(trainable_pipelines())} pipelines; "
                f"{model_dir} holds a {type(pipe).__name__}"
            )
        pipe.set_progress_bar_config(disable=True)
        self.pipe = pipe
        self.family = family
        self.device = torch.device(device)
        self.denoiser: torch.nn.Module = family.denoiser(pipe)
        self.vae = pipe.vae
        self.scheduler = pipe.scheduler
        self.lora = lora
        for module in (pipe.text_encoder, self.vae, self.denoiser):
            module.requires_grad_(False)
            module.to(self.device)
        pipe.text_encoder.eval()
        self.vae.eval()
        if lora.full_finetune:
            self.denoiser.requires_grad_(True)
        else:
            with torch.random.fork_rng(devices=[]):  # same seed, same initial adapter
                torch.manual_seed(seed)
                self._add_lora(lora)
        self._embeds: dict[str, torch.Tensor] = {}

    def _add_lora(self, lora: LoraConfigModel) -> None:
        from peft import LoraConfig

        modules = dict(self.denoiser.named_modules())
        for target in lora.target_modules:
            hits = [n for n in modules if n == target or n.endswith("." + target)]
            if not hits:
                raise InvalidInput(
                    f"lora.target_modules: no layer of the denoiser is named {target!r} "
                    "(e.g. to_q, to_k, to_v, to_out.0, ff.net.0.proj, ff.net.2)"
                )
            other = [n for n in hits if not isinstance(modules[n], torch.nn.Linear)]
            if other:
                raise InvalidInput(
                    f"lora.target_modules: {target!r} also names {other[0]} "
                    f"({type(modules[other[0]]).__name__}); the generator takes LoRA on Linear "
                    "layers only: name those more exactly"
                )
        self.denoiser.add_adapter(  # type: ignore[operator]
            LoraConfig(
                r=lora.rank,
                lora_alpha=lora.alpha,  # type: ignore[arg-type]
                target_modules=list(lora.target_modules),
                init_lora_weights=True,  # B = 0: the adapter starts as the base model
            )
        )

    def trainable(self) -> dict[str, torch.nn.Parameter]:
        """The parameters the optimizer updates, by name (a stable order)."""
        return {n: p for n, p in self.denoiser.named_parameters() if p.requires_grad}

    def frozen(self) -> dict[str, torch.Tensor]:
        """The parameters that must not change, by name."""
        return {n: p for n, p in self.denoiser.named_parameters() if not p.requires_grad}

    @torch.no_grad()
    def embed(self, prompts: list[str]) -> torch.Tensor:
        """Text embeddings [B, L, D] (cached per prompt: the encoder is frozen)."""
        for p in prompts:
            if p not in self._embeds:
                self._embeds[p] = self.family.text_embeddings(self.pipe, p, self.device)
                if len(self._embeds) > 4096:  # bound memory on huge prompt sets
                    self._embeds.pop(next(iter(self._embeds)))
        return torch.stack([self._embeds[p] for p in prompts])

    @torch.no_grad()
    def encode(self, videos: np.ndarray) -> torch.Tensor:
        """Latents [B, F', C, h, w] of uint8 videos [B, F, H, W, 3]."""
        x = torch.from_numpy(np.ascontiguousarray(videos)).to(self.device).float() / 127.5 - 1.0
        x = x.permute(0, 4, 1, 2, 3)  # B C F H W
        # One video at a time bounds the VAE's activation memory.
        return torch.cat([self.family.video_latents(self.pipe, one) for one in x.split(1)])

    def losses(
        self,
        latents: torch.Tensor,
        embeds: torch.Tensor,
        generator: torch.Generator,
        rows: list[int] | None = None,
        total: int | None = None,
        denoiser: torch.nn.Module | None = None,
    ) -> torch.Tensor:
        """Per-example diffusion loss [B] at timesteps and noise drawn from ``generator``.

        ``rows``: the examples' places in a batch of ``total`` (one process's share of a
        data-parallel step): the draws are made for the whole batch and these rows taken,
        so each example gets the timestep and noise it gets in a one-process run.
        ``denoiser``: another module than :attr:`denoiser` (the unwrapped one, for a
        forward pass one process makes alone: the data-parallel wrapper would wait for
        the others).
        """
        b = latents.shape[0]
        steps = self.scheduler.config.num_train_timesteps
        if rows is None:
            t = torch.randint(0, steps, (b,), generator=generator)
            noise = torch.randn(latents.shape, generator=generator, dtype=latents.dtype)
        else:
            n = total if total is not None else max(rows) + 1
            index = torch.tensor(rows, dtype=torch.long)
            t = torch.randint(0, steps, (n,), generator=generator)[index]
            shape = (n, *latents.shape[1:])
            noise = torch.randn(shape, generator=generator, dtype=latents.dtype)[index]
        t, noise = t.to(self.device), noise.to(self.device)
        noisy = self.scheduler.add_noise(latents, noise, t)
        kind = self.scheduler.config.prediction_type
        target = self.scheduler.get_velocity(latents, noise, t) if kind == "v_prediction" else noise
        module = denoiser if denoiser is not None else self.denoiser
        pred = self.family.predict(self.pipe, module, noisy, embeds, t)
        return (pred.float() - target.float()).pow(2).flatten(1).mean(1)

    def adapter_files(self, denoiser: torch.nn.Module | None = None) -> AdapterFiles:
        """The LoRA as peft lays it out on disk (what the generator's LoadAdapter takes)."""
        from peft import get_peft_model_state_dict
        from safetensors.torch import save

        if self.lora.full_finetune:
            raise InvalidInput("a full fine-tune has no adapter to publish")
        state = get_peft_model_state_dict(denoiser or self.denoiser)
        weights = save(
            {f"base_model.model.{k}": v.detach().cpu().contiguous() for k, v in state.items()},
            metadata={"format": "pt"},
        )
        return AdapterFiles(weights, self.adapter_config())

    def adapter_config(self) -> str:
        """The adapter's ``adapter_config.json`` text (peft's field names)."""
        return json.dumps(
            {
                "peft_type": "LORA",
                "r": self.lora.rank,
                "lora_alpha": self.lora.alpha,
                "target_modules": list(self.lora.target_modules),
                "bias": "none",
                "use_dora": False,
            }
        )

    def trainable_state(self) -> dict[str, torch.Tensor]:
        """Copies of the trainable tensors (for checkpoints)."""
        return {n: p.detach().cpu().clone().contiguous() for n, p in self.trainable().items()}

    def load_trainable_state(self, state: dict[str, torch.Tensor]) -> None:
        """Restore :meth:`trainable_state` output exactly."""
        params = self.trainable()
        if set(state) != set(params):
            raise ValueError("the checkpoint's trainable weights do not match this model")
        with torch.no_grad():
            for n, p in params.items():
                p.copy_(state[n].to(p.device, p.dtype))
