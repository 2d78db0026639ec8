"""Settings shared by every service; each service subclasses with its own env prefix."""

from __future__ import annotations

import os
from pathlib import Path

from pydantic import Field, field_validator
from pydantic_settings import BaseSettings


class ServiceSettings(BaseSettings):
    """Transport and capacity settings common to all services."""

    host: str = Field("127.0.0.1", description="Interface both servers bind to.")
    grpc_port: int = Field(50051, ge=0, le=65535, description="gRPC port (0 = any free port).")
    http_port: int = Field(8080, ge=0, le=65535, description="HTTP port (0 = any free port).")
    max_message_bytes: int = Field(
        80 * 1024 * 1024, ge=1024, description="Largest gRPC message accepted or sent."
    )
    workers: int = Field(2, ge=1, le=64, description="Requests computed at the same time.")
    max_queue: int = Field(
        16,
        ge=0,
        description="Requests allowed to wait for a worker; more get RESOURCE_EXHAUSTED / 429.",
    )
    log_level: str = Field("INFO", description="Python logging level.")

    @field_validator("log_level")
    @classmethod
    def _known_level(cls, v: str) -> str:
        v = v.upper()
        if v not in {"DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL"}:
            raise ValueError("log_level must be DEBUG, INFO, WARNING, ERROR or CRITICAL")
        return v


def default_cache_dir() -> Path:
    """$XDG_CACHE_HOME/lift (~/.cache/lift): where embedded demo models are written."""
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "lift"
