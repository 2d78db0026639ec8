"""The Prometheus that `lift up --with-prometheus` runs: packaged config and rules, start, ready.

The scrape config and the rule files ship inside the package (``lift/data/prometheus``;
``deploy/prometheus`` links to them), so a non-editable install runs the same rules and alerts
as a deployment. Prometheus itself is Debian's ``prometheus`` binary, not a Python dependency.
"""

from __future__ import annotations

import shutil
import subprocess
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import yaml

import lift

PROMETHEUS_DIR = Path(lift.__file__).resolve().parent / "data" / "prometheus"
"""The packaged scrape config (prometheus.yml) and its rules/ directory."""
CONFIG = PROMETHEUS_DIR / "prometheus.yml"


class PrometheusError(RuntimeError):
    """Prometheus is missing, the config does not fit, or it did not start."""


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
    """The packaged scrape config, as committed."""
    data: dict[str, Any] = yaml.safe_load(CONFIG.read_text(encoding="utf-8"))
    return data


def render_config(
    targets: Mapping[str, Sequence[str]] | None = None, interval_s: float | None = None
) -> dict[str, Any]:
    """The packaged config with absolute rule paths and, optionally, other targets per job.

    ``targets`` maps a job name of the packaged config (``lift-critic``, ``lift-generator``,
    ``lift-trainer``, ``triton``) to its ``host:port`` list; jobs not named keep their targets.
    ``interval_s`` overrides the scrape and rule evaluation intervals (tests use 1 s).
    """
    config = load_config()
    config["rule_files"] = [str(PROMETHEUS_DIR / f) for f in config.get("rule_files", [])]
    jobs = {j["job_name"]: j for j in config["scrape_configs"]}
    for job, addrs in (targets or {}).items():
        if job not in jobs:
            raise PrometheusError(f"{CONFIG} has no job {job!r}")
        jobs[job]["static_configs"] = [{"targets": list(addrs)}]
    if interval_s is not None:
        config["global"]["scrape_interval"] = f"{interval_s:g}s"
        config["global"]["evaluation_interval"] = f"{interval_s:g}s"
    return config


def write_config(
    path: Path,
    targets: Mapping[str, Sequence[str]] | None = None,
    interval_s: float | None = None,
) -> Path:
    """Write :func:`render_config` to ``path`` (Prometheus reads a file)."""
    path.write_text(yaml.safe_dump(render_config(targets, interval_s), sort_keys=False))
    return path


def start(config: Path, port: int, data_dir: Path) -> subprocess.Popen[bytes]:
    """Start Prometheus on ``127.0.0.1:port`` with its TSDB (and its log) in ``data_dir``."""
    data_dir.mkdir(parents=True, exist_ok=True)
    with (data_dir / "prometheus.log").open("wb") as log:
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
