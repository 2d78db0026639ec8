"""gRPC server bootstrap shared by all services: health, reflection, one interceptor.

The interceptor is where engine errors become gRPC statuses (LiftError ->
its code and message; anything else -> INTERNAL with no stack trace to the
caller) and where request metrics are recorded, for every service alike.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import AsyncIterator, Callable, Sequence
from typing import Any

import grpc
from grpc_health.v1 import health, health_pb2, health_pb2_grpc
from grpc_reflection.v1alpha import reflection

from lift import metrics
from lift.auth import Authenticator, Decision, bearer_token, check, required_scope
from lift.errors import InvalidInput, LiftError

HealthServicer = Any
"""grpc_health's ``health.aio.HealthServicer`` (its module is loaded lazily, untyped)."""

log = logging.getLogger(__name__)


class _Undecodable:
    """What a request whose bytes do not parse becomes: the servicer never sees it."""

    def __init__(self, message: str) -> None:
        self.message = message


def _tolerant(deserialize: Callable[[bytes], Any] | None) -> Callable[[bytes], Any] | None:
    """``deserialize`` that returns an :class:`_Undecodable` instead of raising.

    grpc's aio server calls the deserializer before any interceptor code runs and
    answers UNKNOWN when it raises; handing the failure to the wrapped method
    instead lets it answer INVALID_ARGUMENT with a sentence, in one place for
    every service.
    """
    if deserialize is None:
        return None

    def tolerant(raw: bytes) -> Any:
        try:
            return deserialize(raw)
        except Exception as exc:  # DecodeError (upb), or whatever a custom one raises
            if "UTF-8" in str(exc):
                return _Undecodable(
                    "the request has a string field that is not valid UTF-8: "
                    "send text fields as UTF-8"
                )
            return _Undecodable(
                "the request is not a valid protobuf message for this method: send the "
                "method's request message, serialized"
            )

    return tolerant


def _parsed(request: Any) -> Any:
    """``request``, or InvalidInput if its bytes did not parse."""
    if isinstance(request, _Undecodable):
        raise InvalidInput(request.message)
    return request


async def _parsed_stream(requests: AsyncIterator[Any]) -> AsyncIterator[Any]:
    """A client stream whose messages are checked as they arrive (see :func:`_parsed`)."""
    async for request in requests:
        yield _parsed(request)


class ServiceInterceptor(grpc.aio.ServerInterceptor):
    """Maps errors to statuses and records request metrics for every RPC.

    Requests whose bytes do not parse (malformed protobuf, invalid UTF-8 in a
    string field) answer INVALID_ARGUMENT with a sentence instead of UNKNOWN.
    """

    def __init__(self, service: str) -> None:
        self.service = service

    async def intercept_service(self, continuation: Any, details: Any) -> Any:
        handler = await continuation(details)
        if handler is None:
            return None
        method = details.method.rsplit("/", 1)[-1]
        if handler.unary_unary:
            return grpc.unary_unary_rpc_method_handler(
                self._wrap(handler.unary_unary, method),
                request_deserializer=_tolerant(handler.request_deserializer),
                response_serializer=handler.response_serializer,
            )
        if handler.stream_unary:
            return grpc.stream_unary_rpc_method_handler(
                self._wrap(handler.stream_unary, method, client_stream=True),
                request_deserializer=_tolerant(handler.request_deserializer),
                response_serializer=handler.response_serializer,
            )
        if handler.unary_stream and details.method.startswith("/lift."):
            return grpc.unary_stream_rpc_method_handler(
                self._wrap_stream(handler.unary_stream, method),
                request_deserializer=_tolerant(handler.request_deserializer),
                response_serializer=handler.response_serializer,
            )
        return handler  # grpc's own streams (health watch, reflection) pass through

    @contextlib.asynccontextmanager
    async def _handled(self, method: str, context: grpc.aio.ServicerContext) -> AsyncIterator[None]:
        """Map errors to statuses and record metrics around one call."""
        start = time.perf_counter()
        code = "OK"
        metrics.IN_FLIGHT.labels(self.service, "grpc").inc()
        try:
            yield
        except LiftError as exc:
            code = exc.code_name
            await context.abort(exc.grpc_code, exc.message)
        except grpc.aio.AbortError:
            status = context.code()
            code = status.name if isinstance(status, grpc.StatusCode) else "UNKNOWN"
            raise
        except (asyncio.CancelledError, GeneratorExit):  # the caller left
            code = "CANCELLED"
            raise
        except Exception:
            code = "INTERNAL"
            log.exception("unhandled error in %s/%s", self.service, method)
            await context.abort(grpc.StatusCode.INTERNAL, "internal error; see the server log")
        finally:
            metrics.IN_FLIGHT.labels(self.service, "grpc").dec()
            metrics.REQUESTS.labels(self.service, "grpc", method, code).inc()
            metrics.LATENCY.labels(self.service, "grpc", method).observe(
                time.perf_counter() - start
            )

    def _wrap(
        self, behavior: Callable[..., Any], method: str, client_stream: bool = False
    ) -> Callable[..., Any]:
        async def wrapped(request: Any, context: grpc.aio.ServicerContext) -> Any:
            async with self._handled(method, context):
                checked = _parsed_stream(request) if client_stream else _parsed(request)
                return await behavior(checked, context)

        return wrapped

    def _wrap_stream(self, behavior: Callable[..., Any], method: str) -> Callable[..., Any]:
        async def wrapped(request: Any, context: grpc.aio.ServicerContext) -> AsyncIterator[Any]:
            async with self._handled(method, context):
                async for response in behavior(_parsed(request), context):
                    yield response

        return wrapped


# Methods that never need a token: health (probes) and reflection (only the schema, and
# served only when the settings enable it).
OPEN_METHOD_PREFIXES = ("/grpc.health.v1.Health/", "/grpc.reflection.")


def _metadata_value(details: Any, key: str) -> str | None:
    for item in details.invocation_metadata or ():
        k, v = item
        if k.lower() == key:
            return v.decode("latin-1") if isinstance(v, bytes) else str(v)
    return None


def _refusal(handler: Any, code: grpc.StatusCode, message: str) -> Any:
    """A handler of the same kind as ``handler`` that only refuses the call.

    The request is not deserialised (no deserializer): an unauthenticated caller's
    bytes are never parsed.
    """

    async def unary(request: Any, context: grpc.aio.ServicerContext) -> Any:
        await context.abort(code, message)

    async def streaming(request: Any, context: grpc.aio.ServicerContext) -> AsyncIterator[Any]:
        await context.abort(code, message)
        yield  # pragma: no cover - abort raises; this makes the function a generator

    kw = {"response_serializer": handler.response_serializer}
    if handler.unary_unary:
        return grpc.unary_unary_rpc_method_handler(unary, **kw)
    if handler.stream_unary:
        return grpc.stream_unary_rpc_method_handler(unary, **kw)
    if handler.unary_stream:
        return grpc.unary_stream_rpc_method_handler(streaming, **kw)
    return grpc.stream_stream_rpc_method_handler(streaming, **kw)


class AuthInterceptor(grpc.aio.ServerInterceptor):
    """Bearer tokens and scopes for every RPC (the table is :data:`lift.auth.ACCESS`).

    No or an unknown token: UNAUTHENTICATED; a token without the method's scope:
    PERMISSION_DENIED. Health and reflection stay open.
    """

    def __init__(self, service: str, auth: Authenticator) -> None:
        self.service = service
        self.auth = auth

    async def intercept_service(self, continuation: Any, details: Any) -> Any:
        handler = await continuation(details)
        if handler is None or details.method.startswith(OPEN_METHOD_PREFIXES):
            return handler
        token = bearer_token(_metadata_value(details, "authorization"))
        decision, message = check(self.auth, token, required_scope(self.service, details.method))
        if decision is Decision.ALLOW:
            return handler
        code = (
            grpc.StatusCode.UNAUTHENTICATED
            if decision is Decision.UNAUTHENTICATED
            else grpc.StatusCode.PERMISSION_DENIED
        )
        return _refusal(handler, code, message)


def limit_options(max_message_bytes: int, max_concurrent_streams: int) -> list[tuple[str, int]]:
    """Channel arguments that bound what one client can hold on the gRPC front.

    Messages past ``max_message_bytes`` are refused by grpc before they reach a servicer
    (RESOURCE_EXHAUSTED); a connection may carry ``max_concurrent_streams`` calls; pings
    more often than every 10 s are answered with GOAWAY (too_many_pings) after two
    strikes; idle connections are closed after 10 minutes; metadata is capped at 16 KiB.
    """
    return [
        ("grpc.max_receive_message_length", max_message_bytes),
        ("grpc.max_send_message_length", max_message_bytes),
        ("grpc.max_concurrent_streams", max_concurrent_streams),
        ("grpc.max_metadata_size", 16 * 1024),
        ("grpc.http2.min_ping_interval_without_data_ms", 10_000),
        ("grpc.http2.max_ping_strikes", 2),
        ("grpc.keepalive_time_ms", 120_000),
        ("grpc.keepalive_timeout_ms", 20_000),
        ("grpc.max_connection_idle_ms", 600_000),
        # A second server on a port in use must fail, not silently share it
        # (grpcio enables SO_REUSEPORT by default).
        ("grpc.so_reuseport", 0),
    ]


def build_server(
    service: str,
    registrations: Sequence[tuple[Callable[[Any, grpc.aio.Server], None], Any, str]],
    max_message_bytes: int,
    auth: Authenticator | None = None,
    reflection_on: bool = True,
    max_concurrent_rpcs: int | None = None,
    max_concurrent_streams: int = 64,
) -> tuple[grpc.aio.Server, HealthServicer]:
    """A grpc.aio server with the given servicers, health and (``reflection_on``) reflection.

    ``registrations`` are ``(add_XServicer_to_server, servicer, full_service_name)``.
    Health starts NOT_SERVING; call :func:`set_serving` once the model is loaded.
    With ``auth``, every call but health and reflection needs a token with its scope.
    """
    interceptors: list[grpc.aio.ServerInterceptor] = [ServiceInterceptor(service)]
    if auth is not None:  # inside ServiceInterceptor, so refusals are counted in the metrics
        interceptors.append(AuthInterceptor(service, auth))
    server = grpc.aio.server(
        interceptors=interceptors,
        options=limit_options(max_message_bytes, max_concurrent_streams),
        # Calls past this many get RESOURCE_EXHAUSTED at once instead of piling up.
        maximum_concurrent_rpcs=max_concurrent_rpcs,
    )
    health_servicer = health.aio.HealthServicer()  # type: ignore[attr-defined]
    health_pb2_grpc.add_HealthServicer_to_server(health_servicer, server)
    names = [name for _, _, name in registrations]
    for add, servicer, _ in registrations:
        add(servicer, server)
    if reflection_on:
        reflection.enable_server_reflection(
            [
                *names,
                health_pb2.DESCRIPTOR.services_by_name["Health"].full_name,
                reflection.SERVICE_NAME,
            ],
            server,
        )
    return server, health_servicer


async def set_serving(health_servicer: HealthServicer, names: Sequence[str], up: bool) -> None:
    """Report every named service (and the server as a whole, "") as serving or not."""
    status = (
        health_pb2.HealthCheckResponse.SERVING if up else health_pb2.HealthCheckResponse.NOT_SERVING
    )
    for name in ["", *names]:
        await health_servicer.set(name, status)
