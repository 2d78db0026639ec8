"""The one client base under the critic, generator and trainer clients.

What every client shares lives here: the error class (the gRPC status of a refusal),
the channel (target, message-size options, TLS or plaintext), the default deadline of
a call, the credentials hook, and closing as a context manager, blocking and asyncio.

Credentials: a :class:`Credentials` carries TLS channel credentials and/or metadata
sent with every call. Without one, a client reads ``LIFT_TOKEN`` from the environment
and, when it is set, sends ``authorization: Bearer <token>`` (over HTTP too). The
services do not check tokens yet; the hook is where authentication plugs in.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, ClassVar, Self

import grpc
from pydantic import Field, SecretStr
from pydantic_settings import BaseSettings, SettingsConfigDict


class ClientSettings(BaseSettings):
    """What every client reads from the environment (prefix ``LIFT_``)."""

    model_config = SettingsConfigDict(env_prefix="LIFT_", extra="ignore")

    token: SecretStr | None = Field(
        None, description="Bearer token sent with every call (LIFT_TOKEN); unset: none."
    )


class ClientError(Exception):
    """A service refused a call, or could not be reached.

    ``code`` is the gRPC status name ("INVALID_ARGUMENT", "NOT_FOUND", ...; over HTTP
    the error body's code, or the HTTP status when the body has none) and ``message``
    the service's sentence saying what to fix.
    """

    def __init__(self, code: str, message: str) -> None:
        super().__init__(f"{code}: {message}")
        self.code = code
        self.message = message

    @property
    def status(self) -> grpc.StatusCode | None:
        """The gRPC status code, or None when ``code`` is not one (an HTTP status)."""
        return grpc.StatusCode.__members__.get(self.code)

    @classmethod
    def from_rpc(cls, exc: grpc.RpcError) -> Self:
        """The error for a failed gRPC call."""
        code = exc.code()  # type: ignore[attr-defined]
        return cls(code.name if code is not None else "UNKNOWN", exc.details() or "")  # type: ignore[attr-defined]


@dataclass(frozen=True)
class Credentials:
    """How a client authenticates: TLS for the channel and/or metadata for every call."""

    channel: grpc.ChannelCredentials | None = None
    """TLS channel credentials (``grpc.ssl_channel_credentials(...)``); None: plaintext."""
    metadata: tuple[tuple[str, str], ...] = ()
    """Sent with every call, e.g. ``(("authorization", "Bearer ..."),)``; HTTP headers too."""

    @classmethod
    def from_env(cls) -> Credentials:
        """A bearer token from ``LIFT_TOKEN`` if set; otherwise none (plaintext, no metadata)."""
        secret = ClientSettings().token
        token = secret.get_secret_value().strip() if secret is not None else ""
        return cls(metadata=(("authorization", f"Bearer {token}"),) if token else ())

    def http_headers(self) -> dict[str, str]:
        """The metadata as HTTP headers."""
        return dict(self.metadata)


def grpc_target(server: str) -> str:
    """ "host:port" from "host:port" or "grpc://host:port"."""
    return server.removeprefix("grpc://")


def channel_options(max_message_bytes: int) -> list[tuple[str, int]]:
    """Options of every client channel: the largest message either way."""
    return [
        ("grpc.max_receive_message_length", max_message_bytes),
        ("grpc.max_send_message_length", max_message_bytes),
    ]


class ClientBase:
    """What every client keeps: its error class, deadline and credentials (gRPC or HTTP)."""

    error: ClassVar[type[ClientError]] = ClientError
    """The error class this client raises (CriticError, GeneratorError, ...)."""
    max_message_bytes: ClassVar[int] = 64 * 1024 * 1024

    def __init__(self, timeout_s: float | None, credentials: Credentials | None) -> None:
        self.timeout_s = timeout_s
        self.credentials = credentials if credentials is not None else Credentials.from_env()

    def _call_kwargs(self, timeout_s: float | None) -> dict[str, Any]:
        """Deadline and metadata of one call (``timeout_s`` overrides the client's)."""
        kwargs: dict[str, Any] = {"timeout": timeout_s if timeout_s is not None else self.timeout_s}
        if self.credentials.metadata:
            kwargs["metadata"] = self.credentials.metadata
        return kwargs


class GrpcClient(ClientBase):
    """A blocking gRPC client: one channel, one stub; use it as a context manager."""

    def __init__(
        self,
        server: str,
        stub_class: Any,
        timeout_s: float | None,
        credentials: Credentials | None = None,
    ) -> None:
        super().__init__(timeout_s, credentials)
        target, options = grpc_target(server), channel_options(self.max_message_bytes)
        if self.credentials.channel is not None:
            self._channel = grpc.secure_channel(target, self.credentials.channel, options=options)
        else:
            self._channel = grpc.insecure_channel(target, options=options)
        self._stub = stub_class(self._channel)

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        """Close the connection."""
        self._channel.close()

    def _unary(self, method: str, request: Any, timeout_s: float | None = None) -> Any:
        """Call a unary RPC with the client's deadline and credentials; refusals raise."""
        try:
            return getattr(self._stub, method)(request, **self._call_kwargs(timeout_s))
        except grpc.RpcError as exc:
            raise self.error.from_rpc(exc) from None

    def _stream(self, method: str, request: Any, timeout_s: float | None = None) -> Any:
        """Start a server-streaming RPC; iterate it inside ``except grpc.RpcError``."""
        return getattr(self._stub, method)(request, **self._call_kwargs(timeout_s))


class AsyncGrpcClient(ClientBase):
    """An asyncio gRPC client: ``async with Client("host:port") as c: ...``."""

    def __init__(
        self,
        server: str,
        stub_class: Any,
        timeout_s: float | None,
        credentials: Credentials | None = None,
    ) -> None:
        super().__init__(timeout_s, credentials)
        target, options = grpc_target(server), channel_options(self.max_message_bytes)
        if self.credentials.channel is not None:
            self._channel = grpc.aio.secure_channel(
                target, self.credentials.channel, options=options
            )
        else:
            self._channel = grpc.aio.insecure_channel(target, options=options)
        self._stub = stub_class(self._channel)

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    async def close(self) -> None:
        """Close the channel."""
        await self._channel.close(None)

    async def _unary(self, method: str, request: Any, timeout_s: float | None = None) -> Any:
        """Await a unary (or client-streaming) RPC; refusals raise the client's error."""
        try:
            return await getattr(self._stub, method)(request, **self._call_kwargs(timeout_s))
        except grpc.aio.AioRpcError as exc:
            raise self.error.from_rpc(exc) from None
