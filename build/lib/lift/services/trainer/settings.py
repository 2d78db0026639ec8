"""Trainer settings: environment variables prefixed ``LIFT_TRAINER_`` (or CLI flags)."""

from __future__ import annotations

import os
from pathlib import Path

from pydantic import Field
from pydantic_settings import SettingsConfigDict

from lift.settings import ServiceSettings, default_cache_dir


def _default_data_dir() -> Path:
    base = os.environ.get("XDG_DATA_HOME") or str(Path.home() / ".local" / "share")
    return Path(base) / "lift" / "trainer"


class TrainerSettings(ServiceSettings):
    """Everything the trainer service is configured with."""

    model_config = SettingsConfigDict(env_prefix="LIFT_TRAINER_", extra="forbid")

    grpc_port: int = Field(50053, ge=0, le=65535, description="gRPC port.")
    http_port: int = Field(8082, ge=0, le=65535, description="HTTP port.")
    data_dir: Path = Field(
        default_factory=_default_data_dir,
        description="Runs database (trainer.sqlite), checkpoints and adapters "
        "($XDG_DATA_HOME/lift/trainer).",
    )
    cache_dir: Path = Field(
        default_factory=default_cache_dir,
        description="Where the embedded demo model is written ($XDG_CACHE_HOME/lift).",
    )
    concurrent_runs: int = Field(
        1, ge=1, le=16, description="Runs trained at the same time; the rest wait queued."
    )
    max_queued_runs: int = Field(
        64, ge=0, description="Runs allowed to wait; more are refused with RESOURCE_EXHAUSTED."
    )
    max_config_bytes: int = Field(1024 * 1024, ge=1024, description="Largest run config, bytes.")
    max_message_bytes: int = Field(
        4 * 1024 * 1024, ge=1024, description="Largest gRPC message accepted or sent."
    )
