"""What one HTTP client may hold: body size and time, header time, connections.

Three pieces, wired by :mod:`lift.runner` for every service alike:

- :class:`BodyLimits`, ASGI middleware around the whole app: it counts the bytes of
  every ``http.request`` message as they stream in (chunked or with a Content-Length,
  multipart or JSON, any route) and stops at the cap with 413; it gives the whole body
  one deadline (408 past it), so a client trickling a body is cut off. A route may
  tighten the cap for its own body (:func:`tighten_body_limit`) before reading it.
- :class:`LimitedH11Protocol`, uvicorn's h11 protocol with a header deadline: a client
  that opens a connection, or starts a request, and does not finish its headers in time
  is disconnected (uvicorn itself waits forever). It also ends a connection whose
  response went out before its request body was read (a refusal) with a short
  lingering close, rather than reading and discarding whatever the client keeps sending.
- :func:`uvicorn_options`: those plus uvicorn's own connection cap (``limit_concurrency``:
  requests past it get 503 at once), keep-alive time and header size.
"""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass
from typing import Any, ClassVar

import h11
from starlette.datastructures import Headers
from starlette.responses import JSONResponse
from starlette.types import ASGIApp, Message, Receive, Scope, Send
from uvicorn.protocols.http.h11_impl import H11Protocol

from lift.errors import InvalidInput, LiftError, PayloadTooLarge, RequestTimeout
from lift.http.errors import error_body
from lift.settings import ServiceSettings

SCOPE_KEY = "lift.body_budget"
"""Where :class:`BodyLimits` keeps the request's :class:`BodyBudget` in the ASGI scope."""

MAX_HEADER_BYTES = 64 * 1024
"""Largest request line plus headers (h11 refuses bigger with 400)."""

LINGER_S = 2.0
"""How long a refused request's connection is kept half-closed, discarding input, so the
client can read the refusal before the close (closing with unread input sends a reset,
which can destroy the reply in the client's buffer)."""


DRAIN_BYTES = 64 * 1024
"""A refused request's declared body up to this size is read and dropped, keeping the
connection; a bigger or chunked one ends it (see :class:`LimitedH11Protocol`)."""


class BodyBudget:
    """How many bytes of one request's body may still be read, and until when."""

    def __init__(self, limit: int, timeout_s: float) -> None:
        self.limit = limit
        self.timeout_s = timeout_s
        self.expires_at = time.monotonic() + timeout_s
        self.read = 0
        self.complete = False
        self.aborted = False

    def refusal(self) -> PayloadTooLarge:
        """The error for a body past :attr:`limit`."""
        return PayloadTooLarge(f"the request body is larger than the {self.limit}-byte limit")


class HeadersTooLarge(InvalidInput):
    """The request's headers are over :data:`MAX_HEADER_BYTES` (HTTP 431)."""

    http_status = 431


def tighten_body_limit(scope: Scope, limit: int) -> None:
    """Lower the body cap of this request to ``limit`` (no-op without :class:`BodyLimits`).

    Raises at once when more than ``limit`` bytes were already read.
    """
    budget: BodyBudget | None = scope.get(SCOPE_KEY)
    if budget is not None and limit < budget.limit:
        budget.limit = limit
        if budget.read > limit:
            budget.aborted = True
            raise budget.refusal()


class BodyLimits:
    """ASGI middleware: request bodies capped at ``max_bytes`` and ``timeout_s``, streaming."""

    def __init__(self, app: ASGIApp, max_bytes: int, timeout_s: float) -> None:
        self.app = app
        self.max_bytes = max_bytes
        self.timeout_s = timeout_s

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        budget = BodyBudget(self.max_bytes, self.timeout_s)
        # h11 bounds headers that arrive in pieces; these arrived in one read.
        if sum(len(k) + len(v) + 4 for k, v in scope["headers"]) > MAX_HEADER_BYTES:
            budget.aborted = True
            # Such a client is not kept: the reply closes the connection.
            await _reply(HeadersTooLarge("the request headers are too large"), send, close=True)
            return
        declared = Headers(scope=scope).get("content-length", "")
        if declared.isdigit() and int(declared) > budget.limit:
            budget.aborted = True
            await _reply(budget.refusal(), send)
            return
        scope[SCOPE_KEY] = budget
        started = False

        async def limited_receive() -> Message:
            if budget.complete:  # after the body: disconnect waits run as long as they like
                return await receive()
            # A body that has already arrived is handed over even past the deadline (a
            # route may read late); only waiting for more of it is bounded.
            left = max(budget.expires_at - time.monotonic(), 0.01)
            try:
                message = await asyncio.wait_for(receive(), left)
            except TimeoutError:
                budget.aborted = True
                raise RequestTimeout(
                    f"the request body did not arrive within {budget.timeout_s:g} s; "
                    "send it faster or in a smaller request"
                ) from None
            if message["type"] == "http.request":
                budget.read += len(message.get("body", b""))
                if budget.read > budget.limit:
                    budget.aborted = True
                    raise budget.refusal()
                budget.complete = not message.get("more_body", False)
            else:
                budget.complete = True
            return message

        async def watched_send(message: Message) -> None:
            nonlocal started
            started = started or message["type"] == "http.response.start"
            await send(message)

        # The connection of a refused body is ended by LimitedH11Protocol (a lingering
        # close); a "Connection: close" here would make uvicorn close at once instead.
        try:
            await self.app(scope, limited_receive, watched_send)
        except (PayloadTooLarge, RequestTimeout) as exc:
            # Raised where no route's handler caught it (e.g. a middleware reading the body).
            if started or not budget.aborted:
                raise
            await _reply(exc, watched_send)


async def _reply(exc: LiftError, send: Send, close: bool = False) -> None:
    headers = {"connection": "close"} if close else None
    response = JSONResponse(
        error_body(exc.code_name, exc.message), status_code=exc.http_status, headers=headers
    )
    await response({"type": "http"}, _no_receive, send)


async def _no_receive() -> Message:
    return {"type": "http.disconnect"}


class LimitedH11Protocol(H11Protocol):
    """uvicorn's h11 protocol, plus a deadline for each request's headers.

    The clock starts when the connection opens and again when the first bytes of a
    later request arrive on a kept-alive connection; a client whose headers are not
    complete by then is disconnected. (uvicorn's keep-alive timer covers idle time
    between requests, but it stops at the first byte of the next one.)
    """

    header_timeout_s: ClassVar[float] = 10.0

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        super().connection_made(transport)
        self._header_timer: asyncio.TimerHandle | None = None
        self._lingering = False
        self._arm_header_timer()

    def data_received(self, data: bytes) -> None:
        if self._lingering:
            return  # the rest of a refused body: dropped unparsed
        super().data_received(data)
        if self.conn.their_state is h11.IDLE:  # a request's headers have begun, not ended
            self._arm_header_timer()
        else:
            self._disarm_header_timer()

    def connection_lost(self, exc: Exception | None) -> None:
        self._disarm_header_timer()
        super().connection_lost(exc)

    def on_response_complete(self) -> None:
        super().on_response_complete()
        if self.conn.their_state is h11.SEND_BODY and not self.transport.is_closing():
            if self._small_body_declared():
                # Answered before a small declared body arrived (a 415 or 401, say): uvicorn
                # reads and drops the rest and the connection serves the next request, as
                # the reply promised by not saying "Connection: close". Bounded in time.
                cycle = self.cycle
                self.loop.call_later(LINGER_S, self._close_if_still_in, cycle)
                return
            # Answered before the body was read (a refusal): send our FIN, drop what
            # still arrives for a moment so the client can read the reply, then close.
            self._lingering = True
            self._unset_keepalive_if_required()
            if self.transport.can_write_eof():
                self.transport.write_eof()
            self.loop.call_later(LINGER_S, self.transport.close)

    def _small_body_declared(self) -> bool:
        """Whether the request declared a Content-Length small enough to drain."""
        headers = dict(getattr(self, "scope", {}).get("headers", []))
        declared = headers.get(b"content-length", b"")
        return declared.isdigit() and int(declared) <= DRAIN_BYTES

    def _close_if_still_in(self, cycle: object) -> None:
        """Close if the body of ``cycle``'s request still has not arrived."""
        if self.cycle is cycle and self.conn.their_state is h11.SEND_BODY:
            self.transport.close()

    def _arm_header_timer(self) -> None:
        if self._header_timer is None:
            self._header_timer = self.loop.call_later(self.header_timeout_s, self._headers_late)

    def _disarm_header_timer(self) -> None:
        if self._header_timer is not None:
            self._header_timer.cancel()
            self._header_timer = None

    def _headers_late(self) -> None:
        self._header_timer = None
        if self.conn.their_state is h11.IDLE and not self.transport.is_closing():
            self.logger.info("closing a connection whose request headers were too slow")
            self.transport.close()


@dataclass(frozen=True)
class HttpLimits:
    """The limits of one service's HTTP front (see :class:`lift.settings.ServiceSettings`)."""

    max_body_bytes: int
    body_timeout_s: float = 120.0
    header_timeout_s: float = 10.0
    keepalive_s: int = 5
    max_connections: int = 256

    @classmethod
    def of(cls, settings: ServiceSettings) -> HttpLimits:
        """The limits a :class:`~lift.settings.ServiceSettings` asks for."""
        return cls(
            max_body_bytes=settings.body_limit,
            body_timeout_s=settings.body_timeout_s,
            header_timeout_s=settings.http_header_timeout_s,
            keepalive_s=settings.http_keepalive_s,
            max_connections=settings.http_max_connections,
        )

    def wrap(self, app: ASGIApp) -> ASGIApp:
        """``app`` behind :class:`BodyLimits`."""
        return BodyLimits(app, self.max_body_bytes, self.body_timeout_s)

    def uvicorn_options(self) -> dict[str, Any]:
        """Keyword arguments for ``uvicorn.Config``."""
        protocol = type(
            "LimitedH11Protocol", (LimitedH11Protocol,), {"header_timeout_s": self.header_timeout_s}
        )
        return {
            "http": protocol,
            "limit_concurrency": self.max_connections,
            "timeout_keep_alive": self.keepalive_s,
            "h11_max_incomplete_event_size": MAX_HEADER_BYTES,
        }
