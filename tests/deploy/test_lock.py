"""The lock files: they pin every dependency pyproject.toml declares, torch's CPU and CUDA builds
apart, and they are what `tools/lock/lock.sh` (`make lock`) writes from pyproject.toml today."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import tomllib
from pathlib import Path

import pytest
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name
from packaging.version import Version

from tests.deploy.conftest import ROOT, tool

REQ = ROOT / "requirements"
PIN = re.compile(r"^([A-Za-z0-9][A-Za-z0-9._-]*)==(\S+)\s*$")


def read_lock(path: Path) -> dict[str, Version]:
    """name -> pinned version of a lock file; every requirement line must be an exact pin."""
    pins: dict[str, Version] = {}
    for n, line in enumerate(path.read_text().splitlines(), 1):
        text = line.split("#", 1)[0].strip()
        if not text:
            continue
        m = PIN.match(text)
        assert m, f"{path.name}:{n}: not an exact name==version pin: {line!r}"
        pins[canonicalize_name(m[1])] = Version(m[2])
    return pins


def declared() -> list[Requirement]:
    """Every requirement of pyproject.toml (dependencies and every extra), tools.in's too."""
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    reqs = [Requirement(r) for r in project["dependencies"]]
    for extra in project["optional-dependencies"].values():
        reqs += [Requirement(r) for r in extra]
    for line in (REQ / "tools.in").read_text().splitlines():
        if line.strip() and not line.lstrip().startswith("#"):
            reqs.append(Requirement(line))
    return [r for r in reqs if canonicalize_name(r.name) != "lift-suite"]


@pytest.mark.parametrize("lock", ["lock.txt", "lock-cuda.txt"])
def test_lock_pins_every_declared_dependency(lock: str) -> None:
    pins = read_lock(REQ / lock)
    env = {"python_version": "3.11", "sys_platform": "linux", "platform_machine": "x86_64"}
    problems = []
    for req in declared():
        if req.marker is not None and not req.marker.evaluate(env):
            continue
        got = pins.get(canonicalize_name(req.name))
        if got is None:
            problems.append(f"{req} is not pinned")
        elif not req.specifier.contains(got, prereleases=True):
            problems.append(f"{req} but the lock pins {got}")
    assert not problems, f"{lock}: " + "; ".join(problems) + " (run `make lock` and commit)"


def test_cpu_and_cuda_locks_differ_only_in_torch_and_its_cuda_libraries() -> None:
    cpu, cuda = read_lock(REQ / "lock.txt"), read_lock(REQ / "lock-cuda.txt")
    assert str(cpu["torch"]) == "2.13.0+cpu"
    assert str(cuda["torch"]) == "2.13.0"
    assert not [n for n in cpu if n.startswith(("nvidia-", "cuda-")) or n == "triton"], (
        "the CPU lock pulls CUDA libraries"
    )
    assert "nvidia-cublas" in cuda and "nvidia-cudnn-cu13" in cuda
    # Everything both images share runs at the same version in both variants.
    differ = {n: (cpu[n], cuda[n]) for n in cpu.keys() & cuda.keys() if cpu[n] != cuda[n]}
    assert set(differ) == {"torch"}, differ
    # Every CPU pin is in the CUDA lock too (the CUDA lock adds only CUDA libraries).
    assert cpu.keys() <= cuda.keys(), cpu.keys() - cuda.keys()


def test_make_setup_installs_torch_from_the_lock() -> None:
    torch_cpu = read_lock(REQ / "torch-cpu.txt")["torch"]
    assert torch_cpu == read_lock(REQ / "lock.txt")["torch"]
    assert read_lock(REQ / "torch-cuda.txt")["torch"] == read_lock(REQ / "lock-cuda.txt")["torch"]


def test_lock_is_what_make_lock_writes_today(tmp_path: Path) -> None:
    """Re-resolving from pyproject.toml (current pins preferred) changes nothing: a dependency
    added to pyproject.toml without `make lock` fails here."""
    uv = tool("uv", "requirements/tools.in pins it")
    if not any(
        Path(os.environ.get("TORCH_CPU_FIND_LINKS", "/opt/wheels")).glob("torch-2.13.0+cpu-*.whl")
    ):
        pytest.fail(
            "no torch-2.13.0+cpu wheel in /opt/wheels: set TORCH_CPU_FIND_LINKS (tools/lock/lock.sh)"
        )
    for name in ("lock.txt", "lock-cuda.txt"):
        shutil.copy(REQ / name, tmp_path / name)
    run = subprocess.run(
        ["bash", str(ROOT / "tools/lock/lock.sh")],
        env={**os.environ, "UV": uv, "LOCK_DIR": str(tmp_path)},
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert run.returncode == 0, run.stderr[-3000:]
    for name in ("lock.txt", "lock-cuda.txt"):
        assert (tmp_path / name).read_text() == (REQ / name).read_text(), (
            f"requirements/{name} is out of date with pyproject.toml: run `make lock` and commit"
        )
