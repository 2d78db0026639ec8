"""`lift up`: critic, generator, trainer and feedback (and optionally Prometheus) on this machine.

Each service runs as its own child process (`lift <service> serve`). Ports come from the same
settings classes the services read (``LIFT_CRITIC_GRPC_PORT``, ``LIFT_TRAINER_HTTP_PORT``, …), so
`lift up` polls the ports the children really bind. SIGINT and SIGTERM stop every child; a child
that dies is reported with its exit code or signal and its last log lines, and the rest stop.
"""

from __future__ import annotations

import collections
import contextlib
import os
import signal
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from types import FrameType
from typing import IO, Annotated, Any

import typer

from lift.cli.common import needs_extra, settings_or_exit

_TAIL_LINES = 20
_HTTP_ONLY = frozenset({"feedback"})
"""Services with no gRPC front (their settings still carry the shared gRPC fields)."""
_STOP_GRACE_S = 30.0


@dataclass
class _Service:
    """One service `lift up` runs: its name, its serve command and its settings."""

    name: str
    settings: Any

    @property
    def probe_host(self) -> str:
        """Where to reach it from here (a wildcard bind is reachable on loopback)."""
        host = str(self.settings.host)
        return "127.0.0.1" if host in ("0.0.0.0", "::", "") else host


@dataclass
class _Child:
    """A started child process, where it answers when ready, and the tail of its log."""

    name: str
    proc: subprocess.Popen[bytes]
    ready_url: str | None
    describe: str
    tail: collections.deque[str] = field(
        default_factory=lambda: collections.deque(maxlen=_TAIL_LINES)
    )
    log_file: Path | None = None

    def last_lines(self) -> list[str]:
        """The last log lines the child wrote (from its pipe, or from its log file)."""
        if self.log_file is not None:
            with contextlib.suppress(OSError):
                text = self.log_file.read_text(encoding="utf-8", errors="replace")
                return text.splitlines()[-_TAIL_LINES:]
        return list(self.tail)


class _StopRequested(Exception):
    """SIGINT or SIGTERM arrived: stop everything."""

    def __init__(self, signum: int) -> None:
        super().__init__(signal.Signals(signum).name)
        self.signum = signum


def exit_reason(returncode: int) -> str:
    """'exited with code 1' or 'was killed by SIGKILL' (Popen's negative return codes)."""
    if returncode < 0:
        try:
            name = signal.Signals(-returncode).name
        except ValueError:
            name = f"signal {-returncode}"
        return f"was killed by {name}"
    return f"exited with code {returncode}"


def _services() -> list[_Service]:
    """The four services with the settings they will read (env ``LIFT_<SERVICE>_*``)."""
    with needs_extra("all", "lift up"):
        from lift.services.critic.settings import CriticSettings
        from lift.services.feedback.settings import FeedbackSettings
        from lift.services.generator.settings import GeneratorSettings
        from lift.services.trainer.settings import TrainerSettings

    return [
        _Service("critic", settings_or_exit("critic", CriticSettings, {})),
        _Service("generator", settings_or_exit("generator", GeneratorSettings, {})),
        _Service("trainer", settings_or_exit("trainer", TrainerSettings, {})),
        _Service("feedback", settings_or_exit("feedback", FeedbackSettings, {})),
    ]


def _die_with_parent() -> None:  # pragma: no cover - runs in the child between fork and exec
    """Linux: the child gets SIGTERM if `lift up` itself dies (even by SIGKILL)."""
    with contextlib.suppress(Exception):
        import ctypes

        ctypes.CDLL("libc.so.6", use_errno=True).prctl(1, signal.SIGTERM)  # PR_SET_PDEATHSIG


def _pump(child: _Child, stream: IO[bytes]) -> None:
    """Copy a child's output to our stderr, each line prefixed with its name; keep a tail."""
    for raw in stream:
        line = raw.decode("utf-8", errors="replace").rstrip("\n")
        child.tail.append(line)
        with contextlib.suppress(OSError, ValueError):
            sys.stderr.write(f"{child.name} | {line}\n")
            sys.stderr.flush()


def _trainer_env(services: list[_Service]) -> dict[str, str]:
    """The trainer reaches the generator and critic on the ports `lift up` gives them.

    Its defaults (and so its endpoint allow-list) would otherwise be the default ports
    even when LIFT_GENERATOR_GRPC_PORT / LIFT_CRITIC_GRPC_PORT moved the services.
    Addresses the operator set for the trainer win.
    """
    env = dict(os.environ)
    for svc in services:
        if svc.name in ("generator", "critic"):
            key = f"LIFT_TRAINER_{svc.name.upper()}_ADDRESS"
            env.setdefault(key, f"{svc.probe_host}:{svc.settings.grpc_port}")
    return env


def _start_service(svc: _Service, env: dict[str, str] | None = None) -> _Child:
    s = svc.settings
    grpc_port = None if svc.name in _HTTP_ONLY else s.grpc_port
    cmd = [sys.executable, "-m", "lift.cli.main", svc.name, "serve"]
    if grpc_port is not None:
        cmd += ["--grpc-port", str(grpc_port)]
    cmd += ["--http-port", str(s.http_port)]
    proc = subprocess.Popen(
        cmd,
        env=env,
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        preexec_fn=_die_with_parent if sys.platform == "linux" else None,
    )
    child = _Child(
        svc.name,
        proc,
        f"http://{svc.probe_host}:{s.http_port}/readyz",
        (f"gRPC :{grpc_port}, " if grpc_port is not None else "") + f"HTTP :{s.http_port}",
    )
    assert proc.stdout is not None
    threading.Thread(target=_pump, args=(child, proc.stdout), daemon=True).start()
    return child


def _start_prometheus(
    services: list[_Service], port: int, data_dir: Path | None, say: Callable[[str], None]
) -> _Child:
    from lift.cli import prometheus

    if data_dir is None:
        data_dir = Path(tempfile.mkdtemp(prefix="lift-prometheus-"))
    data_dir.mkdir(parents=True, exist_ok=True)
    targets = {f"lift-{s.name}": [f"{s.probe_host}:{s.settings.http_port}"] for s in services}
    config = prometheus.write_config(data_dir / "prometheus.yml", targets)
    proc = prometheus.start(config, port, data_dir)
    say(
        f"prometheus: rules and alerts from {prometheus.PROMETHEUS_DIR}, config {config}, "
        f"data in {data_dir}"
    )
    return _Child(
        "prometheus",
        proc,
        f"http://127.0.0.1:{port}/-/ready",
        f"http://127.0.0.1:{port}",
        log_file=data_dir / "prometheus.log",
    )


def _stop_all(children: list[_Child], say: Callable[[str], None]) -> None:
    """SIGTERM every live child, wait for each; a second signal or the grace period kills."""

    def kill_all(signum: int, frame: FrameType | None) -> None:
        for c in children:
            if c.proc.poll() is None:
                c.proc.kill()

    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, kill_all)
    for c in children:
        if c.proc.poll() is None:
            c.proc.send_signal(signal.SIGTERM)
    deadline = time.monotonic() + _STOP_GRACE_S
    for c in children:
        try:
            c.proc.wait(timeout=max(0.0, deadline - time.monotonic()))
        except subprocess.TimeoutExpired:
            c.proc.kill()
            c.proc.wait()
            say(f"[yellow]{c.name} did not stop in {_STOP_GRACE_S:.0f} s; killed[/]")


def _report_death(c: _Child, say: Callable[[str], None]) -> None:
    from rich.markup import escape

    say(f"[red]{c.name} {exit_reason(c.proc.returncode)}; stopping the rest[/]")
    lines = c.last_lines()
    if lines:
        say(f"[red]last lines of {c.name}:[/]")
        for line in lines:
            say(f"  {escape(line)}")


def _ready(url: str) -> bool:
    import httpx

    try:
        return httpx.get(url, timeout=2).status_code == 200
    except httpx.HTTPError:
        return False


def up(
    timeout_s: Annotated[float, typer.Option(help="Wait this long for readiness")] = 300.0,
    with_prometheus: Annotated[
        bool,
        typer.Option(
            "--with-prometheus",
            help="Also run Prometheus with the packaged scrape config, rules and alerts "
            "(the same files as deploy/prometheus), scraping the services' HTTP ports",
        ),
    ] = False,
    prometheus_port: Annotated[int, typer.Option(help="Prometheus web port")] = 9090,
    prometheus_data: Annotated[
        Path | None, typer.Option(help="Prometheus TSDB directory (default: a temp dir)")
    ] = None,
) -> None:
    """Start critic, generator, trainer and feedback (ports from LIFT_<SERVICE>_* env); stop all on Ctrl-C.

    SIGINT and SIGTERM stop every child. If one dies, `lift up` says which and why (exit code
    or signal, its last log lines), stops the others and exits 1.
    """
    from rich.console import Console

    console = Console(stderr=True)

    def say(text: str) -> None:
        console.print(text, highlight=False, soft_wrap=True)

    def on_signal(signum: int, frame: FrameType | None) -> None:
        raise _StopRequested(signum)

    services = _services()
    children: list[_Child] = []
    previous = {sig: signal.signal(sig, on_signal) for sig in (signal.SIGINT, signal.SIGTERM)}
    try:
        for svc in services:
            env = _trainer_env(services) if svc.name == "trainer" else None
            children.append(_start_service(svc, env))
            say(f"{svc.name} started (pid {children[-1].proc.pid})")
        if with_prometheus:
            from lift.cli.prometheus import PrometheusError

            try:
                children.append(_start_prometheus(services, prometheus_port, prometheus_data, say))
            except PrometheusError as exc:
                say(f"[red]{exc}[/]")
                raise typer.Exit(1) from None
        deadline = time.monotonic() + timeout_s
        waiting = [c for c in children if c.ready_url]
        while waiting:
            for c in children:
                if c.proc.poll() is not None:
                    _report_death(c, say)
                    raise typer.Exit(1)
            for c in list(waiting):
                assert c.ready_url is not None
                if _ready(c.ready_url):
                    waiting.remove(c)
                    say(f"[green]{c.name} ready[/] ({c.describe})")
            if waiting and time.monotonic() > deadline:
                names = ", ".join(c.name for c in waiting)
                say(f"[red]not ready after {timeout_s:.0f} s: {names}[/]")
                raise typer.Exit(1)
            if waiting:
                time.sleep(0.5)
        say(
            "all services ready: "
            + "; ".join(f"{c.name} {c.describe}" for c in children)
            + ". Ctrl-C (or SIGTERM) stops them"
        )
        while True:
            for c in children:
                if c.proc.poll() is not None:
                    _report_death(c, say)
                    raise typer.Exit(1)
            time.sleep(0.5)
    except _StopRequested as stop:
        say(f"{signal.Signals(stop.signum).name}: stopping…")
    finally:
        _stop_all(children, say)
        for sig, handler in previous.items():
            signal.signal(sig, handler)
