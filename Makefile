# newsflow — two commands on a fresh machine with python3 and make:
#   make run    set up .venv from uv.lock and ingest seeds/ into data/
#   make test   the whole test suite (CI runs this)
SHELL := /bin/bash
PYTHON ?= python3
UV_VERSION := 0.13.9
TOOLS := .tools
UV := $(TOOLS)/bin/uv
VENV := .venv
export PREFECT_HOME := $(CURDIR)/.prefect
export PREFECT_SERVER_ANALYTICS_ENABLED := false
export PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS := 180
export UV_PROJECT_ENVIRONMENT := $(CURDIR)/$(VENV)

.PHONY: run test setup clean bench

# Benchmark sizes: make bench SIZES=10MB,100MB,1GB
SIZES ?= 10MB,100MB

$(UV):
	$(PYTHON) -m venv $(TOOLS)
	$(TOOLS)/bin/pip install --quiet --disable-pip-version-check uv==$(UV_VERSION)

$(VENV)/.synced: uv.lock pyproject.toml | $(UV)
	$(UV) sync --frozen --python $(PYTHON)
	touch $@

setup: $(VENV)/.synced

run: setup
	$(VENV)/bin/newsflow run --seeds seeds --data data

test: setup
	$(VENV)/bin/pytest

bench: setup
	$(VENV)/bin/newsflow bench run --sizes $(SIZES)

clean:
	rm -rf $(VENV) $(TOOLS) .prefect data/*/ data/_*
