"""Run one service's gRPC server and HTTP app in one process and one event loop."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import signal
import socket
import ssl
import threading
from collections.abc import Callable, Sequence
from typing import Any

import grpc
import uvicorn
from fastapi import FastAPI

from lift.auth import is_loopback
from lift.grpc_server import HealthServicer, build_server, set_serving
from lift.http.limits import HttpLimits
from lift.http.security import secure_app
from lift.serving import WorkLimiter
from lift.settings import ServiceSettings

log = logging.getLogger(__name__)


class _QuietUvicorn(uvicorn.Server):
    """uvicorn without its own signal handling: the runner stops both fronts together."""

    @contextlib.contextmanager
    def capture_signals(self):  # type: ignore[no-untyped-def]
        yield


def tls_options(settings: ServiceSettings) -> tuple[grpc.ServerCredentials | None, dict[str, Any]]:
    """The gRPC server credentials and uvicorn's ssl options for ``settings`` (None, {}: plain).

    With ``tls_client_ca_file`` both fronts require a client certificate that CA signed.
    """
    if settings.tls_cert_file is None or settings.tls_key_file is None:
        return None, {}
    cert = settings.tls_cert_file.read_bytes()
    key = settings.tls_key_file.read_bytes()
    ca = settings.tls_client_ca_file.read_bytes() if settings.tls_client_ca_file else None
    creds = grpc.ssl_server_credentials(
        [(key, cert)], root_certificates=ca, require_client_auth=ca is not None
    )
    uv: dict[str, Any] = {
        "ssl_certfile": str(settings.tls_cert_file),
        "ssl_keyfile": str(settings.tls_key_file),
    }
    if settings.tls_client_ca_file is not None:
        uv["ssl_ca_certs"] = str(settings.tls_client_ca_file)
        uv["ssl_cert_reqs"] = ssl.CERT_REQUIRED
    return creds, uv


class HttpFront:
    """One service's HTTP app under uvicorn on a socket bound at construction (port 0: any free
    one, in :attr:`port`), with the shared limits and TLS, without uvicorn's signal handling:
    the runner that owns it starts and stops it (every service, with or without gRPC)."""

    def __init__(
        self,
        app: FastAPI,
        host: str,
        port: int,
        log_level: str = "info",
        http_ssl: dict[str, Any] | None = None,
        http_limits: HttpLimits | None = None,
    ) -> None:
        self._sock = socket.socket(socket.AF_INET6 if ":" in host else socket.AF_INET)
        self._sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            self._sock.bind((host, port))
        except OSError as exc:
            self._sock.close()
            raise OSError(
                exc.errno,
                f"cannot listen on {host}:{port} ({exc.strerror}); stop what holds it or pick "
                "another --http-port",
            ) from None
        self.port: int = self._sock.getsockname()[1]
        self._uvicorn = _QuietUvicorn(
            uvicorn.Config(
                http_limits.wrap(app) if http_limits is not None else app,
                log_level=log_level.lower(),
                access_log=False,
                lifespan="off",
                **(http_ssl or {}),
                **(http_limits.uvicorn_options() if http_limits is not None else {}),
            )
        )
        self.task: asyncio.Task[None] | None = None

    async def start(self) -> None:
        """Serve; returns once uvicorn listens (raises what stopped it from starting)."""
        self.task = asyncio.create_task(self._uvicorn.serve(sockets=[self._sock]))
        while not self._uvicorn.started:
            if self.task.done():
                self.task.result()
            await asyncio.sleep(0.01)

    async def stop(self, grace_s: float) -> None:
        """Stop taking requests; those still running after ``grace_s`` are cancelled rather
        than waited for (uvicorn's default waits for every one: a slow upload, a slow URI)."""
        self._uvicorn.config.timeout_graceful_shutdown = grace_s  # type: ignore[assignment]
        self._uvicorn.should_exit = True
        if self.task is not None:
            with contextlib.suppress(asyncio.CancelledError):
                await self.task
        self._sock.close()


async def serve_until_signal(runner: Any, name: str) -> None:
    """``await runner.start()``, serve until SIGINT/SIGTERM (or the HTTP server ends), then
    ``await runner.stop()``; a start that fails stops at once (releasing ports) and raises.

    ``runner`` has ``start()``, ``stop(grace_s=...)`` and its :class:`HttpFront` as ``http``.
    """
    try:
        await runner.start()
    except BaseException:  # e.g. a model that fails to load: release the ports, then report
        await runner.stop(grace_s=0)
        raise
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    assert runner.http.task is not None
    waiter = asyncio.create_task(stop.wait())
    await asyncio.wait({waiter, runner.http.task}, return_when=asyncio.FIRST_COMPLETED)
    log.info("%s shutting down", name)
    await runner.stop()
    waiter.cancel()


class ServiceRunner:
    """Starts both fronts, loads the model off the event loop, and stops cleanly.

    Ports may be 0 (tests): the bound ports are in :attr:`grpc_port` and
    :attr:`http_port` after :meth:`start`.
    """

    def __init__(
        self,
        name: str,
        grpc_server: grpc.aio.Server,
        health_servicer: HealthServicer,
        service_names: Sequence[str],
        app: FastAPI,
        host: str,
        grpc_port: int,
        http_port: int,
        load: Callable[[], None],
        log_level: str = "info",
        close: Callable[[], None] | None = None,
        grpc_credentials: grpc.ServerCredentials | None = None,
        http_ssl: dict[str, Any] | None = None,
        http_limits: HttpLimits | None = None,
    ) -> None:
        self.name = name
        self.grpc_server = grpc_server
        self.health = health_servicer
        self.service_names = list(service_names)
        self.app = app
        self.host = host
        self.load = load
        self.close = close
        self.tls = grpc_credentials is not None
        address = f"{host}:{grpc_port}"
        try:  # grpcio raises RuntimeError (older releases returned 0) when the bind fails
            if grpc_credentials is not None:
                self.grpc_port = grpc_server.add_secure_port(address, grpc_credentials)
            else:
                self.grpc_port = grpc_server.add_insecure_port(address)
        except RuntimeError:
            self.grpc_port = 0
        if self.grpc_port == 0:
            raise OSError(f"could not bind gRPC port {host}:{grpc_port} (in use?)")
        self.http = HttpFront(app, host, http_port, log_level, http_ssl, http_limits)
        self.http_port = self.http.port

    async def start(self) -> None:
        """Start serving; health says NOT_SERVING until the model is loaded."""
        await self.grpc_server.start()
        await set_serving(self.health, self.service_names, up=False)
        await self.http.start()
        await asyncio.to_thread(self.load)
        await set_serving(self.health, self.service_names, up=True)
        log.info(
            "%s ready: gRPC %s:%d, HTTP %s://%s:%d (docs at /docs)",
            self.name,
            self.host,
            self.grpc_port,
            "https" if self.tls else "http",
            self.host,
            self.http_port,
        )

    async def stop(self, grace_s: float = 5.0) -> None:
        """Stop taking requests, let those in flight finish (up to ``grace_s``), shut down."""
        await set_serving(self.health, self.service_names, up=False)
        await asyncio.gather(self.grpc_server.stop(grace_s), self.http.stop(grace_s))
        if self.close is not None:
            await asyncio.to_thread(self.close)

    async def run_forever(self) -> None:
        """Start, serve until SIGINT/SIGTERM, stop."""
        await serve_until_signal(self, self.name)


def assemble_service(
    name: str,
    settings: ServiceSettings,
    engine: Any,
    add_servicer: Callable[[Any, grpc.aio.Server], None],
    servicer: Callable[[Any, WorkLimiter], Any],
    service_name: str,
    create_app: Callable[[Any, WorkLimiter], FastAPI],
) -> ServiceRunner:
    """The runner of one service: its engine behind one shared worker limit, both fronts.

    ``engine`` has ``load()`` and ``close()``; ``servicer`` and ``create_app`` build the
    gRPC servicer and the FastAPI app from the engine and the limiter they share.
    """
    limiter = WorkLimiter(settings.workers, settings.max_queue, service=name)
    app = create_app(engine, limiter)
    # Both fronts share one Authenticator: the same tokens file, re-read in one place.
    auth = secure_app(app, name, settings)
    if auth is None and not is_loopback(settings.host):
        log.warning(
            "%s listens on %s without a tokens file: anyone who reaches it may call every "
            "API; set LIFT_AUTH_FILE (`lift auth add`) outside local use",
            name,
            settings.host,
        )
    server, health = build_server(
        name,
        [(add_servicer, servicer(engine, limiter), service_name)],
        settings.max_message_bytes,
        auth=auth,
        reflection_on=settings.reflection,
        max_concurrent_rpcs=settings.grpc_max_concurrent_rpcs,
        max_concurrent_streams=settings.grpc_max_concurrent_streams,
    )
    grpc_credentials, http_ssl = tls_options(settings)
    return ServiceRunner(
        name,
        server,
        health,
        [service_name],
        app,
        settings.host,
        settings.grpc_port,
        settings.http_port,
        engine.load,
        settings.log_level,
        close=engine.close,
        grpc_credentials=grpc_credentials,
        http_ssl=http_ssl,
        http_limits=HttpLimits.of(settings),
    )


def start_in_thread(
    build: Callable[[Any], ServiceRunner], settings: Any, timeout_s: float = 120.0
) -> tuple[ServiceRunner, Callable[[], None]]:
    """Build and start a service in a background thread with its own event loop.

    For tests, benchmarks and tools that need a running service in-process. Returns
    the started runner (its bound ports) and a function that stops it.
    """
    loop = asyncio.new_event_loop()
    started = threading.Event()
    holder: dict[str, Any] = {}

    def run() -> None:
        asyncio.set_event_loop(loop)

        async def main() -> None:
            try:
                runner = build(settings)  # the gRPC server must be made on its own loop
                await runner.start()
                holder["runner"] = runner
            except BaseException as exc:
                holder["error"] = exc
            finally:
                started.set()

        loop.run_until_complete(main())
        if "runner" in holder:
            loop.run_forever()

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    if not started.wait(timeout_s):
        raise TimeoutError(f"the service did not start within {timeout_s:.0f} s")
    if "error" in holder:
        raise holder["error"]
    runner: ServiceRunner = holder["runner"]

    def stop() -> None:
        asyncio.run_coroutine_threadsafe(runner.stop(1.0), loop).result(30)
        loop.call_soon_threadsafe(loop.stop)
        thread.join(10)

    return runner, stop
