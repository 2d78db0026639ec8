"""The wheel, installed non-editable into fresh virtualenvs, runs without the repository.

1. A plain install (base dependencies from PyPI, no extras) imports ``lift.client`` and runs the
   CLI's remote commands, and has no torch, transformers, diffusers, … installed.
2. An install with the services' dependencies (borrowed from this venv through a ``.pth`` line,
   to keep the test fast; the project itself comes only from the wheel) serves the critic,
   answers ``lift critique --server`` (from the plain install too), and runs
   ``lift up --with-prometheus`` on the packaged Prometheus config and rules.

Everything runs from a temporary working directory, so nothing resolves inside the repository.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import sysconfig
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from tools.processes import free_port, wait_ready

pytestmark = [pytest.mark.integration, pytest.mark.timeout(600)]

ROOT = Path(__file__).resolve().parents[2]
HEAVY = ["torch", "transformers", "diffusers", "peft", "accelerate", "onnx", "onnxruntime",
         "opencv-python-headless", "av"]  # fmt: skip


def _run(cmd: list[str], cwd: Path) -> subprocess.CompletedProcess[str]:
    r = subprocess.run(cmd, cwd=cwd, capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, f"{cmd}: {r.stdout[-2000:]}\n{r.stderr[-3000:]}"
    return r


def _venv(path: Path) -> Path:
    """A fresh venv without pip (this venv's pip installs into it with --python)."""
    _run([sys.executable, "-m", "venv", "--without-pip", str(path)], cwd=path.parent)
    return path / "bin" / "python"


def _site_packages(python: Path) -> Path:
    out = _run([str(python), "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
               cwd=python.parent)  # fmt: skip
    return Path(out.stdout.strip())


def _pip(python: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return _run(
        [sys.executable, "-m", "pip", "--python", str(python), "--disable-pip-version-check",
         "install", "-q", *args],
        cwd=python.parent,
    )  # fmt: skip


@pytest.fixture(scope="module")
def wheel(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The project's wheel, built from a copy of the sources (the repository stays clean)."""
    src = tmp_path_factory.mktemp("src")
    for name in ("lift", "services"):
        shutil.copytree(
            ROOT / name,
            src / name,
            symlinks=True,
            ignore=shutil.ignore_patterns("__pycache__", "*.pyc"),
        )
    for name in ("pyproject.toml", "README.md"):
        shutil.copy(ROOT / name, src / name)
    out = tmp_path_factory.mktemp("dist")
    _run([sys.executable, "-m", "pip", "wheel", "-q", "--no-deps", "--no-build-isolation",
          "-w", str(out), str(src)], cwd=out)  # fmt: skip
    (whl,) = out.glob("lift_suite-*.whl")
    return whl


@pytest.fixture(scope="module")
def plain(wheel: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A venv with the wheel and its base dependencies (from PyPI): no extras."""
    python = _venv(tmp_path_factory.mktemp("venvs") / "plain")
    _pip(python, str(wheel))
    return python


@pytest.fixture(scope="module")
def served(wheel: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A venv with the wheel non-editable, the services' dependencies borrowed from this venv."""
    python = _venv(tmp_path_factory.mktemp("venvs") / "served")
    _pip(python, "--no-deps", str(wheel))
    # After the install, so pip never sees this venv's (editable) lift-suite. A directory named
    # in a .pth file joins sys.path after the venv's own site-packages, and .pth files inside it
    # (this venv's editable hook) are not run: `lift` can only come from the wheel.
    site = _site_packages(python)
    (site / "zz-borrowed-deps.pth").write_text(sysconfig.get_paths()["purelib"] + "\n")
    return python


def test_the_wheel_holds_the_runtime_data_and_no_dev_tools(served: Path) -> None:
    site = _site_packages(served)
    lift = site / "lift"
    assert (lift / "templates.toml").is_file()
    assert (lift / "data" / "prometheus" / "prometheus.yml").is_file()
    assert sorted(p.name for p in (lift / "data" / "prometheus" / "rules").glob("*.yml")) == [
        "lift-alerts.yml",
        "lift-recording.yml",
    ]
    assert (lift / "services" / "critic" / "engine.py").is_file()
    assert not (lift / "services").is_symlink()  # real files, not a link into a checkout
    assert not (site / "services").exists() and not (site / "tools").exists()
    for gone in ("triton.py", "prometheus.py", "processes.py", "protogen.py"):
        assert not (lift / gone).exists(), gone


def test_a_plain_install_has_the_clients_and_no_torch(plain: Path, tmp_path: Path) -> None:
    installed = _run([sys.executable, "-m", "pip", "--python", str(plain), "list",
                      "--format=json"], cwd=tmp_path)  # fmt: skip
    names = {d["name"].lower() for d in json.loads(installed.stdout)}
    assert "lift-suite" in names
    assert names.isdisjoint(HEAVY), names & set(HEAVY)
    code = (
        "import sys, lift, lift.client\n"
        "from lift.client import CriticClient, GeneratorClient, TrainerClient\n"
        "heavy = [m for m in ('torch', 'transformers', 'diffusers') if m in sys.modules]\n"
        "print(lift.__file__, heavy)\n"
    )
    out = _run([str(plain), "-c", code], cwd=tmp_path).stdout.split()
    assert out[0].startswith(str(plain.parent.parent)) and out[1] == "[]"
    _run([str(plain.parent / "lift"), "--help"], cwd=tmp_path)


@pytest.fixture()
def critic(served: Path, tmp_path: Path) -> Iterator[str]:
    """`lift critic serve` from the served venv."""
    grpc_port, http_port = free_port(), free_port()
    log = (tmp_path / "critic.log").open("wb")
    proc = subprocess.Popen(
        [str(served.parent / "lift"), "critic", "serve", "--grpc-port", str(grpc_port),
         "--http-port", str(http_port)],
        cwd=tmp_path, stdout=log, stderr=subprocess.STDOUT,
    )  # fmt: skip
    try:
        wait_ready(proc, f"http://127.0.0.1:{http_port}/readyz", "the critic", timeout_s=120)
        yield f"127.0.0.1:{grpc_port}"
    finally:
        proc.send_signal(signal.SIGTERM)
        proc.wait(30)
        log.close()


def test_critic_serve_and_critique_from_installed_wheels(
    served: Path, plain: Path, critic: str, mp4s: dict[str, bytes], tmp_path: Path
) -> None:
    where = _run([str(served), "-c", "import lift; print(lift.__file__)"], cwd=tmp_path)
    assert where.stdout.strip().startswith(str(served.parent.parent))
    clip = tmp_path / "clean.mp4"
    clip.write_bytes(mp4s["clean"])
    for python in (served, plain):  # the base install's remote command as well
        r = _run([str(python.parent / "lift"), "critique", str(clip), "--prompt", "shapes",
                  "--server", critic, "--json"], cwd=tmp_path)  # fmt: skip
        critique = json.loads(r.stdout)
        assert critique["file"] == str(clip) and len(critique["dimensions"]) == 3


@pytest.mark.skipif(shutil.which("prometheus") is None, reason="needs Debian's prometheus")
def test_lift_up_with_prometheus_from_the_installed_wheel(served: Path, tmp_path: Path) -> None:
    env = {
        **os.environ,
        **{
            f"LIFT_{svc}_{kind}_PORT": str(free_port())
            for svc in ("CRITIC", "GENERATOR", "TRAINER")
            for kind in ("GRPC", "HTTP")
        },
        "LIFT_TRAINER_DATA_DIR": str(tmp_path / "trainer"),
    }
    prom_port = free_port()
    log = tmp_path / "up.log"
    with log.open("wb") as out:
        proc = subprocess.Popen(
            [str(served.parent / "lift"), "up", "--with-prometheus", "--prometheus-port",
             str(prom_port), "--prometheus-data", str(tmp_path / "prom")],
            cwd=tmp_path, env=env, stdout=subprocess.DEVNULL, stderr=out,
        )  # fmt: skip
    try:
        deadline = time.monotonic() + 300
        while "all services ready" not in log.read_text() and proc.poll() is None:
            assert time.monotonic() < deadline, log.read_text()[-3000:]
            time.sleep(0.5)
        assert proc.poll() is None, log.read_text()[-3000:]
        site = str(_site_packages(served))
        text = " ".join(log.read_text().split())
        assert f"prometheus ready (http://127.0.0.1:{prom_port})" in text
        assert f"rules and alerts from {site}/lift/data/prometheus" in text
    finally:
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(90) == 0
