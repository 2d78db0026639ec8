#!/usr/bin/env bash
# Regenerate the lock files from pyproject.toml (every extra, dev included) and
# requirements/tools.in, for CPython 3.11 on x86_64 Linux (manylinux_2_28: this machine, CI and
# the images):
#   requirements/lock.txt       torch's CPU build (2.13.0+cpu): make setup, CI, CPU images
#   requirements/lock-cuda.txt  torch's CUDA build from PyPI with its nvidia-* libraries: CUDA images
# Pins already in a lock file are kept (uv prefers them); pass --upgrade, or
# --upgrade-package NAME, to move them. `make lock` runs this; `make lock ARGS=--upgrade`.
# The CPU wheel comes from a directory (TORCH_CPU_FIND_LINKS, default /opt/wheels where this
# machine keeps it); elsewhere fetch it first:
#   pip download --no-deps torch==2.13.0+cpu --index-url https://download.pytorch.org/whl/cpu -d DIR
set -euo pipefail
cd "$(dirname "$0")/../.."
UV=${UV:-.venv/bin/uv}
# LOCK_DIR: where the lock files are read (as preferences) and written; tests/deploy uses a copy.
out=${LOCK_DIR:-requirements}
links=${TORCH_CPU_FIND_LINKS:-/opt/wheels}
if ! compgen -G "$links/torch-2.13.0+cpu-*.whl" >/dev/null; then
  echo "lock: no torch-2.13.0+cpu wheel in $links; download it there (see the header of $0)" \
       "or set TORCH_CPU_FIND_LINKS to the directory that holds it" >&2
  exit 2
fi
common=(pyproject.toml requirements/tools.in --all-extras --python-version 3.11
        --python-platform x86_64-manylinux_2_28 --custom-compile-command "make lock" --quiet)
"$UV" pip compile "${common[@]}" --find-links "$links" --no-emit-find-links \
  --override requirements/torch-cpu.txt -o "$out/lock.txt" "$@"
"$UV" pip compile "${common[@]}" \
  --override requirements/torch-cuda.txt -o "$out/lock-cuda.txt" "$@"
echo "lock: $out/lock.txt and $out/lock-cuda.txt written"
