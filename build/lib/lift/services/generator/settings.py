"""Generator settings: environment variables prefixed ``LIFT_GENERATOR_`` (or CLI flags)."""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from pydantic import Field, model_validator
from pydantic_settings import SettingsConfigDict

from lift.settings import ServiceSettings, default_cache_dir


class GeneratorSettings(ServiceSettings):
    """Everything the generator service is configured with."""

    model_config = SettingsConfigDict(env_prefix="LIFT_GENERATOR_", extra="forbid")

    grpc_port: int = Field(50052, ge=0, le=65535, description="gRPC port.")
    http_port: int = Field(8081, ge=0, le=65535, description="HTTP port.")
    workers: int = Field(
        2,
        ge=1,
        le=16,
        description="Requests handled at the same time. The pipeline itself runs one "
        "generation at a time; a second worker encodes the previous video meanwhile.",
    )
    max_queue: int = Field(
        8, ge=0, description="Requests allowed to wait; more get RESOURCE_EXHAUSTED / 429."
    )
    model: Path | None = Field(
        None,
        description="Local diffusers pipeline directory (with model_index.json). Unset: the "
        "embedded tiny random CogVideoX demo model, written to cache_dir on first use.",
    )
    cache_dir: Path = Field(
        default_factory=default_cache_dir,
        description="Where the embedded demo model is written ($XDG_CACHE_HOME/lift).",
    )
    device: str = Field("auto", description="auto, cpu, cuda or cuda:N.")
    dtype: Literal["auto", "float32", "bfloat16", "float16"] = Field(
        "auto", description="Weights' dtype; auto = bfloat16 on CUDA, float32 on CPU."
    )
    offload: Literal["none", "model"] = Field(
        "none",
        description="'model' keeps components on the CPU and moves each to the GPU while it "
        "runs (diffusers' enable_model_cpu_offload; needs CUDA).",
    )
    vae_tiling: bool = Field(
        False, description="Decode latents in tiles (less memory at large sizes, a bit slower)."
    )
    max_num_frames: int = Field(161, ge=1, description="Most frames per video.")
    max_side_px: int = Field(1360, ge=16, description="Largest height or width, pixels.")
    max_num_inference_steps: int = Field(200, ge=1, description="Most denoising steps.")
    max_guidance_scale: float = Field(30.0, ge=0, description="Largest guidance scale.")
    max_prompt_chars: int = Field(2000, ge=1, description="Longest prompt, characters.")
    max_fps: float = Field(120.0, gt=0, description="Highest frame rate of the file.")
    default_fps: float | None = Field(
        None,
        gt=0,
        description="Frame rate of the file when a request sets none "
        "(default: the pipeline family's, 8 for CogVideoX).",
    )
    adapter_root: Path | None = Field(
        None,
        description="Directory file:// adapter URIs may read from; unset refuses file:// URIs "
        "(send the files instead).",
    )
    max_adapter_bytes: int = Field(
        200 * 1024 * 1024, ge=1024, description="Largest adapter weights file, bytes."
    )
    max_message_bytes: int = Field(
        256 * 1024 * 1024,
        ge=1024,
        description="Largest gRPC message accepted or sent (adapters arrive in one message).",
    )
    adapter_keep: int = Field(
        4,
        ge=1,
        le=64,
        description="Adapter versions kept loaded (the current one and the newest before it); "
        "a request may name any of them.",
    )

    @model_validator(mode="after")
    def _check(self) -> GeneratorSettings:
        if self.model is not None and not (self.model / "model_index.json").is_file():
            raise ValueError(
                f"model {self.model} is not a diffusers pipeline directory (no model_index.json "
                "there); `lift debug tiny-model generator DIR` writes a tiny one"
            )
        if self.device not in ("auto", "cpu", "cuda") and not self.device.startswith("cuda:"):
            raise ValueError(f"device must be auto, cpu, cuda or cuda:N (got {self.device!r})")
        if self.offload != "none" and self.device == "cpu":
            raise ValueError("offload needs a CUDA device; use offload=none with device=cpu")
        if self.max_adapter_bytes + 1024 * 1024 > self.max_message_bytes:
            raise ValueError(
                "max_message_bytes must exceed max_adapter_bytes by at least 1 MiB so an "
                "adapter that fits the limit also fits one gRPC message"
            )
        return self
