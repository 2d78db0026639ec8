"""A local Prometheus for the suite: config from deploy/prometheus, process start and readiness.

``lift up --with-prometheus`` runs Debian's ``prometheus`` binary on the committed
``deploy/prometheus/prometheus.yml`` (services on their default ports); the
observability tests write the same config with other targets through
:func:`write_config`, so both exercise the committed scrape jobs and rule files.
"""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path
from typing import Any

import yaml

from lift import processes

DEPLOY_DIR = Path(__file__).resolve().parent.parent / "deploy"
PROMETHEUS_DIR = DEPLOY_DIR / "prometheus"
CONFIG = PROMETHEUS_DIR / "prometheus.yml"


class PrometheusError(RuntimeError):
    """Prometheus is missing, or did not start."""


def binary(name: str = "prometheus") -> str:
    """Path of ``prometheus`` or ``promtool``; a clear error when the package is missing."""
    path = shutil.which(name)
    if path is None:
        raise PrometheusError(
            f"{name} is not installed: run `make setup` (it installs Debian's prometheus "
            "package) or `apt-get install prometheus`"
        )
    return path


def load_config() -> dict[str, Any]:
    """The committed scrape config."""
    if not CONFIG.is_file():
        raise PrometheusError(
            f"{CONFIG} is missing: --with-prometheus needs the suite's source checkout "
            "(pip install -e .)"
        )
    data: dict[str, Any] = yaml.safe_load(CONFIG.read_text(encoding="utf-8"))
    return data


def write_config(
    path: Path, targets: dict[str, list[str]] | None = None, interval_s: float | None = None
) -> Path:
    """The committed config with absolute rule paths and, optionally, other targets per job.

    ``targets`` maps a job name of the committed config to its ``host:port`` list;
    jobs not named keep their targets. ``interval_s`` overrides scrape and rule
    evaluation intervals (tests use 1 s).
    """
    config = load_config()
    config["rule_files"] = [str(PROMETHEUS_DIR / f) for f in config.get("rule_files", [])]
    jobs = {j["job_name"]: j for j in config["scrape_configs"]}
    for job, addrs in (targets or {}).items():
        if job not in jobs:
            raise PrometheusError(f"deploy/prometheus/prometheus.yml has no job {job!r}")
        jobs[job]["static_configs"] = [{"targets": list(addrs)}]
    if interval_s is not None:
        config["global"]["scrape_interval"] = f"{interval_s:g}s"
        config["global"]["evaluation_interval"] = f"{interval_s:g}s"
    path.write_text(yaml.safe_dump(config, sort_keys=False), encoding="utf-8")
    return path


def start(config: Path, port: int, data_dir: Path) -> subprocess.Popen[bytes]:
    """Start Prometheus on ``127.0.0.1:port`` with its TSDB in ``data_dir``."""
    data_dir.mkdir(parents=True, exist_ok=True)
    log = (data_dir / "prometheus.log").open("wb")
    return subprocess.Popen(
        [
            binary(),
            f"--config.file={config}",
            f"--storage.tsdb.path={data_dir}",
            f"--web.listen-address=127.0.0.1:{port}",
            "--web.enable-lifecycle",
        ],
        stdout=log,
        stderr=subprocess.STDOUT,
    )


def wait_ready(proc: subprocess.Popen[bytes], port: int, timeout_s: float = 60.0) -> None:
    """Block until Prometheus answers /-/ready; raise if it exits or times out."""
    try:
        processes.wait_ready(proc, f"http://127.0.0.1:{port}/-/ready", "prometheus", timeout_s)
    except processes.StartError as exc:
        raise PrometheusError(f"{exc} (see its log)") from None
