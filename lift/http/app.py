"""The FastAPI bootstrap every service uses: errors, metrics, health, docs.

:func:`service_app` builds the app with the one error model and its handlers
(:mod:`lift.http.errors`), request metrics, ``/healthz``, ``/readyz``, ``/metrics``,
and ``/docs`` + ``/redoc`` rendered from assets the service serves itself
(:mod:`lift.http.docs`). A service then adds only its own routes.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Callable
from typing import Literal, TypeVar

from fastapi import FastAPI, Request, Response
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest
from pydantic import BaseModel, ConfigDict
from starlette.datastructures import MutableHeaders
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from lift import __version__, metrics
from lift.errors import Cancelled, LiftError, NotReady
from lift.http.docs import install_docs, install_openapi, register_schema
from lift.http.errors import ErrorResponse, error_responses, install_error_handlers
from lift.serving import Deadline, WorkLimiter

T = TypeVar("T")


async def run_until_disconnect(
    request: Request, limiter: WorkLimiter, fn: Callable[[Deadline], T]
) -> T:
    """Run ``fn`` through ``limiter``; stop it when the HTTP client goes away.

    Long work (a generation) must not keep running for a caller who has left:
    the deadline is cancelled and the engine stops at its next check.
    """
    work = asyncio.ensure_future(limiter.run(fn, Deadline()))
    try:
        while True:
            done, _ = await asyncio.wait({work}, timeout=0.25)
            if done:
                return work.result()
            if await request.is_disconnected():
                raise Cancelled("the client disconnected")
    finally:
        if not work.done():
            work.cancel()
            with contextlib.suppress(asyncio.CancelledError, LiftError):
                await work


class RequestMetrics:
    """ASGI middleware: request count, latency and in-flight gauge; a Server-Timing header.

    Plain ASGI rather than ``@app.middleware("http")``: Starlette's BaseHTTPMiddleware
    hides client disconnects from the endpoint, and long work must see them to stop.
    """

    def __init__(self, app: ASGIApp, service: str) -> None:
        self.app = app
        self.service = service

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        start = time.perf_counter()
        status = 500
        metrics.IN_FLIGHT.labels(self.service, "http").inc()

        async def send_with_timing(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
                # Timing travels in a header, not the body, so identical requests get
                # byte-identical bodies.
                MutableHeaders(scope=message).append(
                    "Server-Timing", f"app;dur={(time.perf_counter() - start) * 1000:.1f}"
                )
            await send(message)

        try:
            await self.app(scope, receive, send_with_timing)
        finally:
            # The route template, not the raw path, keeps the label set bounded.
            path = getattr(scope.get("route"), "path", "unmatched")
            method = f"{scope['method']} {path}"
            metrics.IN_FLIGHT.labels(self.service, "http").dec()
            metrics.REQUESTS.labels(self.service, "http", method, str(status)).inc()
            metrics.LATENCY.labels(self.service, "http", method).observe(
                time.perf_counter() - start
            )


class Health(BaseModel):
    """GET /healthz: the process answers."""

    model_config = ConfigDict(extra="forbid")

    status: Literal["ok"] = "ok"


class Readiness(BaseModel):
    """GET /readyz when the service can take work."""

    model_config = ConfigDict(extra="forbid")

    status: Literal["ready"] = "ready"


def service_app(
    service: str, title: str, description: str, is_ready: Callable[[], bool]
) -> FastAPI:
    """A FastAPI app with everything the services share; add the service's routes to it.

    ``service`` labels the metrics; ``is_ready`` answers ``/readyz``.
    """
    app = FastAPI(
        title=title,
        version=__version__,
        description=description
        + '\n\nErrors: every error reply is `{"error": {"code", "message"}}`; 400 invalid '
        "input (never 422), 404 not found, 409 conflict, 413 too large, 415 unsupported "
        "media type, 429 overloaded, 503 not ready, 504 deadline exceeded.",
        docs_url=None,
        redoc_url=None,
    )
    install_error_handlers(app)
    install_openapi(app)
    install_docs(app)
    register_schema(app, ErrorResponse)  # error_responses() refers to it by name
    app.add_middleware(RequestMetrics, service=service)

    @app.get("/healthz", tags=["health"], summary="Liveness: the process answers.")
    async def healthz() -> Health:
        return Health()

    @app.get(
        "/readyz",
        tags=["health"],
        summary="Readiness: the service can take requests (its model loaded, its store open).",
        responses=error_responses(503),
    )
    async def readyz() -> Readiness:
        if not is_ready():
            raise NotReady(
                f"the {service} is still starting (loading its model or opening its store)"
            )
        return Readiness()

    @app.get("/metrics", tags=["health"], summary="Prometheus metrics.", include_in_schema=False)
    async def prometheus_metrics() -> Response:
        return Response(generate_latest(), media_type=CONTENT_TYPE_LATEST)

    return app
