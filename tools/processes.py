"""Local helper processes (Prometheus, Triton, services started by tests and benchmarks).

One free-port picker and one readiness wait for all of them: poll an HTTP URL
until it answers 200, fail at once if the process exits, fail after a deadline.
"""

from __future__ import annotations

import random
import shutil
import socket
import subprocess
import sys
import time
from collections.abc import Sequence
from pathlib import Path

import httpx


class StartError(RuntimeError):
    """A local process exited, or was not ready before its deadline."""


_HANDED_OUT: set[int] = set()


def free_port() -> int:
    """A TCP port on 127.0.0.1 free right now (the caller binds it soon after).

    Drawn below the kernel's ephemeral range (32768+ on Linux), where the local ends of
    outgoing connections (pip, clients, Prometheus scrapes) could take it between this
    check and the bind, and never the same port twice in one process.
    """
    rng = random.Random()
    for _ in range(200):
        port = rng.randrange(20000, 32000)
        if port in _HANDED_OUT:
            continue
        with socket.socket() as s:
            try:
                s.bind(("127.0.0.1", port))
            except OSError:
                continue
        _HANDED_OUT.add(port)
        return port
    raise StartError("no free TCP port between 20000 and 32000")


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


def python_module_command(module: Sequence[str], processes: int = 1) -> list[str]:
    """``python -m MODULE ARGS`` in this interpreter, or with ``processes`` > 1 the same under
    ``accelerate launch`` (one machine, a free rendezvous port).

    ``--multi_gpu`` is accelerate's torchrun launcher: on CPU each process joins a gloo
    group (``--cpu`` with several processes would ask for mpirun instead).
    """
    if processes == 1:
        return [sys.executable, "-m", *module]
    accelerate = shutil.which("accelerate", path=str(Path(sys.executable).parent))
    if accelerate is None:
        raise StartError("accelerate's launcher is not installed beside this Python")
    return [accelerate, "launch", "--multi_gpu", "--num_processes", str(processes),
            "--num_machines", "1", "--mixed_precision", "no", "--dynamo_backend", "no",
            "--main_process_port", str(free_port()), "-m", *module]  # fmt: skip
