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
from lift.errors import LiftError

HealthServicer = Any
"""grpc_health's ``health.aio.HealthServicer`` (its module is loaded lazily, untyped)."""

log = logging.getLogger(__name__)


class ServiceInterceptor(grpc.aio.ServerInterceptor):
    """Maps errors to statuses and records request metrics for every RPC."""

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
                request_deserializer=handler.request_deserializer,
                response_serializer=handler.response_serializer,
            )
        if handler.stream_unary:
            return grpc.stream_unary_rpc_method_handler(
                self._wrap(handler.stream_unary, method),
                request_deserializer=handler.request_deserializer,
                response_serializer=handler.response_serializer,
            )
        if handler.unary_stream and details.method.startswith("/lift."):
            return grpc.unary_stream_rpc_method_handler(
                self._wrap_stream(handler.unary_stream, method),
                request_deserializer=handler.request_deserializer,
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

    def _wrap(self, behavior: Callable[..., Any], method: str) -> Callable[..., Any]:
        async def wrapped(request: Any, context: grpc.aio.ServicerContext) -> Any:
            async with self._handled(method, context):
                return await behavior(request, context)

        return wrapped

    def _wrap_stream(self, behavior: Callable[..., Any], method: str) -> Callable[..., Any]:
        async def wrapped(request: Any, context: grpc.aio.ServicerContext) -> AsyncIterator[Any]:
            async with self._handled(method, context):
                async for response in behavior(request, context):
                    yield response

        return wrapped


def build_server(
    service: str,
    registrations: Sequence[tuple[Callable[[Any, grpc.aio.Server], None], Any, str]],
    max_message_bytes: int,
) -> tuple[grpc.aio.Server, HealthServicer]:
    """A grpc.aio server with the given servicers, health and reflection.

    ``registrations`` are ``(add_XServicer_to_server, servicer, full_service_name)``.
    Health starts NOT_SERVING; call :func:`set_serving` once the model is loaded.
    """
    server = grpc.aio.server(
        interceptors=[ServiceInterceptor(service)],
        options=[
            ("grpc.max_receive_message_length", max_message_bytes),
            ("grpc.max_send_message_length", max_message_bytes),
            # A second server on a port in use must fail, not silently share it
            # (grpcio enables SO_REUSEPORT by default).
            ("grpc.so_reuseport", 0),
        ],
    )
    health_servicer = health.aio.HealthServicer()  # type: ignore[attr-defined]
    health_pb2_grpc.add_HealthServicer_to_server(health_servicer, server)
    names = [name for _, _, name in registrations]
    for add, servicer, _ in registrations:
        add(servicer, server)
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
