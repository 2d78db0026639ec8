"""Assemble the feedback process: engine and HTTP app (this service has no gRPC front).

:class:`lift.runner.ServiceRunner` binds a gRPC port for every service; the feedback
service is a browser-facing HTTP app only, so it runs uvicorn the same way (the same
body, header and connection limits, TLS options and signal handling) without one.
"""

from __future__ import annotations

import asyncio
import contextlib
import fcntl
import logging
import os
import signal
import socket

import uvicorn

from lift.http.limits import HttpLimits
from lift.runner import tls_options
from lift.services.feedback.engine import FeedbackEngine
from lift.services.feedback.http_app import create_app
from lift.services.feedback.settings import FeedbackSettings
from lift.services.feedback.store import safe_url

log = logging.getLogger(__name__)


class _QuietUvicorn(uvicorn.Server):
    """uvicorn without its own signal handling: the runner stops it."""

    @contextlib.contextmanager
    def capture_signals(self):  # type: ignore[no-untyped-def]
        yield


class FeedbackRunner:
    """Serves the feedback app; the bound port is in :attr:`http_port` (0 = any free one)."""

    def __init__(self, settings: FeedbackSettings, engine: FeedbackEngine | None = None) -> None:
        self.settings = settings
        self.engine = engine or FeedbackEngine(settings)
        self._lock_fd: int | None = None
        try:
            self._lock_data_dir()
        except BaseException:
            self.engine.close()
            raise
        self.app = create_app(self.engine)
        _, http_ssl = tls_options(settings)
        self.tls = bool(http_ssl)
        limits = HttpLimits.of(settings)
        host = settings.host
        self._sock = socket.socket(socket.AF_INET6 if ":" in host else socket.AF_INET)
        self._sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            self._sock.bind((host, settings.http_port))
        except OSError as exc:
            self._sock.close()
            self.release()
            raise OSError(
                exc.errno,
                f"cannot listen on {host}:{settings.http_port} ({exc.strerror}); stop what "
                "holds it or pick another --http-port",
            ) from None
        self.http_port = self._sock.getsockname()[1]
        self._uvicorn = _QuietUvicorn(
            uvicorn.Config(
                limits.wrap(self.app),
                log_level=settings.log_level.lower(),
                access_log=False,
                lifespan="off",
                **http_ssl,
                **limits.uvicorn_options(),
            )
        )
        self._task: asyncio.Task[None] | None = None

    def _lock_data_dir(self) -> None:
        """One server per data dir: its lock (the store's checks hold within one process)."""
        data = self.settings.data
        data.mkdir(parents=True, exist_ok=True)
        fd = os.open(data / ".serve.lock", os.O_RDWR | os.O_CREAT, 0o600)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            os.close(fd)
            raise ValueError(
                f"another `lift feedback serve` is using {data}; stop it, or give this one "
                "its own --data (two servers on one database could each accept the same "
                "annotator's rating of an item)"
            ) from None
        self._lock_fd = fd

    def release(self) -> None:
        """Let another server use the data dir (after :meth:`stop`, or when start-up failed)."""
        if self._lock_fd is not None:
            os.close(self._lock_fd)  # closing the descriptor drops the flock
            self._lock_fd = None

    async def start(self) -> None:
        """Import the queue sources, then serve."""
        await asyncio.to_thread(self.engine.load)
        self._task = asyncio.create_task(self._uvicorn.serve(sockets=[self._sock]))
        while not self._uvicorn.started:
            if self._task.done():
                self._task.result()
            await asyncio.sleep(0.01)
        log.info("%s", self.ready_line())

    def ready_line(self) -> str:
        """What the operator needs to know once it serves: the URL, who may rate, the data."""
        host = self.settings.host
        if host in ("0.0.0.0", "::"):
            host = socket.gethostname()  # a wildcard is not an address a browser can open
        if ":" in host:
            host = f"[{host}]"
        url = f"{'https' if self.tls else 'http'}://{host}:{self.http_port}/"
        who = (
            "annotators sign in with their tokens (`lift auth add NAME --scope rate`)"
            if self.settings.auth_file is not None
            else "no tokens file: annotators type their name on the page (this machine only)"
        )
        return (
            f"feedback ready: open {url} to rate, {url}overview for progress and agreement; "
            f"{who}; ratings in {safe_url(self.settings.db_url)}"
        )

    async def stop(self, grace_s: float = 5.0) -> None:
        """Stop taking requests, let those in flight finish (up to ``grace_s``), close."""
        self._uvicorn.config.timeout_graceful_shutdown = grace_s  # type: ignore[assignment]
        self._uvicorn.should_exit = True
        if self._task is not None:
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
        self._sock.close()
        await asyncio.to_thread(self.engine.close)
        self.release()

    async def run_forever(self) -> None:
        """Start, serve until SIGINT/SIGTERM, stop."""
        try:
            await self.start()
        except BaseException:
            await self.stop(grace_s=0)
            raise
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(sig, stop.set)
        assert self._task is not None
        waiter = asyncio.create_task(stop.wait())
        await asyncio.wait({waiter, self._task}, return_when=asyncio.FIRST_COMPLETED)
        log.info("feedback shutting down")
        await self.stop()
        waiter.cancel()


def build_feedback(settings: FeedbackSettings) -> FeedbackRunner:
    """A runner for the feedback service (``await runner.start()`` or ``run_forever()``)."""
    return FeedbackRunner(settings)
