"""FastAPI pieces shared by all services: error mapping, health, readiness, metrics.

Errors reach callers as ``{"error": {"code": "INVALID_ARGUMENT", "message": "..."}}``
with the HTTP status of the error class; never a stack trace.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Callable
from typing import TypeVar

from fastapi import FastAPI, Request, Response
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest
from pydantic import BaseModel, ValidationError
from starlette.datastructures import FormData, MutableHeaders, UploadFile
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from lift import metrics
from lift.errors import Cancelled, InvalidInput, LiftError, PayloadTooLarge
from lift.serving import Deadline, WorkLimiter

log = logging.getLogger(__name__)
M = TypeVar("M", bound=BaseModel)
T = TypeVar("T")


def error_body(code: str, message: str) -> dict[str, dict[str, str]]:
    """The JSON body of an error response."""
    return {"error": {"code": code, "message": message}}


def parse_json(model: type[M], raw: bytes) -> M:
    """Validate a JSON body; a bad one becomes InvalidInput naming the field."""
    try:
        return model.model_validate_json(raw)
    except ValidationError as exc:
        parts = []
        for err in exc.errors()[:5]:
            where = ".".join(str(p) for p in err["loc"]) or "body"
            parts.append(f"{where}: {err['msg']}")
        raise InvalidInput("invalid JSON body: " + "; ".join(parts)) from None


async def read_json_body(request: Request, payload_limit: int, what: str) -> bytes:
    """The raw body of a JSON request that carries up to ``payload_limit`` bytes in base64.

    A body announced larger than the payload could need (base64 is 4/3 of the bytes,
    plus room for the rest of the JSON) is refused before it is read.
    """
    declared = request.headers.get("content-length")
    if declared and declared.isdigit() and int(declared) > payload_limit * 4 // 3 + 1024 * 1024:
        raise PayloadTooLarge(
            f"the request body is {declared} bytes; the {what} limit is {payload_limit}"
        )
    return await request.body()


async def read_form(request: Request, max_files: int, max_part_size: int) -> FormData:
    """A multipart form; a broken one becomes InvalidInput."""
    try:
        return await request.form(max_files=max_files, max_fields=4, max_part_size=max_part_size)
    except Exception as exc:  # starlette raises several types for broken multipart
        raise InvalidInput(f"could not parse the multipart body: {exc}") from None


async def read_upload(upload: UploadFile, limit: int, what: str) -> bytes:
    """An uploaded file's bytes, refused past ``limit`` without reading further."""
    data = await upload.read(limit + 1)
    if len(data) > limit:
        raise PayloadTooLarge(f"the {what} is larger than the {limit}-byte limit")
    return data


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


def _validation_message(exc: RequestValidationError) -> str:
    parts = []
    for err in exc.errors()[:5]:
        where = ".".join(str(p) for p in err.get("loc", ()) if p != "body") or "body"
        parts.append(f"{where}: {err.get('msg', 'invalid')}")
    return "invalid request: " + "; ".join(parts)


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


def install_common(app: FastAPI, service: str, is_ready: Callable[[], bool]) -> None:
    """Add error handlers, request metrics and /healthz, /readyz, /metrics to ``app``."""

    @app.exception_handler(LiftError)
    async def _lift_error(request: Request, exc: LiftError) -> JSONResponse:
        return JSONResponse(error_body(exc.code_name, exc.message), status_code=exc.http_status)

    @app.exception_handler(RequestValidationError)
    async def _invalid(request: Request, exc: RequestValidationError) -> JSONResponse:
        return JSONResponse(
            error_body("INVALID_ARGUMENT", _validation_message(exc)), status_code=422
        )

    @app.exception_handler(StarletteHTTPException)
    async def _http(request: Request, exc: StarletteHTTPException) -> JSONResponse:
        code = {404: "NOT_FOUND", 405: "UNIMPLEMENTED"}.get(exc.status_code, "INVALID_ARGUMENT")
        return JSONResponse(error_body(code, str(exc.detail)), status_code=exc.status_code)

    @app.exception_handler(Exception)
    async def _internal(request: Request, exc: Exception) -> JSONResponse:
        log.exception("unhandled error on %s %s", request.method, request.url.path)
        return JSONResponse(error_body("INTERNAL", "internal error; see the server log"), 500)

    app.add_middleware(RequestMetrics, service=service)

    @app.get("/healthz", tags=["health"], summary="Liveness: the process answers.")
    async def healthz() -> dict[str, str]:
        return {"status": "ok"}

    @app.get("/readyz", tags=["health"], summary="Readiness: the model is loaded.")
    async def readyz() -> JSONResponse:
        if is_ready():
            return JSONResponse({"status": "ready"})
        return JSONResponse(error_body("UNAVAILABLE", "the model is still loading"), 503)

    @app.get("/metrics", tags=["health"], summary="Prometheus metrics.", include_in_schema=False)
    async def prometheus_metrics() -> Response:
        return Response(generate_latest(), media_type=CONTENT_TYPE_LATEST)
