"""Trainer settings: environment variables prefixed ``LIFT_TRAINER_`` (or CLI flags)."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Annotated, Any

from pydantic import Field, SecretStr, field_validator
from pydantic_settings import NoDecode, SettingsConfigDict

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
    # -- the trainer's own credentials towards the generator and critic ------------------
    # Its own, never a caller's: a run config cannot make the trainer spend someone
    # else's token, and a caller's token never leaves the trainer.
    client_token: SecretStr | None = Field(
        None, description="Bearer token the trainer sends to the generator and critic."
    )
    client_token_file: Path | None = Field(
        None, description="File holding that token (e.g. a mounted secret); read at each run."
    )
    client_tls: bool = Field(False, description="Reach the generator and critic over TLS.")
    client_ca_file: Path | None = Field(
        None, description="PEM CA their certificates must chain to (implies TLS) [system]."
    )
    client_cert_file: Path | None = Field(
        None, description="PEM client certificate for mutual TLS with them."
    )
    client_key_file: Path | None = Field(None, description="PEM key of client_cert_file.")
    max_message_bytes: int = Field(
        4 * 1024 * 1024, ge=1024, description="Largest gRPC message accepted or sent."
    )
    # -- what runs may touch (see services/trainer/access.py) ---------------------------
    data_roots: Annotated[list[Path], NoDecode] = Field(
        default_factory=list,
        description="Directories run configs may read from (prompts_file, real_data, "
        "offline_data, model), comma-separated: every path must resolve under one, symlinks "
        "followed. Unset: <data_dir>/inputs only.",
    )
    generator_address: str = Field(
        "localhost:50052", description="The generator runs use when their config names none."
    )
    critic_address: str = Field(
        "localhost:50051", description="The critic runs use when their config names none."
    )
    resolve_endpoints: bool = Field(
        False,
        description="Runs whose config names no generator or critic treat generator_address "
        "and critic_address as DNS names for several replicas (a Kubernetes headless "
        "Service): every address a name resolves to is a replica the run spreads work over.",
    )
    allowed_endpoints: Annotated[list[str], NoDecode] = Field(
        default_factory=list,
        description="host:port generator and critic addresses run configs may name, "
        "comma-separated (* allows any). Unset: generator_address and critic_address only.",
    )
    max_prompts_file_bytes: int = Field(
        4 * 1024 * 1024, ge=1024, le=1024**3, description="Largest prompts_file, bytes."
    )
    max_data_file_bytes: int = Field(
        256 * 1024 * 1024,
        ge=1024,
        le=16 * 1024**3,
        description="Largest dataset file (a video, a JSON/JSONL record file), bytes.",
    )
    max_dataset_bytes: int = Field(
        16 * 1024**3,
        ge=1024 * 1024,
        description="Most memory a run's real or offline clips may take at the training "
        "shape (uint8 RGB), bytes; a larger dataset is refused before decoding.",
    )
    # -- bounded runs ---------------------------------------------------------------------
    keep_checkpoints: int = Field(
        3, ge=1, le=1000, description="Checkpoints kept per run: the newest N plus the best."
    )
    max_crash_resumes: int = Field(
        2,
        ge=0,
        le=100,
        description="Times a run that was running when the trainer died is resumed; the next "
        "such crash ends it failed.",
    )

    @field_validator("data_roots", "allowed_endpoints", mode="before")
    @classmethod
    def _comma_separated(cls, v: Any) -> Any:
        """Environment values are comma-separated (a JSON list works too)."""
        if isinstance(v, str):
            text = v.strip()
            if text.startswith("["):
                import json

                return json.loads(text)
            return [part.strip() for part in text.split(",") if part.strip()]
        return v

    def roots(self) -> list[Path]:
        """The data roots in force (the configured ones, or <data_dir>/inputs)."""
        return list(self.data_roots) or [self.data_dir / "inputs"]

    def endpoints(self) -> list[str]:
        """The allowed endpoints in force (the configured ones, or the trainer's own two)."""
        return list(self.allowed_endpoints) or [self.generator_address, self.critic_address]
