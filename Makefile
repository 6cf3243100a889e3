# Two commands do all the set-up on a fresh machine:
#   make run    - create/reuse .venv, then train, register and batch-score the sample data
#   make test   - create/reuse .venv, then run the test suite
SHELL := /bin/bash
PYTHON ?= python3.11
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
# CPU build of torch where there is no GPU (it ships as a local wheel on these machines);
# with a GPU, pip's default (CUDA) build. Machines here carry the CPU wheel of
# torch 2.13.0 on disk; elsewhere set TORCH_INDEX=https://download.pytorch.org/whl/cpu.
TORCH_VERSION := 2.13.0
TORCH_SPEC ?= torch==$(TORCH_VERSION)
# Every other package is pinned in the lock (the tested environment); pyproject.toml keeps ranges for
# library users. torch is left out of the lock: its CPU and CUDA builds differ, so it is installed first.
LOCK := requirements.lock
UV ?= uv
# `make lock` resolves against torch's CPU build (the CUDA build's metadata would add GBs of nvidia-*).
TORCH_CPU_SOURCE ?= $(if $(wildcard /opt/wheels/torch-$(TORCH_VERSION)+cpu-*.whl),--find-links /opt/wheels,--index https://download.pytorch.org/whl/cpu)

.PHONY: run test lint bench venv clean serve lock

$(BIN)/python:
	@command -v $(PYTHON) >/dev/null 2>&1 || { echo "need $(PYTHON) on PATH (set PYTHON=...)"; exit 1; }
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip

$(STAMP): pyproject.toml $(LOCK) | $(BIN)/python
	@if command -v nvidia-smi >/dev/null 2>&1 && nvidia-smi >/dev/null 2>&1; then \
	  echo "GPU found: installing the default (CUDA) torch build"; $(BIN)/pip install --quiet "$(TORCH_SPEC)"; \
	else \
	  echo "no GPU: installing the CPU build of torch"; \
	  $(BIN)/pip install --quiet "$(TORCH_SPEC)" $(if $(TORCH_INDEX),--index-url $(TORCH_INDEX)); \
	fi
	$(BIN)/pip install --quiet -r $(LOCK)
	$(BIN)/pip install --quiet --no-deps -e .
	@touch $(STAMP)

# Re-pin after changing a dependency in pyproject.toml (needs uv: `pip install uv`). Versions already
# in the lock are kept where they still fit; `make lock UPGRADE=--upgrade` moves everything to the newest.
lock:
	@command -v $(UV) >/dev/null 2>&1 || { echo "make lock needs uv on PATH (pip install uv)"; exit 1; }
	$(UV) pip compile pyproject.toml --extra dev --python-version 3.11 --python-platform x86_64-manylinux_2_28 \
	  --default-index https://pypi.org/simple $(TORCH_CPU_SOURCE) -c <(echo "torch==$(TORCH_VERSION)+cpu") \
	  --no-emit-package torch --custom-compile-command "make lock" --quiet $(UPGRADE) -o $(LOCK)

venv: $(STAMP)

run: $(STAMP)
	$(BIN)/vae-anomaly demo

test: $(STAMP)
	$(BIN)/python -m pytest -q -p no:cacheprovider --durations=10

lint: $(STAMP)
	$(BIN)/ruff check vae_anomaly tests benchmarks

bench: $(STAMP)
	$(BIN)/python benchmarks/train_throughput.py
	$(BIN)/python benchmarks/adbench.py

serve: $(STAMP)
	$(BIN)/vae-anomaly serve --start-server

clean:
	rm -rf $(VENV) mlflow.db mlruns mlartifacts outputs .pytest_cache
