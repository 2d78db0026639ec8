"""Who may call the HTTP front, and from where: tokens, trusted hosts, CORS, cross-origin writes.

:func:`secure_app` adds to a service's app, outermost first:

1. **trusted hosts** (``trusted_hosts``): a Host header not on the list gets 400, so a
   DNS-rebound name cannot reach the service from a browser (health probes exempt);
2. **CORS** (``cors_origins``): off unless origins are listed, then exactly those;
3. **cross-origin writes**: a POST (or any non-GET) carrying an ``Origin`` that is
   neither listed nor the service's own gets 403. Browsers send ``Origin`` on such
   requests, so a web page cannot start a run through a "simple request" (text/plain,
   a Blob without a type, or no body) even when the service runs without tokens;
4. **bearer tokens** (``auth_file``): the scope each route needs comes from
   :data:`lift.auth.ACCESS`, checked before the body is read. ``/healthz`` and
   ``/readyz`` are always open; ``/metrics`` and the docs when the settings say so.

Every refusal is the one error model, ``{"error": {"code", "message"}}``.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Iterable
from typing import Any

from fastapi import FastAPI
from starlette.datastructures import Headers
from starlette.middleware import Middleware
from starlette.middleware.cors import CORSMiddleware
from starlette.responses import JSONResponse
from starlette.routing import Match, Route, Router
from starlette.types import ASGIApp, Receive, Scope, Send

from lift.auth import ANY_TOKEN, Authenticator, Decision, Rule, bearer_token, check, required_scope
from lift.http.docs import ASSETS_URL
from lift.http.errors import error_body, error_responses
from lift.settings import ServiceSettings

log = logging.getLogger(__name__)

HEALTH_PATHS = frozenset({"/healthz", "/readyz"})
DOCS_PATHS = frozenset({"/docs", "/redoc", "/openapi.json", "/docs/oauth2-redirect"})
_SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})
_CONVERTER = re.compile(r"\{(\w+):\w+\}")


def _reply(
    scope: Scope, status: int, code: str, message: str, headers: dict[str, str] | None = None
) -> Any:
    """An error reply sent before the request's body was read.

    A request that may carry a body is answered with ``Connection: close``: its unread
    body would otherwise be taken for the next request on the connection.
    """
    headers = dict(headers or {})
    if scope["method"] not in _SAFE_METHODS:
        headers["connection"] = "close"
    return JSONResponse(error_body(code, message), status_code=status, headers=headers)


def route_key(router: Router, scope: Scope) -> str | None:
    """``"METHOD /template"`` of the route a request goes to; None when no route takes it.

    The template drops path converters (``{version:path}`` → ``{version}``), as the
    access table writes them; HEAD is checked as GET.
    """
    method = "GET" if scope["method"] == "HEAD" else scope["method"]
    for route in router.routes:
        match, _ = route.matches(scope)
        if match is Match.FULL and isinstance(route, Route):
            template = _CONVERTER.sub(r"{\1}", route.path)
            return f"{method} {template}"
    return None


class AuthMiddleware:
    """Bearer tokens and scopes for every HTTP route (pure ASGI: refuses before the body)."""

    def __init__(
        self,
        app: ASGIApp,
        service: str,
        router: Router,
        auth: Authenticator,
        open_paths: frozenset[str],
        open_prefixes: tuple[str, ...],
    ) -> None:
        self.app = app
        self.service = service
        self.router = router
        self.auth = auth
        self.open_paths = open_paths
        self.open_prefixes = open_prefixes

    def rule(self, scope: Scope) -> Rule:
        """The scope a request needs: the table's entry for its route.

        A path no route takes (404/405 follow) needs any valid token, so an anonymous
        caller learns nothing about which paths exist.
        """
        key = route_key(self.router, scope)
        return ANY_TOKEN if key is None else required_scope(self.service, key)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        path = scope["path"]
        if path in self.open_paths or path.startswith(self.open_prefixes):
            await self.app(scope, receive, send)
            return
        presented = Headers(scope=scope).getlist("authorization")
        if len(presented) > 1:  # which one would count is ambiguous between proxies: neither
            response = _reply(
                scope, 400, "INVALID_ARGUMENT", "send one Authorization header, not several"
            )
            await response(scope, receive, send)
            return
        token = bearer_token(presented[0] if presented else None)
        decision, message = check(self.auth, token, self.rule(scope))
        if decision is Decision.ALLOW:
            await self.app(scope, receive, send)
            return
        if decision is Decision.UNAUTHENTICATED:
            challenge = 'Bearer realm="lift"' + (', error="invalid_token"' if token else "")
            response = _reply(
                scope, 401, "UNAUTHENTICATED", message, headers={"WWW-Authenticate": challenge}
            )
        else:
            response = _reply(scope, 403, "PERMISSION_DENIED", message)
        await response(scope, receive, send)


def _host_of(value: str) -> str:
    """The host part of a Host header or an origin's authority, lower case, no port."""
    value = value.strip().lower()
    if value.startswith("["):  # [::1]:8080
        return value[1 : value.find("]")] if "]" in value else value
    return value.rsplit(":", 1)[0] if value.count(":") == 1 else value


def host_allowed(host: str, patterns: Iterable[str]) -> bool:
    """True when ``host`` equals a pattern or ends a ``*.domain`` pattern's domain."""
    for pattern in patterns:
        pattern = pattern.strip().lower()
        if pattern == "*" or host == _host_of(pattern):
            return True
        if pattern.startswith("*.") and host.endswith(pattern[1:]):
            return True
    return False


class TrustedHosts:
    """400 for a Host header not on the list (DNS rebinding); health probes pass."""

    def __init__(self, app: ASGIApp, hosts: list[str]) -> None:
        self.app = app
        self.hosts = hosts

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["path"] in HEALTH_PATHS:
            await self.app(scope, receive, send)
            return
        host = _host_of(Headers(scope=scope).get("host", ""))
        if host_allowed(host, self.hosts):
            await self.app(scope, receive, send)
            return
        response = _reply(
            scope,
            400,
            "INVALID_ARGUMENT",
            "the Host header is not one this service answers to; "
            "the operator lists them in its TRUSTED_HOSTS setting",
        )
        await response(scope, receive, send)


class CrossOriginWrites:
    """403 for a state-changing request from a browser page of another origin.

    Browsers send ``Origin`` with every cross-origin request and every POST; programs
    (curl, the clients) send none, so they are never affected.
    """

    def __init__(self, app: ASGIApp, origins: list[str]) -> None:
        self.app = app
        self.origins = {o.rstrip("/").lower() for o in origins}

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["method"] in _SAFE_METHODS:
            await self.app(scope, receive, send)
            return
        headers = Headers(scope=scope)
        origin = headers.get("origin")
        if origin is None or self._same_or_allowed(origin, headers.get("host", "")):
            await self.app(scope, receive, send)
            return
        response = _reply(
            scope,
            403,
            "PERMISSION_DENIED",
            f"cross-origin requests from {origin[:100]} are not allowed; "
            "the operator lists allowed origins in its CORS_ORIGINS setting",
        )
        await response(scope, receive, send)

    def _same_or_allowed(self, origin: str, host: str) -> bool:
        origin = origin.strip().rstrip("/").lower()
        if origin in self.origins or "*" in self.origins:
            return True
        authority = origin.split("://", 1)[-1]
        return origin != "null" and authority == host.strip().lower()


def document_bearer_auth(app: FastAPI, open_paths: frozenset[str]) -> None:
    """Declare the bearer scheme in the OpenAPI document (Swagger UI's "Authorize" button).

    Every operation but the open ones needs it and may answer 401 and 403.
    """
    build = app.openapi

    def openapi() -> dict[str, Any]:
        schema = build()
        schemes = schema.setdefault("components", {}).setdefault("securitySchemes", {})
        if "bearer" not in schemes:
            schemes["bearer"] = {
                "type": "http",
                "scheme": "bearer",
                "description": "A token from `lift auth add NAME --scope S`; each operation "
                "needs its scope (judge, generate, adapters, runs, rate; admin: all).",
            }
            schema["security"] = [{"bearer": []}]
            refusals = error_responses(401, 403)
            for path, operations in schema.get("paths", {}).items():
                for operation in operations.values():
                    if path in open_paths:
                        operation["security"] = []
                    else:
                        for status, reply in refusals.items():
                            operation.setdefault("responses", {}).setdefault(str(status), reply)
        return schema

    app.openapi = openapi  # type: ignore[method-assign]


LOOPBACK_BINDS = frozenset({"127.0.0.1", "::1", "localhost"})
"""Bind addresses only this machine reaches."""
LOOPBACK_HOSTS = ("127.0.0.1", "localhost", "::1")
"""The Host names a service bound to loopback accepts when ``trusted_hosts`` is unset."""


def secure_app(
    app: FastAPI,
    service: str,
    settings: ServiceSettings,
    public_paths: Iterable[str] = (),
    public_prefixes: tuple[str, ...] = (),
) -> Authenticator | None:
    """Add tokens, trusted hosts, CORS and the cross-origin write guard to a service's app.

    Call before the app serves. Returns the :class:`Authenticator` (None without a
    tokens file) so the gRPC front can share it. A tokens file that cannot be used
    raises :class:`lift.auth.AuthFileError` (start-up fails with its message).
    ``public_paths`` and ``public_prefixes`` answer without a token like health does:
    a service's static pages (the feedback service's annotation page asks for the
    token itself); they must hold no data.
    """
    auth = Authenticator(settings.auth_file) if settings.auth_file is not None else None
    if auth is not None:
        open_paths = set(HEALTH_PATHS) | set(public_paths)
        open_prefixes: tuple[str, ...] = tuple(public_prefixes)
        if settings.open_metrics:
            open_paths.add("/metrics")
        if settings.open_docs:
            open_paths |= DOCS_PATHS
            open_prefixes = (*open_prefixes, ASSETS_URL + "/")
        document_bearer_auth(app, frozenset(open_paths))
        # Innermost (after the request metrics, so refusals are counted), before routing.
        app.user_middleware.append(
            Middleware(
                AuthMiddleware,
                service=service,
                router=app.router,
                auth=auth,
                open_paths=frozenset(open_paths),
                open_prefixes=open_prefixes,
            )
        )
    app.add_middleware(CrossOriginWrites, origins=settings.cors_origins)
    if settings.cors_origins:
        app.add_middleware(
            CORSMiddleware,
            allow_origins=settings.cors_origins,
            allow_methods=["GET", "POST"],
            allow_headers=["authorization", "content-type", "accept", "last-event-id"],
            expose_headers=["X-Lift-Seed", "X-Lift-Adapter-Version", "X-Lift-Metadata"],
            max_age=600,
        )
    hosts = list(settings.trusted_hosts)
    if not hosts and settings.host in LOOPBACK_BINDS:
        # Only this machine can connect, so any other Host name is a page on a rebinding
        # domain talking to us through the browser: refuse it unless the operator lists it.
        hosts = list(LOOPBACK_HOSTS)
    if hosts:
        app.add_middleware(TrustedHosts, hosts=hosts)  # outermost
    return auth
