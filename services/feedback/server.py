"""Assemble the feedback process: engine and HTTP app (this service has no gRPC front).

:class:`lift.runner.ServiceRunner` binds a gRPC port for every service; the feedback
service is a browser-facing HTTP app only, so it runs the same HTTP front
(:class:`lift.runner.HttpFront`: body, header and connection limits, TLS options) and the
same signal handling (:func:`lift.runner.serve_until_signal`) without one.
"""

from __future__ import annotations

import asyncio
import fcntl
import logging
import os
import socket

from lift.http.limits import HttpLimits
from lift.runner import HttpFront, serve_until_signal, tls_options
from lift.services.feedback.engine import FeedbackEngine
from lift.services.feedback.http_app import create_app
from lift.services.feedback.settings import FeedbackSettings
from lift.services.feedback.store import safe_url

log = logging.getLogger(__name__)


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
        try:
            self.http = HttpFront(
                self.app,
                settings.host,
                settings.http_port,
                settings.log_level,
                http_ssl,
                HttpLimits.of(settings),
            )
        except OSError:
            self.release()
            raise
        self.http_port = self.http.port

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
        await self.http.start()
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
        await self.http.stop(grace_s)
        await asyncio.to_thread(self.engine.close)
        self.release()

    async def run_forever(self) -> None:
        """Start, serve until SIGINT/SIGTERM, stop."""
        await serve_until_signal(self, "feedback")


def build_feedback(settings: FeedbackSettings) -> FeedbackRunner:
    """A runner for the feedback service (``await runner.start()`` or ``run_forever()``)."""
    return FeedbackRunner(settings)
