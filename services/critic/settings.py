"""Critic settings: environment variables prefixed ``LIFT_CRITIC_`` (or CLI flags)."""

from __future__ import annotations

from pathlib import Path

from pydantic import Field, model_validator
from pydantic_settings import SettingsConfigDict

from lift.critique import RewardMap
from lift.settings import ServiceSettings
from lift.video import VideoLimits


class CriticSettings(ServiceSettings):
    """Everything the critic service is configured with."""

    model_config = SettingsConfigDict(env_prefix="LIFT_CRITIC_", extra="forbid")

    grpc_port: int = Field(50051, ge=0, le=65535, description="gRPC port.")
    http_port: int = Field(8080, ge=0, le=65535, description="HTTP port.")
    backend: str = Field("signal", description="Backend name from the critic's registry.")
    max_frames_analysed: int = Field(
        64, ge=2, le=1024, description="Most frames a backend sees, uniformly sampled."
    )
    max_video_bytes: int = Field(64 * 1024 * 1024, ge=1024, description="Largest video, bytes.")
    max_duration_s: float = Field(120.0, gt=0, description="Longest video, seconds.")
    max_frames: int = Field(3600, ge=1, description="Most frames a video may hold.")
    max_side_px: int = Field(4096, ge=16, description="Largest width or height, pixels.")
    max_prompt_chars: int = Field(4000, ge=1, description="Longest prompt, characters.")
    max_batch_items: int = Field(64, ge=1, description="Most items in one Score request.")
    video_root: Path | None = Field(
        None, description="Directory file:// URIs may read from; unset refuses file:// URIs."
    )
    allow_http_uris: bool = Field(False, description="Allow http(s):// video URIs.")
    reward_good: float = Field(0.9, description="Reward for a 'good' label (paper: 0.9).")
    reward_normal: float = Field(0.2, description="Reward for a 'normal' label (paper: 0.2).")
    reward_bad: float = Field(0.05, description="Reward for a 'bad' label (paper: 0.05).")

    @model_validator(mode="after")
    def _check(self) -> CriticSettings:
        if not self.reward_good >= self.reward_normal >= self.reward_bad:
            raise ValueError(
                "reward_good >= reward_normal >= reward_bad must hold "
                f"(got {self.reward_good}, {self.reward_normal}, {self.reward_bad})"
            )
        if self.max_video_bytes + 1024 * 1024 > self.max_message_bytes:
            raise ValueError(
                "max_message_bytes must exceed max_video_bytes by at least 1 MiB so a "
                "video that fits the limit also fits one gRPC message"
            )
        return self

    @property
    def reward_map(self) -> RewardMap:
        """The label -> reward map."""
        return RewardMap(self.reward_good, self.reward_normal, self.reward_bad)

    @property
    def video_limits(self) -> VideoLimits:
        """The decoder's limits."""
        return VideoLimits(
            max_bytes=self.max_video_bytes,
            max_duration_s=self.max_duration_s,
            max_frames=self.max_frames,
            max_side_px=self.max_side_px,
        )
