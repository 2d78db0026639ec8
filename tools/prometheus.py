"""Prometheus for tests: the repository's deploy/ view of the packaged config, plus readiness.

The config and rules live in the package (``lift/data/prometheus``, what ``lift up`` runs);
``deploy/prometheus`` links to them and adds the promtool alert tests. Tests start
Prometheus through the same functions as ``lift up`` (:mod:`lift.cli.prometheus`) and
wait for it with the shared readiness poll.
"""

from __future__ import annotations

import subprocess
from pathlib import Path

from lift.cli.prometheus import (
    CONFIG,
    PrometheusError,
    binary,
    load_config,
    render_config,
    start,
    write_config,
)
from tools import processes

DEPLOY_DIR = Path(__file__).resolve().parent.parent / "deploy"
PROMETHEUS_DIR = DEPLOY_DIR / "prometheus"
"""deploy/prometheus: links to the packaged config and rules, and the promtool tests."""

__all__ = [
    "CONFIG",
    "DEPLOY_DIR",
    "PROMETHEUS_DIR",
    "PrometheusError",
    "binary",
    "load_config",
    "render_config",
    "start",
    "wait_ready",
    "write_config",
]


def wait_ready(proc: subprocess.Popen[bytes], port: int, timeout_s: float = 60.0) -> None:
    """Block until Prometheus answers /-/ready; raise if it exits or times out."""
    try:
        processes.wait_ready(proc, f"http://127.0.0.1:{port}/-/ready", "prometheus", timeout_s)
    except processes.StartError as exc:
        raise PrometheusError(f"{exc} (see its log)") from None
