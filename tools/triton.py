"""Run the Triton Inference Server that ships in the ``nvidia-pytriton`` wheel, on CPU.

The server lives in its own virtualenv (``.triton``, made by ``make setup``):
pytriton pins numpy<2, and the Python backend's stub embeds the interpreter of
that venv. Three things make it start (see deploy/triton/README.md):

- the Python backend needs the stub built for the venv's Python version, which
  the wheel keeps apart: it is copied with the backend into a work directory;
- ``LD_LIBRARY_PATH`` names the wheel's bundled libraries (a copied stub loses
  its RPATH) and the directory of the venv interpreter's ``libpython``;
- the venv's ``bin`` comes first on ``PATH``: the stub finds its ``sys.prefix``
  (and so numpy and onnxruntime) from the ``python3`` it sees there.

A stub that cannot start makes the server hang in "loading" rather than exit,
so readiness always has a deadline.
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
from dataclasses import dataclass
from pathlib import Path

from tools.processes import StartError, free_port, wait_ready

ROOT = Path(__file__).resolve().parent.parent
VENV = ROOT / ".triton"
REPOSITORY = ROOT / "deploy" / "triton" / "cpu"


class TritonError(RuntimeError):
    """The server is not installed, or did not become ready."""


def _venv_facts(venv: Path) -> tuple[Path, str, Path]:
    """(site-packages, "3.11", libpython dir) of the server's venv."""
    python = venv / "bin" / "python"
    if not python.is_file():
        raise TritonError(
            f"{venv} is missing: run `make setup` (it creates the Triton venv with nvidia-pytriton)"
        )
    code = (
        "import sys, sysconfig; print(sysconfig.get_paths()['purelib']); "
        "print(f'{sys.version_info[0]}.{sys.version_info[1]}'); "
        "print(sysconfig.get_config_var('LIBDIR'))"
    )
    out = subprocess.run([str(python), "-c", code], capture_output=True, text=True, check=True)
    site, version, libdir = out.stdout.split("\n")[:3]
    return Path(site), version, Path(libdir)


@dataclass
class TritonServer:
    """A running tritonserver and its ports."""

    process: subprocess.Popen[bytes]
    http_port: int
    grpc_port: int
    metrics_port: int
    log: Path

    @property
    def grpc_url(self) -> str:
        """host:port for tritonclient.grpc."""
        return f"127.0.0.1:{self.grpc_port}"

    def stop(self, timeout_s: float = 30.0) -> None:
        """SIGINT (Triton's clean shutdown), then kill after ``timeout_s``."""
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGINT)
            try:
                self.process.wait(timeout_s)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()


def start(
    work_dir: Path,
    repository: Path = REPOSITORY,
    env: dict[str, str] | None = None,
    venv: Path = VENV,
    ports: tuple[int, int, int] | None = None,
    ready_timeout_s: float = 120.0,
) -> TritonServer:
    """Start tritonserver on ``repository`` (CPU, Python backend) and wait until it is ready."""
    site, version, libdir = _venv_facts(venv)
    wheel = site / "pytriton" / "tritonserver"
    stub = wheel / "python_backend_stubs" / version / "triton_python_backend_stub"
    if not stub.is_file():
        raise TritonError(f"nvidia-pytriton ships no Python-backend stub for Python {version}")
    backends = work_dir / "backends" / "python"
    backends.mkdir(parents=True, exist_ok=True)
    for f in ("libtriton_python.so", "triton_python_backend_utils.py"):
        shutil.copy2(wheel / "backends" / "python" / f, backends / f)
    shutil.copy2(stub, backends / stub.name)
    caches = work_dir / "caches"
    if not caches.exists():
        shutil.copytree(wheel / "caches", caches)
    http, grpc, metrics = ports or (free_port(), free_port(), free_port())
    libs = [str(libdir), str(site / "nvidia_pytriton.libs")]
    full_env = {
        **os.environ,
        **(env or {}),
        "PATH": f"{venv / 'bin'}:{os.environ.get('PATH', '')}",
        "LD_LIBRARY_PATH": ":".join([*libs, os.environ.get("LD_LIBRARY_PATH", "")]).rstrip(":"),
    }
    log = work_dir / "tritonserver.log"
    cmd = [
        str(wheel / "bin" / "tritonserver"),
        f"--model-repository={repository}",
        f"--backend-directory={work_dir / 'backends'}",
        f"--cache-directory={caches}",
        "--http-address=127.0.0.1",
        "--grpc-address=127.0.0.1",
        f"--http-port={http}",
        f"--grpc-port={grpc}",
        f"--metrics-port={metrics}",
        "--allow-gpu-metrics=false",
        "--pinned-memory-pool-byte-size=0",
        "--cuda-memory-pool-byte-size=0:0",
        "--exit-on-error=true",
        "--strict-readiness=true",
    ]
    with log.open("wb") as out:
        proc = subprocess.Popen(cmd, env=full_env, stdout=out, stderr=subprocess.STDOUT)
    server = TritonServer(proc, http, grpc, metrics, log)
    url = f"http://127.0.0.1:{http}/v2/health/ready"
    try:
        wait_ready(proc, url, "tritonserver", ready_timeout_s, interval_s=0.25)
    except StartError as exc:
        server.stop(5)
        raise TritonError(f"{exc}: " + log.read_text(errors="replace")[-2000:]) from None
    return server
