"""Errors that cross the service boundary, and how each maps onto gRPC and HTTP.

Engines raise these; the gRPC interceptor and the FastAPI exception handler
translate them in one place each. Anything else that escapes an engine is a bug:
the caller gets INTERNAL / 500 with no stack trace, and the log gets the trace.
"""

from __future__ import annotations

from typing import ClassVar

import grpc


class LiftError(Exception):
    """Base class: a message meant for the caller, plus its gRPC and HTTP status."""

    grpc_code: ClassVar[grpc.StatusCode] = grpc.StatusCode.INTERNAL
    http_status: ClassVar[int] = 500

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message

    @property
    def code_name(self) -> str:
        """The gRPC status name, e.g. "INVALID_ARGUMENT" (also used in HTTP bodies)."""
        return self.grpc_code.name


class InvalidInput(LiftError):
    """The caller sent something we cannot use; the message says what to fix."""

    grpc_code = grpc.StatusCode.INVALID_ARGUMENT
    http_status = 400


class PayloadTooLarge(InvalidInput):
    """The input is bigger than a configured limit (HTTP 413, gRPC INVALID_ARGUMENT)."""

    http_status = 413


class UnsupportedMediaType(InvalidInput):
    """The body's Content-Type is not one the endpoint reads (HTTP 415, gRPC INVALID_ARGUMENT)."""

    http_status = 415


class NotFound(LiftError):
    """A referenced resource (a file URI, a run id) does not exist."""

    grpc_code = grpc.StatusCode.NOT_FOUND
    http_status = 404


class Overloaded(LiftError):
    """The service is at capacity; retry later with backoff."""

    grpc_code = grpc.StatusCode.RESOURCE_EXHAUSTED
    http_status = 429


class NotReady(LiftError):
    """The service is starting or its model is not loaded yet."""

    grpc_code = grpc.StatusCode.UNAVAILABLE
    http_status = 503


class DeadlineExceeded(LiftError):
    """The caller's deadline passed before the work finished; the work was stopped."""

    grpc_code = grpc.StatusCode.DEADLINE_EXCEEDED
    http_status = 504


class RequestTimeout(LiftError):
    """The client sent its request (body or upload stream) too slowly; it was cut off."""

    grpc_code = grpc.StatusCode.DEADLINE_EXCEEDED
    http_status = 408


class Cancelled(LiftError):
    """The caller went away; the work was stopped."""

    grpc_code = grpc.StatusCode.CANCELLED
    http_status = 499


class Conflict(LiftError):
    """The request does not fit the resource's state (e.g. cancelling a finished run)."""

    grpc_code = grpc.StatusCode.FAILED_PRECONDITION
    http_status = 409


class Unauthenticated(LiftError):
    """No bearer token, or one the service does not know (HTTP adds WWW-Authenticate)."""

    grpc_code = grpc.StatusCode.UNAUTHENTICATED
    http_status = 401


class PermissionDenied(LiftError):
    """A valid token without the scope the call needs."""

    grpc_code = grpc.StatusCode.PERMISSION_DENIED
    http_status = 403
