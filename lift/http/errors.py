"""One error model for every HTTP error response, and one status per kind of failure.

Every error body is ``{"error": {"code": "INVALID_ARGUMENT", "message": "..."}}``: the
code is the gRPC status name the same failure gets on the gRPC front, the message a
sentence saying what to fix. The status follows the kind of failure, on every service:

====  ====================  ===========================================================
400   INVALID_ARGUMENT      malformed or invalid input: bad JSON, YAML or multipart, a
                            body, query or path field that fails validation (FastAPI's
                            own request validation included: never 422), an
                            undecodable video, a URI outside policy; a Host header
                            not on the trusted list
401   UNAUTHENTICATED       no bearer token, or an unknown one (with WWW-Authenticate)
403   PERMISSION_DENIED     the token lacks the scope the call needs; a cross-origin
                            write from a browser page whose origin is not allowed
404   NOT_FOUND             a referenced thing is missing: run id, file, adapter version,
                            unknown path
405   UNIMPLEMENTED         the path exists but not with this method
408   DEADLINE_EXCEEDED     the request body arrived too slowly (``body_timeout_s``)
409   FAILED_PRECONDITION   the request does not fit the resource's state
413   INVALID_ARGUMENT      the body (or a part of it) is over a configured size limit
415   INVALID_ARGUMENT      the Content-Type is not one the endpoint reads
429   RESOURCE_EXHAUSTED    overloaded: the queue is full; retry with backoff
431   INVALID_ARGUMENT      the request headers are over 64 KiB
499   CANCELLED             the caller went away (logged; nobody reads the reply)
500   INTERNAL              a bug; the trace is in the server log, never in the reply
503   UNAVAILABLE           not ready: the model is still loading
504   DEADLINE_EXCEEDED     the work ran past its deadline and was stopped
====  ====================  ===========================================================

The engines raise :mod:`lift.errors` classes, which carry both statuses; the handlers
here are the one place they become HTTP replies.
"""

from __future__ import annotations

import logging
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from pydantic import BaseModel, ConfigDict, Field
from starlette.exceptions import HTTPException as StarletteHTTPException

from lift.errors import (
    Conflict,
    DeadlineExceeded,
    InvalidInput,
    LiftError,
    NotFound,
    NotReady,
    Overloaded,
    PayloadTooLarge,
    PermissionDenied,
    Unauthenticated,
    UnsupportedMediaType,
)
from lift.http.docs import schema_examples

log = logging.getLogger(__name__)


class ErrorDetail(BaseModel):
    """What went wrong, for a program (``code``) and for a person (``message``)."""

    model_config = ConfigDict(extra="forbid")

    code: str = Field(
        ...,
        description="The gRPC status name of the failure (the gRPC front returns the same): "
        "INVALID_ARGUMENT, UNAUTHENTICATED, PERMISSION_DENIED, NOT_FOUND, FAILED_PRECONDITION, "
        "RESOURCE_EXHAUSTED, UNAVAILABLE, DEADLINE_EXCEEDED, UNIMPLEMENTED, CANCELLED or "
        "INTERNAL.",
        examples=["INVALID_ARGUMENT"],
    )
    message: str = Field(
        ...,
        description="A sentence saying what to fix; never a stack trace.",
        examples=["set exactly one of video_uri or video_b64"],
    )


class ErrorResponse(BaseModel):
    """The body of every error response."""

    model_config = ConfigDict(
        extra="forbid",
        json_schema_extra=schema_examples(
            {
                "error": {
                    "code": "INVALID_ARGUMENT",
                    "message": "set exactly one of video_uri or video_b64",
                }
            }
        ),
    )

    error: ErrorDetail


# The status each kind of failure gets, with the error class that produces it: the
# examples in the OpenAPI document take their code from the class, so they cannot drift.
_KINDS: dict[int, tuple[type[LiftError], str, str]] = {
    400: (
        InvalidInput,
        "Invalid input: malformed JSON or multipart, a field that fails validation, an "
        "undecodable video or a URI outside policy. The message says what to fix.",
        "invalid request: prompt: Field required",
    ),
    401: (
        Unauthenticated,
        "Unauthenticated: no bearer token, or one this service does not know.",
        "no bearer token was sent; send 'authorization: Bearer <token>' (clients: --token or "
        "LIFT_TOKEN)",
    ),
    403: (
        PermissionDenied,
        "Permission denied: the token lacks the scope this call needs.",
        "the token 'ci' lacks the 'runs' scope this call needs",
    ),
    404: (
        NotFound,
        "Not found: the referenced run, file or adapter does not exist.",
        "file:///videos/a.mp4 does not exist",
    ),
    409: (
        Conflict,
        "Conflict: the request does not fit the resource's state.",
        "run run-7 already succeeded; only unfinished runs cancel",
    ),
    413: (
        PayloadTooLarge,
        "Too large: the body or one of its parts is over the configured limit.",
        "the video is larger than the 67108864-byte limit",
    ),
    415: (
        UnsupportedMediaType,
        "Unsupported media type: send one of the Content-Types this endpoint declares.",
        "Content-Type text/plain is not accepted here: send application/json",
    ),
    429: (
        Overloaded,
        "Overloaded: the work queue is full; retry with backoff.",
        "the queue is full (8 waiting); retry with backoff",
    ),
    500: (
        LiftError,
        "Internal error: a bug; the trace is in the server log.",
        "internal error; see the server log",
    ),
    503: (
        NotReady,
        "Not ready: the service is still loading its model.",
        "the model is still loading",
    ),
    504: (
        DeadlineExceeded,
        "Deadline exceeded: the work ran past its deadline and was stopped.",
        "the deadline passed before the work finished",
    ),
}


def error_body(code: str, message: str) -> dict[str, dict[str, str]]:
    """The JSON body of an error response (an :class:`ErrorResponse`)."""
    return ErrorResponse(error=ErrorDetail(code=code, message=message)).model_dump()


def error_responses(
    *statuses: int, examples: dict[int, str] | None = None
) -> dict[int | str, dict[str, Any]]:
    """OpenAPI ``responses=`` for a route: each status with the error model and an example.

    ``examples`` replaces the generic example message of a status with the route's own.
    """
    out: dict[int | str, dict[str, Any]] = {}
    for status in statuses:
        cls, description, message = _KINDS[status]
        message = (examples or {}).get(status, message)
        # The schema is named here rather than through FastAPI's "model": FastAPI
        # would file it under the route's own media type (text/event-stream for a
        # stream), while errors are always JSON. service_app registers the schema.
        out[status] = {
            "description": description,
            "content": {
                "application/json": {
                    "schema": {"$ref": f"#/components/schemas/{ErrorResponse.__name__}"},
                    "example": error_body(cls.grpc_code.name, message),
                }
            },
        }
    return out


def _validation_message(exc: RequestValidationError) -> str:
    parts = []
    for err in exc.errors()[:5]:
        where = ".".join(str(p) for p in err.get("loc", ()) if p != "body") or "body"
        parts.append(f"{where}: {err.get('msg', 'invalid')}")
    return "invalid request: " + "; ".join(parts)


# Starlette raises HTTPException itself for unknown paths and methods.
_HTTP_CODES = {404: "NOT_FOUND", 405: "UNIMPLEMENTED", 413: "INVALID_ARGUMENT"}


def install_error_handlers(app: FastAPI) -> None:
    """Turn every failure into an :class:`ErrorResponse` with the status of its kind."""

    @app.exception_handler(LiftError)
    async def _lift_error(request: Request, exc: LiftError) -> JSONResponse:
        return JSONResponse(error_body(exc.code_name, exc.message), status_code=exc.http_status)

    @app.exception_handler(RequestValidationError)
    async def _invalid(request: Request, exc: RequestValidationError) -> JSONResponse:
        # FastAPI answers 422 by default; a bad query or path parameter is bad input
        # like any other, so it gets the same 400 and body as the engines' InvalidInput.
        return JSONResponse(
            error_body(InvalidInput.grpc_code.name, _validation_message(exc)),
            status_code=InvalidInput.http_status,
        )

    @app.exception_handler(StarletteHTTPException)
    async def _http(request: Request, exc: StarletteHTTPException) -> JSONResponse:
        code = _HTTP_CODES.get(exc.status_code, "INVALID_ARGUMENT")
        return JSONResponse(error_body(code, str(exc.detail)), status_code=exc.status_code)

    @app.exception_handler(Exception)
    async def _internal(request: Request, exc: Exception) -> JSONResponse:
        log.exception("unhandled error on %s %s", request.method, request.url.path)
        return JSONResponse(error_body("INTERNAL", "internal error; see the server log"), 500)
