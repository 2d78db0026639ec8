"""`lift up`: ports from the services' settings, every child stopped on SIGTERM, deaths explained."""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import httpx
import psutil
import pytest
import yaml

from tools.processes import free_port

pytestmark = [pytest.mark.integration, pytest.mark.timeout(600)]


def _env(tmp_path: Path) -> tuple[dict[str, str], dict[str, int]]:
    """Non-default ports for every service, through the env the services' settings read."""
    ports = {
        f"LIFT_{svc}_{kind}_PORT": free_port()
        for svc in ("CRITIC", "GENERATOR", "TRAINER")
        for kind in ("GRPC", "HTTP")
    }
    ports["LIFT_FEEDBACK_HTTP_PORT"] = free_port()  # HTTP only
    env = {
        **os.environ,
        **{k: str(v) for k, v in ports.items()},
        "LIFT_TRAINER_DATA_DIR": str(tmp_path / "trainer"),
        "LIFT_FEEDBACK_DATA": str(tmp_path / "feedback"),
        "LIFT_FEEDBACK_LOG_LEVEL": "WARNING",
        "LIFT_CRITIC_LOG_LEVEL": "WARNING",
        "LIFT_GENERATOR_LOG_LEVEL": "WARNING",
        "LIFT_TRAINER_LOG_LEVEL": "WARNING",
    }
    return env, ports


def _start(args: list[str], env: dict[str, str], log: Path) -> subprocess.Popen[bytes]:
    with log.open("wb") as out:
        return subprocess.Popen(
            [sys.executable, "-m", "lift.cli.main", "up", *args],
            env=env,
            stdout=subprocess.DEVNULL,
            stderr=out,
        )


def _wait_for(log: Path, text: str, proc: subprocess.Popen[bytes], timeout_s: float) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if text in log.read_text(errors="replace"):
            return
        if proc.poll() is not None:
            break
        time.sleep(0.5)
    raise AssertionError(f"no {text!r} in lift up's output:\n{log.read_text()[-4000:]}")


def _gone(pids: list[int]) -> list[int]:
    """The pids of ``pids`` that still run (zombies count as gone)."""
    alive = []
    for pid in pids:
        try:
            if psutil.Process(pid).status() != psutil.STATUS_ZOMBIE:
                alive.append(pid)
        except psutil.NoSuchProcess:
            pass
    return alive


def test_sigterm_stops_every_child(tmp_path: Path) -> None:
    env, ports = _env(tmp_path)
    log = tmp_path / "up.log"
    args = ["--timeout-s", "300"]
    prometheus = shutil.which("prometheus") is not None
    if prometheus:
        prom_port = free_port()
        args += ["--with-prometheus", "--prometheus-port", str(prom_port),
                 "--prometheus-data", str(tmp_path / "prom")]  # fmt: skip
    proc = _start(args, env, log)
    try:
        _wait_for(log, "all services ready", proc, 300)
        text = log.read_text()
        for svc in ("critic", "generator", "trainer"):
            grpc_port = ports[f"LIFT_{svc.upper()}_GRPC_PORT"]
            http_port = ports[f"LIFT_{svc.upper()}_HTTP_PORT"]
            assert f"{svc} ready (gRPC :{grpc_port}, HTTP :{http_port})" in text
            assert httpx.get(f"http://127.0.0.1:{http_port}/readyz").status_code == 200
        feedback_port = ports["LIFT_FEEDBACK_HTTP_PORT"]
        assert f"feedback ready (HTTP :{feedback_port})" in text
        assert httpx.get(f"http://127.0.0.1:{feedback_port}/readyz").status_code == 200
        if prometheus:
            config = yaml.safe_load((tmp_path / "prom" / "prometheus.yml").read_text())
            jobs = {
                j["job_name"]: j["static_configs"][0]["targets"] for j in config["scrape_configs"]
            }
            assert jobs["lift-critic"] == [f"127.0.0.1:{ports['LIFT_CRITIC_HTTP_PORT']}"]
            assert jobs["lift-feedback"] == [f"127.0.0.1:{feedback_port}"]
            assert all(Path(f).is_file() for f in config["rule_files"])
        children = [p.pid for p in psutil.Process(proc.pid).children(recursive=True)]
        assert len(children) >= (5 if prometheus else 4)
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=90) == 0
    finally:
        if proc.poll() is None:
            proc.kill()
    assert "SIGTERM: stopping" in log.read_text()
    assert _gone(children) == []
    for port in ports.values():  # nothing listens any more (a bind could trip on TIME_WAIT)
        with pytest.raises(ConnectionRefusedError):
            socket.create_connection(("127.0.0.1", port), timeout=2).close()


def test_a_child_that_dies_is_named_with_its_reason_and_the_rest_stop(tmp_path: Path) -> None:
    env, ports = _env(tmp_path)
    log = tmp_path / "up.log"
    with socket.socket() as taken:  # the critic cannot bind its HTTP port
        taken.bind(("127.0.0.1", ports["LIFT_CRITIC_HTTP_PORT"]))
        taken.listen()
        proc = _start(["--timeout-s", "300"], env, log)
        _wait_for(log, "trainer started (pid", proc, 60)
        children = [p.pid for p in psutil.Process(proc.pid).children(recursive=True)]
        assert proc.wait(timeout=240) == 1
    text = log.read_text()
    assert "critic exited with code 1; stopping the rest" in text
    assert "last lines of critic:" in text and "Address already in use" in text
    assert _gone(children) == []
