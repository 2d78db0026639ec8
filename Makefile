# LiFT suite. `make setup` is idempotent; every other target depends on it.
SHELL := /bin/bash
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
LIFT := $(VENV)/bin/lift
BUF_VERSION := 1.75.0
BUF := .tools/node_modules/.bin/buf
STAMP := $(VENV)/.setup-stamp
# Prometheus + promtool (Debian's package): the observability tests run a real one.
PROMETHEUS := /usr/bin/prometheus
# Chromium + its WebDriver (Debian's packages): a test loads /docs in a headless browser.
CHROMEDRIVER := /usr/bin/chromedriver
# Triton Inference Server (CPU build inside the nvidia-pytriton wheel) in its own venv:
# pytriton pins numpy<2; its Python backend runs the critic's ONNX vision graph.
TRITON_VENV := .triton
TRITON_STAMP := $(TRITON_VENV)/.setup-stamp
# Compose's own config check (Debian's docker-compose, works offline): tests/deploy.
COMPOSE := /usr/bin/docker-compose
SUDO := $(shell [ "$$(id -u)" = 0 ] || echo sudo)
DEMO_DIR := .demo
# The lock files (tools/lock/lock.sh writes them; `make lock`): every pin of every extra and dev
# tool, torch's CPU build in lock.txt, its CUDA build in lock-cuda.txt (the CUDA images).
LOCK := requirements/lock.txt
# The images' Dockerfiles (hadolint in `make lint`; build commands in deploy/README.md).
DOCKERFILES := $(wildcard deploy/docker/*.Dockerfile)

.PHONY: setup demo test lint format proto bench clean lock

setup: $(STAMP) $(BUF) $(PROMETHEUS) $(CHROMEDRIVER) $(TRITON_STAMP) $(COMPOSE)

# Installs exactly the lock (what CI and the images install too), then lift itself, the lock as
# constraints (a dependency added to pyproject.toml before `make lock` still gets installed;
# tests/deploy/test_lock.py fails until the lock has it).
$(STAMP): pyproject.toml $(LOCK)
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	# torch first, its CPU build as locked; nothing below may replace it.
	$(PY) -m pip install -q -r requirements/torch-cpu.txt -c $(LOCK)
	$(PY) -m pip install -q -r $(LOCK)
	$(PY) -m pip install -q -c $(LOCK) -e '.[all,dev]'
	$(PY) -m pip check
	touch $@

# Re-resolve the lock files from pyproject.toml, keeping current pins (ARGS=--upgrade moves
# them all, ARGS='--upgrade-package NAME' one); commit the result.
lock: $(STAMP)
	UV=$(VENV)/bin/uv bash tools/lock/lock.sh $(ARGS)

$(COMPOSE):
	command -v docker-compose >/dev/null || { $(SUDO) apt-get update -qq && \
	  DEBIAN_FRONTEND=noninteractive $(SUDO) apt-get install -y -qq --no-install-recommends docker-compose; }

$(TRITON_STAMP):
	test -x $(TRITON_VENV)/bin/python || $(PYTHON) -m venv $(TRITON_VENV)
	$(TRITON_VENV)/bin/python -m pip install -q --upgrade pip
	$(TRITON_VENV)/bin/python -m pip install -q nvidia-pytriton onnxruntime 'numpy<2'
	touch $@

$(PROMETHEUS):
	command -v prometheus >/dev/null || { $(SUDO) apt-get update -qq && \
	  DEBIAN_FRONTEND=noninteractive $(SUDO) apt-get install -y -qq --no-install-recommends prometheus; }

$(CHROMEDRIVER):
	command -v chromedriver >/dev/null || { $(SUDO) apt-get update -qq && \
	  DEBIAN_FRONTEND=noninteractive $(SUDO) apt-get install -y -qq --no-install-recommends chromium chromium-driver; }

$(BUF):
	npm install --silent --no-audit --no-fund --prefix .tools @bufbuild/buf@$(BUF_VERSION)

# Regenerate the Python stubs (lift/*/v1) from protos/ (committed; a test checks drift).
proto: setup
	$(PY) -m tools.protogen

demo: setup
	bash scripts/demo.sh

test: setup
	$(PY) -m pytest -q

lint: setup
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .
	$(VENV)/bin/mypy
	$(VENV)/bin/lint-imports
	$(VENV)/bin/hadolint $(DOCKERFILES)
	cd protos && ../$(BUF) lint
	# The contract against its previous commit (see the script for which and why).
	BUF=$(BUF) bash tools/buf_breaking.sh

format: setup
	$(VENV)/bin/ruff format .
	$(VENV)/bin/ruff check --fix .

bench: setup
	$(PY) -m benchmarks.critic_signal
	$(PY) -m benchmarks.critic_signal_real
	$(PY) -m benchmarks.critic_vlm
	$(PY) -m benchmarks.critic_vila
	$(PY) -m benchmarks.generator
	$(PY) -m benchmarks.critic_backends

clean:
	rm -rf $(VENV) .tools $(DEMO_DIR) .pytest_cache .mypy_cache .ruff_cache
