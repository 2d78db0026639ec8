"""Local helper processes (Prometheus, Triton, services started by tests and benchmarks).

One free-port picker and one readiness wait for all of them: poll an HTTP URL
until it answers 200, fail at once if the process exits, fail after a deadline.
"""

from __future__ import annotations

import socket
import subprocess
import time

import httpx


class StartError(RuntimeError):
    """A local process exited, or was not ready before its deadline."""


def free_port() -> int:
    """A TCP port on 127.0.0.1 free right now (the caller binds it soon after)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def wait_ready(
    proc: subprocess.Popen[bytes], url: str, what: str, timeout_s: float, interval_s: float = 0.3
) -> None:
    """Block until ``url`` answers 200; raise :class:`StartError` if ``proc`` exits or time runs out."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise StartError(f"{what} exited with code {proc.returncode}")
        try:
            if httpx.get(url, timeout=2).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        time.sleep(interval_s)
    raise StartError(f"{what} not ready at {url} after {timeout_s:.0f} s")
