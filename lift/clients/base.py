"""The one client base under the critic, generator and trainer clients.

What every client shares lives here: the error class (the gRPC status of a refusal),
the channel (target, message-size options, TLS or plaintext), the default deadline of
a call, the credentials hook, and closing as a context manager, blocking and asyncio.

Credentials: a :class:`Credentials` carries TLS (verify the server against a CA
file or the system roots; optionally present a client certificate) and metadata sent
with every call. Without one, a client reads the environment (:class:`ClientSettings`:
``LIFT_TOKEN``, ``LIFT_TLS``, ``LIFT_CA_FILE``, ``LIFT_CLIENT_CERT``,
``LIFT_CLIENT_KEY``); a token is sent as ``authorization: Bearer <token>`` (over HTTP
too). Every client also takes ``token=`` (it replaces the environment's). TLS always
verifies the server: there is no switch that skips it.
"""

from __future__ import annotations

import ssl
from dataclasses import dataclass, replace
from pathlib import Path
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
    tls: bool = Field(False, description="Connect with TLS (LIFT_TLS); implied by the files below.")
    ca_file: Path | None = Field(
        None, description="PEM CA bundle the server must chain to (LIFT_CA_FILE); unset: system."
    )
    client_cert: Path | None = Field(
        None, description="PEM client certificate for mutual TLS (LIFT_CLIENT_CERT)."
    )
    client_key: Path | None = Field(None, description="PEM key of the client certificate.")


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


def _bearer(token: str | None) -> tuple[tuple[str, str], ...]:
    token = (token or "").strip()
    return (("authorization", f"Bearer {token}"),) if token else ()


@dataclass(frozen=True)
class Credentials:
    """How a client authenticates: TLS for the channel and/or metadata for every call.

    Build one with :meth:`create` (token and TLS files) or :meth:`from_env`.
    """

    channel: grpc.ChannelCredentials | None = None
    """TLS channel credentials (``grpc.ssl_channel_credentials(...)``); None: plaintext."""
    metadata: tuple[tuple[str, str], ...] = ()
    """Sent with every call, e.g. ``(("authorization", "Bearer ..."),)``; HTTP headers too."""
    ca_file: Path | None = None
    """The CA bundle HTTPS verifies the server against (None: the system's)."""
    client_cert: tuple[Path, Path] | None = None
    """Certificate and key files presented over HTTPS (mutual TLS)."""
    tls_name: str | None = None
    """The name the server's certificate must carry when it differs from the address dialled
    (gRPC over TLS to an IP that a headless Service name resolved to); None: the address."""

    @classmethod
    def create(
        cls,
        token: str | None = None,
        tls: bool = False,
        ca_file: Path | str | None = None,
        client_cert: Path | str | None = None,
        client_key: Path | str | None = None,
    ) -> Credentials:
        """A bearer ``token`` and, when ``tls`` or any file is given, verified TLS.

        ``ca_file`` is the CA the server's certificate must chain to (default: the
        system roots); ``client_cert`` + ``client_key`` are presented for mutual TLS.
        """
        if (client_cert is None) != (client_key is None):
            raise ValueError("give both client_cert and client_key, or neither")
        ca = Path(ca_file) if ca_file is not None else None
        pair = (Path(client_cert), Path(client_key)) if client_cert and client_key else None
        channel = None
        if tls or ca is not None or pair is not None:
            channel = grpc.ssl_channel_credentials(
                root_certificates=ca.read_bytes() if ca is not None else None,
                private_key=pair[1].read_bytes() if pair else None,
                certificate_chain=pair[0].read_bytes() if pair else None,
            )
        return cls(channel=channel, metadata=_bearer(token), ca_file=ca, client_cert=pair)

    @classmethod
    def from_env(cls) -> Credentials:
        """Token and TLS from the environment (:class:`ClientSettings`); unset: plaintext."""
        env = ClientSettings()
        return cls.create(
            token=env.token.get_secret_value() if env.token is not None else None,
            tls=env.tls,
            ca_file=env.ca_file,
            client_cert=env.client_cert,
            client_key=env.client_key,
        )

    def with_token(self, token: str | None) -> Credentials:
        """The same TLS with ``token`` as the bearer token (None: no token)."""
        kept = tuple((k, v) for k, v in self.metadata if k != "authorization")
        return replace(self, metadata=kept + _bearer(token))

    def with_tls(self) -> Credentials:
        """These credentials, with TLS against the system roots when they had none."""
        if self.channel is not None:
            return self
        return replace(self, channel=grpc.ssl_channel_credentials())

    def with_tls_name(self, name: str | None) -> Credentials:
        """These credentials, checking the server's certificate against ``name`` over TLS."""
        return replace(self, tls_name=name)

    def http_headers(self) -> dict[str, str]:
        """The metadata as HTTP headers."""
        return dict(self.metadata)

    def http_verify(self) -> ssl.SSLContext | bool:
        """What httpx verifies HTTPS servers with: our CA file (and client cert), or the system."""
        if self.ca_file is None and self.client_cert is None:
            return True
        ctx = ssl.create_default_context(cafile=str(self.ca_file) if self.ca_file else None)
        if self.client_cert is not None:
            ctx.load_cert_chain(str(self.client_cert[0]), str(self.client_cert[1]))
        return ctx


def grpc_target(server: str) -> str:
    """ "host:port" from "host:port", "grpc://host:port" or "grpcs://host:port"."""
    return server.removeprefix("grpc://").removeprefix("grpcs://")


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

    def __init__(
        self,
        timeout_s: float | None,
        credentials: Credentials | None,
        token: str | None = None,
        server: str = "",
    ) -> None:
        self.timeout_s = timeout_s
        creds = credentials if credentials is not None else Credentials.from_env()
        if token is not None:  # an explicit token wins over the environment's
            creds = creds.with_token(token)
        if server.startswith("grpcs://"):  # the scheme asks for TLS
            creds = creds.with_tls()
        self.credentials = creds

    def _call_kwargs(self, timeout_s: float | None) -> dict[str, Any]:
        """Deadline and metadata of one call (``timeout_s`` overrides the client's)."""
        kwargs: dict[str, Any] = {"timeout": timeout_s if timeout_s is not None else self.timeout_s}
        if self.credentials.metadata:
            kwargs["metadata"] = self.credentials.metadata
        return kwargs

    def _open_channel(self, api: Any, server: str) -> Any:
        """A channel from ``api`` (``grpc`` or ``grpc.aio``: the same two calls), TLS when set."""
        target = grpc_target(server)
        options: list[tuple[str, int | str]] = [*channel_options(self.max_message_bytes)]
        if self.credentials.channel is not None:
            name = self.credentials.tls_name
            if name is not None:
                options += [
                    ("grpc.ssl_target_name_override", name),
                    ("grpc.default_authority", name),
                ]
            return api.secure_channel(target, self.credentials.channel, options=options)
        return api.insecure_channel(target, options=options)


class GrpcClient(ClientBase):
    """A blocking gRPC client: one channel, one stub; use it as a context manager."""

    def __init__(
        self,
        server: str,
        stub_class: Any,
        timeout_s: float | None,
        credentials: Credentials | None = None,
        token: str | None = None,
    ) -> None:
        super().__init__(timeout_s, credentials, token, server)
        self._channel = self._open_channel(grpc, server)
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
        token: str | None = None,
    ) -> None:
        super().__init__(timeout_s, credentials, token, server)
        self._channel = self._open_channel(grpc.aio, server)
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
