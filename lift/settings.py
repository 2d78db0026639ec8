"""Settings shared by every service; each service subclasses with its own env prefix."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Annotated

from pydantic import Field, field_validator, model_validator
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict


class SharedSettings(BaseSettings):
    """Settings every service reads under the same name (prefix ``LIFT_``, no service part)."""

    model_config = SettingsConfigDict(env_prefix="LIFT_", extra="ignore")

    auth_file: Path | None = Field(
        None, description="Tokens file (LIFT_AUTH_FILE) every service checks bearer tokens against."
    )


def _split_list(v: object) -> object:
    """A comma-separated env value as a list ("a, b" -> ["a", "b"]); a JSON list works too."""
    if isinstance(v, str):
        text = v.strip()
        if text.startswith("["):
            return json.loads(text)
        return [item.strip() for item in text.split(",") if item.strip()]
    return v


CommaList = Annotated[list[str], NoDecode]


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
    # -- limits (see lift/http/bodies.py and lift/grpc_server.py) -------------------
    max_body_bytes: int | None = Field(
        None,
        ge=1024,
        description="Largest HTTP request body, counted while it streams (chunked or not); "
        "unset: room for one max_message_bytes payload in base64 JSON (4/3 of it + 1 MiB).",
    )
    http_header_timeout_s: float = Field(
        10.0, gt=0, le=600, description="Time a client has to send a request's headers."
    )
    body_timeout_s: float = Field(
        120.0,
        gt=0,
        le=3600,
        description="Time a client has to send a whole request body (HTTP) or upload stream "
        "(gRPC); slower clients are cut off.",
    )
    http_keepalive_s: int = Field(
        5, ge=1, le=600, description="Idle time before a kept-alive HTTP connection is closed."
    )
    http_max_connections: int = Field(
        256,
        ge=1,
        description="Open HTTP connections served at once; requests beyond get 503 at once.",
    )
    grpc_max_concurrent_rpcs: int = Field(
        256, ge=1, description="gRPC calls handled at once; more get RESOURCE_EXHAUSTED."
    )
    grpc_max_concurrent_streams: int = Field(
        64, ge=1, description="gRPC calls one client connection may have open at once."
    )
    # -- access (see lift/auth.py and the README's SECURITY section) ---------------
    auth_file: Path | None = Field(
        default_factory=lambda: SharedSettings().auth_file,
        description="Tokens file (`lift auth add` writes it); default LIFT_AUTH_FILE. Unset: "
        "no authentication (local use; a warning when binding beyond loopback).",
    )
    open_metrics: bool = Field(
        True, description="/metrics answers without a token (Prometheus scrapes it)."
    )
    open_docs: bool = Field(
        True,
        description="/docs, /redoc and /openapi.json answer without a token (they describe "
        "the public API, nothing of the data).",
    )
    reflection: bool = Field(
        True, description="gRPC server reflection is served (without a token: only the schema)."
    )
    tls_cert_file: Path | None = Field(
        None, description="PEM certificate (chain) of both fronts; set with tls_key_file for TLS."
    )
    tls_key_file: Path | None = Field(None, description="PEM private key of tls_cert_file.")
    tls_client_ca_file: Path | None = Field(
        None,
        description="PEM CA bundle; set: mutual TLS, clients must present a certificate it signed.",
    )
    cors_origins: CommaList = Field(
        default_factory=list,
        description="Browser origins allowed cross-origin (comma-separated); empty: CORS off.",
    )
    trusted_hosts: CommaList = Field(
        default_factory=list,
        description="Host header values accepted (comma-separated, '*.example.com' allowed); "
        "empty: 127.0.0.1, localhost and ::1 when bound to loopback, any otherwise. Set it "
        "when browsers can reach the service by name (stops DNS rebinding).",
    )

    @field_validator("cors_origins", "trusted_hosts", mode="before")
    @classmethod
    def _comma_list(cls, v: object) -> object:
        return _split_list(v)

    @model_validator(mode="after")
    def _tls_pair(self) -> ServiceSettings:
        if (self.tls_cert_file is None) != (self.tls_key_file is None):
            raise ValueError("set both tls_cert_file and tls_key_file, or neither")
        if self.tls_client_ca_file is not None and self.tls_cert_file is None:
            raise ValueError("tls_client_ca_file (mutual TLS) needs tls_cert_file and tls_key_file")
        return self

    @property
    def body_limit(self) -> int:
        """The HTTP body cap: max_body_bytes, or a max_message_bytes payload in base64 JSON."""
        if self.max_body_bytes is not None:
            return self.max_body_bytes
        return self.max_message_bytes * 4 // 3 + 1024 * 1024

    @property
    def tls(self) -> bool:
        """True when both fronts serve TLS."""
        return self.tls_cert_file is not None

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
