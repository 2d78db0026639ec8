"""Helpers of the deploy checks: where the repository and its tools are."""

from __future__ import annotations

import shutil
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
VENV_BIN = Path(sys.executable).parent


def tool(name: str, hint: str) -> str:
    """The path of a tool `make setup` installs; a clear failure (never a skip) without it."""
    found = VENV_BIN / name
    if found.is_file():
        return str(found)
    other = shutil.which(name)
    if other is None:
        pytest.fail(f"{name} is not installed: run `make setup` ({hint})")
    return other
