"""Critic settings: environment variables prefixed ``LIFT_CRITIC_`` (or CLI flags)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Literal

from pydantic import Field, field_validator, model_validator
from pydantic_settings import NoDecode, SettingsConfigDict

from lift.critique import Dimension
from lift.reward import DEFAULT_BAD, DEFAULT_GOOD, DEFAULT_NORMAL, RewardMap, check_reward_map
from lift.settings import ServiceSettings
from lift.uris import UriPolicy, parse_allowlist
from lift.video import VideoLimits


class CriticSettings(ServiceSettings):
    """Everything the critic service is configured with."""

    model_config = SettingsConfigDict(env_prefix="LIFT_CRITIC_", extra="forbid")

    grpc_port: int = Field(50051, ge=0, le=65535, description="gRPC port.")
    http_port: int = Field(8080, ge=0, le=65535, description="HTTP port.")
    backend: str = Field(
        "signal",
        description="Backend name from the critic's registry: signal, vlm, composite, onnx "
        "(the vlm with its vision tower on onnxruntime), triton (the same on Triton).",
    )
    protocol: str = Field(
        "auto",
        description="vlm: how the checkpoint's outputs become a critique: auto (what the "
        "checkpoint's layout says), labels (LiFT's Good/Normal/Bad answers), reward_head "
        "(VideoAlign's VideoReward: model_config.json + checkpoint-N/), rating (1-N scores "
        "per dimension: VideoScore2, UnifiedReward; templates with a [rating] table).",
    )
    workers: int = Field(
        8,
        ge=1,
        le=64,
        description="Requests decoded and prepared at the same time (the model itself runs "
        "micro-batches in one thread, so this also bounds how many requests can share a batch).",
    )
    # -- vlm / composite ---------------------------------------------------------
    model: Path | None = Field(
        None,
        description="Local transformers checkpoint directory of the video VLM (vlm, composite).",
    )
    adapter: Path | None = Field(None, description="Optional peft LoRA adapter directory.")
    vision_graph: Path | None = Field(
        None,
        description="onnx / triton backends: the directory `lift critic export` wrote "
        "(vision.onnx + vision.json).",
    )
    triton_url: str = Field("127.0.0.1:8001", description="triton backend: Triton's gRPC address.")
    triton_model: str = Field(
        "lift_critic_vision", description="triton backend: the model name in Triton's repository."
    )
    triton_timeout_s: float = Field(30.0, gt=0, description="triton backend: deadline per call.")
    templates: str | None = Field(
        None,
        description="Template preset name (lift-13b, lift-40b: the questions and conversation "
        "format LiFT-Critic was trained on; videoscore2, unifiedreward: rating prompts) or the "
        "path of a template file (TOML); default: the built-in LiFT templates.",
    )
    device: str = Field("auto", description="auto, cpu, cuda or cuda:N.")
    dtype: Literal["auto", "float32", "bfloat16", "float16"] = Field(
        "auto", description="Model dtype; auto = bfloat16 on CUDA, float32 on CPU."
    )
    attn_implementation: Literal["sdpa", "eager", "flash_attention_2"] = Field(
        "sdpa", description="transformers attention implementation."
    )
    num_frames: int = Field(8, ge=1, le=256, description="Frames the VLM sees (LiFT: 8).")
    max_reason_tokens: int = Field(
        48, ge=1, le=1024, description="Most tokens of one reason (Critique)."
    )
    batch_max_size: int = Field(
        8, ge=1, le=256, description="Most videos judged in one model call (micro-batching)."
    )
    batch_max_wait_ms: float = Field(
        5.0, ge=0, le=10_000, description="How long the first video of a batch waits for more."
    )
    composite_vlm_dimensions: list[Dimension] = Field(
        default_factory=lambda: list(Dimension),
        description="Dimensions the VLM decides in the composite backend; the signal "
        "critic decides the others it assesses.",
    )
    calibration: Path | None = Field(
        None,
        description="signal / composite: a calibration file `lift critic calibrate` wrote "
        "(ordinal model weights and cut points fitted to human labels); the model version "
        "then ends in +cal-<first 8 hex of its sha256>.",
    )
    max_frames_analysed: int = Field(
        256,
        ge=2,
        le=1024,
        description="Most frames a backend sees, evenly spread in time (the signal critic "
        "judges frame timing and places cuts to the frame when it sees every frame).",
    )
    max_kept_mb: int = Field(
        256,
        ge=16,
        description="Most memory, MiB, the decoded frames of one video may keep: larger "
        "pictures keep fewer frames, never fewer than 64.",
    )
    max_video_bytes: int = Field(64 * 1024 * 1024, ge=1024, description="Largest video, bytes.")
    max_duration_s: float = Field(120.0, gt=0, description="Longest video, seconds.")
    max_frames: int = Field(3600, ge=1, description="Most frames a video may hold.")
    max_side_px: int = Field(
        4096, ge=16, description="Largest width or height, pixels, of every decoded frame."
    )
    max_decoded_pixels: int = Field(
        8 * 1024**3,
        ge=1024,
        description="Most pixels decoded from one video, all frames together (bounds the "
        "decoding work; the default takes 3600 frames of 1080p).",
    )
    max_prompt_chars: int = Field(4000, ge=1, description="Longest prompt, characters.")
    max_batch_items: int = Field(64, ge=1, description="Most items in one Score request.")
    video_root: Path | None = Field(
        None, description="Directory file:// URIs may read from; unset refuses file:// URIs."
    )
    allow_http_uris: bool = Field(
        False,
        description="Allow http(s):// video URIs (fetched with the address checks below).",
    )
    http_uri_allow: Annotated[list[str], NoDecode] = Field(
        default_factory=list,
        description="Host names and networks (CIDR) http(s) video URIs may reach although "
        "they are not public (loopback, private, link-local, ...); comma-separated. Empty: "
        "public addresses only.",
    )
    http_uri_timeout_s: float = Field(
        30.0,
        gt=0,
        le=3600,
        description="Total time one video URI fetch may take (resolution, redirects, body).",
    )
    http_uri_max_redirects: int = Field(
        3, ge=0, le=10, description="Redirects a video URI fetch follows (each hop re-checked)."
    )
    http_uri_concurrency: int = Field(
        8, ge=1, le=256, description="Video URIs fetched at the same time."
    )
    http_uri_queue: int = Field(
        64,
        ge=0,
        description="Video URI fetches allowed to wait for a slot; more get "
        "RESOURCE_EXHAUSTED / 429.",
    )
    reward_good: float = Field(DEFAULT_GOOD, description="Reward for a 'good' label (paper: 0.9).")
    reward_normal: float = Field(
        DEFAULT_NORMAL, description="Reward for a 'normal' label (paper: 0.2)."
    )
    reward_bad: float = Field(DEFAULT_BAD, description="Reward for a 'bad' label (paper: 0.05).")

    @field_validator("http_uri_allow", mode="before")
    @classmethod
    def _split_allow(cls, v: object) -> object:
        if isinstance(v, str):
            return [part.strip() for part in v.split(",") if part.strip()]
        return v

    @field_validator("http_uri_allow")
    @classmethod
    def _check_allow(cls, v: list[str]) -> list[str]:
        parse_allowlist(v)  # raises ValueError naming a bad entry
        return v

    @model_validator(mode="after")
    def _check(self) -> CriticSettings:
        try:
            check_reward_map(self.reward_good, self.reward_normal, self.reward_bad)
        except ValueError as exc:
            raise ValueError(f"reward_good, reward_normal, reward_bad: {exc}") from None
        if self.max_video_bytes + 1024 * 1024 > self.max_message_bytes:
            raise ValueError(
                "max_message_bytes must exceed max_video_bytes by at least 1 MiB so a "
                "video that fits the limit also fits one gRPC message"
            )
        if self.backend in ("vlm", "composite", "onnx", "triton"):
            if self.model is None:
                raise ValueError(
                    f"the {self.backend} backend needs a model: set --model / LIFT_CRITIC_MODEL "
                    "to a local checkpoint directory (`lift debug tiny-model critic DIR` writes a "
                    "tiny one)"
                )
            if (
                not (self.model / "config.json").is_file()
                and not (
                    self.model / "model_config.json"  # a VideoAlign (reward_head) checkpoint
                ).is_file()
            ):
                raise ValueError(
                    f"model {self.model} is not a transformers checkpoint directory "
                    "(no config.json there) nor a VideoAlign one (no model_config.json)"
                )
            if self.adapter is not None and not (self.adapter / "adapter_config.json").is_file():
                raise ValueError(
                    f"adapter {self.adapter} is not a peft adapter directory "
                    "(no adapter_config.json there)"
                )
            if self.templates is not None:
                from lift.templates import TemplateError, load_templates

                try:
                    load_templates(self.templates)
                except TemplateError as exc:
                    raise ValueError(f"templates: {exc}") from None
        if self.calibration is not None:
            from lift.services.critic.backends.signal.calibration import (
                CalibrationError,
                load_calibration,
            )

            try:
                load_calibration(self.calibration)
            except CalibrationError as exc:
                raise ValueError(f"calibration: {exc}") from None
        if self.device not in ("auto", "cpu", "cuda") and not self.device.startswith("cuda:"):
            raise ValueError(f"device must be auto, cpu, cuda or cuda:N (got {self.device!r})")
        return self

    @property
    def reward_map(self) -> RewardMap:
        """The label -> reward map."""
        return RewardMap(self.reward_good, self.reward_normal, self.reward_bad)

    @property
    def uri_policy(self) -> UriPolicy:
        """What video URIs the critic may read."""
        return UriPolicy(
            file_root=self.video_root,
            allow_http=self.allow_http_uris,
            http_timeout_s=self.http_uri_timeout_s,
            http_allow=tuple(self.http_uri_allow),
            http_max_redirects=self.http_uri_max_redirects,
        )

    @property
    def video_limits(self) -> VideoLimits:
        """The decoder's limits."""
        return VideoLimits(
            max_bytes=self.max_video_bytes,
            max_duration_s=self.max_duration_s,
            max_frames=self.max_frames,
            max_side_px=self.max_side_px,
            max_decoded_pixels=self.max_decoded_pixels,
        )
