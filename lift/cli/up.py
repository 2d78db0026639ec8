"""`lift up`: critic, generator and trainer (and optionally Prometheus) on this machine."""

from __future__ import annotations

import contextlib
import tempfile
from pathlib import Path
from typing import Annotated

import typer

_UP = (  # service, serve command, HTTP port (defaults of each service)
    ("critic", ["critic", "serve"], 8080),
    ("generator", ["generator", "serve"], 8081),
    ("trainer", ["trainer", "serve"], 8082),
)


def up(
    timeout_s: Annotated[float, typer.Option(help="Wait this long for readiness")] = 300.0,
    with_prometheus: Annotated[
        bool,
        typer.Option(
            "--with-prometheus",
            help="Also run Prometheus on deploy/prometheus/prometheus.yml (rules and alerts)",
        ),
    ] = False,
    prometheus_port: Annotated[int, typer.Option(help="Prometheus web port")] = 9090,
    prometheus_data: Annotated[
        Path | None, typer.Option(help="Prometheus TSDB directory (default: a temp dir)")
    ] = None,
) -> None:
    """Start critic, generator and trainer (embedded defaults); stop all on Ctrl-C."""
    import signal
    import subprocess
    import sys
    import time

    import httpx
    from rich.console import Console

    console = Console()

    procs: list[tuple[str, subprocess.Popen[bytes], int]] = []

    def stop_all() -> None:
        for _, p, _ in procs:
            if p.poll() is None:
                p.send_signal(signal.SIGTERM)
        for name, p, _ in procs:
            try:
                p.wait(timeout=30)
            except subprocess.TimeoutExpired:
                p.kill()
                console.print(f"[yellow]{name} did not stop in 30 s; killed[/]")

    try:
        for name, args, port in _UP:
            cmd = [sys.executable, "-m", "lift.cli.main", *args]
            procs.append((name, subprocess.Popen(cmd), port))
        if with_prometheus:
            from lift import prometheus

            if prometheus_data is None:
                prometheus_data = Path(tempfile.mkdtemp(prefix="lift-prometheus-"))
            try:
                prom = prometheus.start(prometheus.CONFIG, prometheus_port, prometheus_data)
                procs.append(("prometheus", prom, 0))
                prometheus.wait_ready(prom, prometheus_port)
            except prometheus.PrometheusError as exc:
                console.print(f"[red]{exc}[/]")
                raise typer.Exit(1) from None
            console.print(
                f"[green]prometheus ready[/] (http://127.0.0.1:{prometheus_port}, "
                f"rules and alerts from {prometheus.PROMETHEUS_DIR}, data in {prometheus_data})"
            )
        deadline = time.monotonic() + timeout_s
        waiting = {name for name, _, port in procs if port}
        while waiting:
            for name, p, port in procs:
                if p.poll() is not None:
                    console.print(f"[red]{name} exited with code {p.returncode}[/]")
                    raise typer.Exit(1)
                if name in waiting and port:
                    with contextlib.suppress(httpx.HTTPError):
                        if (
                            httpx.get(f"http://127.0.0.1:{port}/readyz", timeout=2).status_code
                            == 200
                        ):
                            waiting.discard(name)
                            console.print(f"[green]{name} ready[/] (HTTP :{port})")
            if time.monotonic() > deadline:
                console.print(
                    f"[red]not ready after {timeout_s:.0f} s: {', '.join(sorted(waiting))}[/]"
                )
                raise typer.Exit(1)
            time.sleep(0.5)
        console.print(
            "all services ready: critic :50051, generator :50052, trainer :50053 "
            "(gRPC); Ctrl-C stops them"
        )
        while all(p.poll() is None for _, p, _ in procs):
            time.sleep(0.5)
        for name, p, _ in procs:
            if p.poll() is not None:
                console.print(f"[red]{name} exited with code {p.returncode}; stopping the rest[/]")
        raise typer.Exit(1)
    except KeyboardInterrupt:
        console.print("stopping…")
    finally:
        stop_all()
