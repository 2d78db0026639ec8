"""The floors of the house: the import-linter contracts in pyproject.toml hold, and can fail.

`make lint` runs ``lint-imports`` on the tree. These tests run it too, and run it
on a copy of the package with one arrow turned upward, to prove the checker
catches a back-edge (a checker that cannot fail proves nothing).
"""

from __future__ import annotations

import pkgutil
import shutil
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest

import lift

ROOT = Path(__file__).resolve().parents[2]
LINT_IMPORTS = Path(sys.executable).with_name("lint-imports")

pytestmark = pytest.mark.skipif(
    not LINT_IMPORTS.exists(), reason="import-linter is not installed (the dev extra)"
)


def _config() -> dict:
    with (ROOT / "pyproject.toml").open("rb") as f:
        return tomllib.load(f)["tool"]["importlinter"]


def _lint(cwd: Path) -> subprocess.CompletedProcess[str]:
    """lint-imports with the repository's contracts, finding ``lift`` under ``cwd`` first."""
    return subprocess.run(
        [str(LINT_IMPORTS), "--config", str(cwd / "pyproject.toml"), "--no-cache"],
        cwd=cwd,
        env={"PYTHONPATH": str(cwd), "PATH": "/usr/bin:/bin"},
        capture_output=True,
        text=True,
        timeout=120,
    )


def _copy(tmp_path: Path) -> Path:
    """The package (service code included, the symlink resolved) and its contracts."""
    shutil.copytree(
        ROOT / "lift",
        tmp_path / "lift",
        symlinks=False,
        ignore=shutil.ignore_patterns("__pycache__"),
    )
    shutil.copy(ROOT / "pyproject.toml", tmp_path / "pyproject.toml")
    return tmp_path


def test_every_top_level_module_is_on_a_floor() -> None:
    (floors,) = [c for c in _config()["contracts"] if c["id"] == "floors"]
    named = {
        name.strip()
        for layer in floors["layers"]
        for name in layer.replace("|", ":").split(":")
        if name.strip()
    }
    modules = {f"lift.{m.name}" for m in pkgutil.iter_modules(lift.__path__)}
    assert modules - named == set(), "put the new module on a floor in pyproject.toml"
    assert named - modules == set(), "a floor names a module that does not exist"


def test_the_tree_keeps_every_contract() -> None:
    result = _lint(ROOT)
    assert result.returncode == 0, result.stdout + result.stderr


@pytest.mark.parametrize(
    ("module", "upward_import", "contract"),
    [
        # core types must not reach the CLI (two floors up)
        ("critique.py", "import lift.cli.main", "Floors"),
        # shared infrastructure must not reach a service
        ("t2v/base.py", "import lift.services.generator.engine", "Floors"),
        # generated stubs are the ground floor
        ("common/__init__.py", "import lift.runs", "Floors"),
        # one service must not import another
        ("services/trainer/policy.py", "import lift.services.generator.adapters", "No service"),
        # the training loop reports through events, not metrics
        ("services/trainer/loop.py", "from lift.services.trainer import metrics", "training loop"),
        ("services/trainer/loop.py", "import prometheus_client", "training loop"),
        # dev tools are not installed with the package
        ("runner.py", "import tools.processes", "dev tool"),
    ],
)
def test_the_checker_fails_on_a_back_edge(
    tmp_path: Path, module: str, upward_import: str, contract: str
) -> None:
    copy = _copy(tmp_path)
    target = copy / "lift" / module
    target.write_text(target.read_text() + f"\n{upward_import}  # injected by the test\n")
    result = _lint(copy)
    assert result.returncode != 0, result.stdout
    broken = result.stdout.split("Broken contracts", 1)[-1]
    assert contract in broken, result.stdout
    dotted = "lift." + module.removesuffix(".py").removesuffix("/__init__").replace("/", ".")
    assert dotted in broken, result.stdout
