#!/bin/sh
# The images' Python install: every Dockerfile under deploy/docker RUNs this script, and
# tests/deploy/test_images.py runs it into fresh venvs, so what is tested is what is built.
#
#   install.sh VENV EXTRA VARIANT [SRC]
#     VENV     virtual environment to create (or fill): /opt/lift in the images
#     EXTRA    the service's pyproject extra: critic, generator, trainer or feedback
#     VARIANT  cpu or cuda: which lock pins the versions (torch's CPU or CUDA build)
#     SRC      source tree with pyproject.toml, lift/ and requirements/ (default: .)
#
# Every package comes at the version the lock pins (pip's constraints), lift itself is built
# from SRC with the locked setuptools (no unpinned build environment), then `pip check`.
# The CPU build of torch (2.13.0+cpu) is not on PyPI: the CPU images set PIP_EXTRA_INDEX_URL
# to PyTorch's CPU index; this machine has the wheel in pip's find-links.
#
# LIFT_INSTALL_DRY_RUN=FILE resolves the service's install without installing it
# (pip --dry-run --report FILE; setuptools is still installed, to build lift's metadata).
set -eu

if [ "$#" -lt 3 ] || [ "$#" -gt 4 ]; then
  echo "usage: install.sh VENV EXTRA VARIANT [SRC]" >&2
  exit 2
fi
venv=$1
extra=$2
variant=$3
src=${4:-.}

case "$extra" in
  critic | generator | trainer | feedback) ;;
  *) echo "install.sh: EXTRA must be critic, generator, trainer or feedback (got '$extra')" >&2
     exit 2 ;;
esac
case "$variant" in
  cpu) lock=$src/requirements/lock.txt ;;
  cuda) lock=$src/requirements/lock-cuda.txt ;;
  *) echo "install.sh: VARIANT must be cpu or cuda (got '$variant')" >&2
     exit 2 ;;
esac
if [ ! -f "$lock" ] || [ ! -f "$src/pyproject.toml" ]; then
  echo "install.sh: $src has no pyproject.toml or $lock (SRC must be the repository root)" >&2
  exit 2
fi

[ -x "$venv/bin/python" ] || python3 -m venv "$venv"
pip() { "$venv/bin/python" -m pip --disable-pip-version-check "$@"; }

# The build backend first, at its locked version; lift is then built without isolation.
pip install --quiet -c "$lock" setuptools
if [ -n "${LIFT_INSTALL_DRY_RUN:-}" ]; then
  pip install --quiet --no-build-isolation -c "$lock" --dry-run --ignore-installed \
    --report "$LIFT_INSTALL_DRY_RUN" "$src[$extra]"
  exit 0
fi
pip install --quiet --no-build-isolation -c "$lock" "$src[$extra]"
pip check
