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
export PREFECT_SERVER_DEPLOYMENTS_CONCURRENCY_SLOT_WAIT_SECONDS := 5  # as flows/settings.py
export UV_PROJECT_ENVIRONMENT := $(CURDIR)/$(VENV)

.PHONY: run test check lint setup clean bench serve ui stop deploy screenshot report

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

# The edit-test loop: unit and in-process tests (no end-to-end, fault or browser suites).
check: setup
	$(VENV)/bin/pytest -m "not slow and not faults"

lint: setup
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .

# --- serving: a local Prefect server (UI) + `newsflow serve` (deployments + watcher) ---
HOST ?= 127.0.0.1
PORT ?= 4200
API_URL := http://$(HOST):$(PORT)/api
RUN_DIR := .prefect/run

serve: setup
	@mkdir -p $(RUN_DIR)
	@if [ -f $(RUN_DIR)/server.pid ] && kill -0 $$(cat $(RUN_DIR)/server.pid) 2>/dev/null; then \
	  echo "Prefect server already running (pid $$(cat $(RUN_DIR)/server.pid))"; \
	else \
	  setsid $(VENV)/bin/prefect server start --host $(HOST) --port $(PORT) > $(RUN_DIR)/server.log 2>&1 & echo $$! > $(RUN_DIR)/server.pid; \
	fi
	@echo -n "waiting for the Prefect API at $(API_URL) "; \
	for i in $$(seq 1 180); do \
	  if $(VENV)/bin/python -c "import urllib.request,sys; urllib.request.urlopen('$(API_URL)/health', timeout=2)" 2>/dev/null; then echo " up"; break; fi; \
	  echo -n "."; sleep 1; \
	  if [ $$i = 180 ]; then echo " timed out; see $(RUN_DIR)/server.log"; exit 1; fi; \
	done
	@if [ -f $(RUN_DIR)/serve.pid ] && kill -0 $$(cat $(RUN_DIR)/serve.pid) 2>/dev/null; then \
	  echo "newsflow serve already running (pid $$(cat $(RUN_DIR)/serve.pid))"; \
	else \
	  PREFECT_API_URL=$(API_URL) setsid $(VENV)/bin/newsflow serve --seeds seeds --data data > $(RUN_DIR)/serve.log 2>&1 & echo $$! > $(RUN_DIR)/serve.pid; \
	fi
	@echo "newsflow is served: UI http://$(HOST):$(PORT)  logs $(RUN_DIR)/{server,serve}.log  stop: make stop"

ui:
	@echo "Prefect UI: http://$(HOST):$(PORT)"
	@command -v xdg-open >/dev/null && xdg-open http://$(HOST):$(PORT) >/dev/null 2>&1 || true

stop:
	@for name in serve server; do \
	  if [ -f $(RUN_DIR)/$$name.pid ]; then \
	    pid=$$(cat $(RUN_DIR)/$$name.pid); \
	    kill -TERM -- -$$pid 2>/dev/null || kill -TERM $$pid 2>/dev/null || true; \
	    for i in $$(seq 1 20); do kill -0 $$pid 2>/dev/null || break; sleep 0.5; done; \
	    kill -KILL -- -$$pid 2>/dev/null || true; \
	    rm -f $(RUN_DIR)/$$name.pid; echo "stopped $$name ($$pid)"; \
	  fi; \
	done

# For work-pool users: the deployments of prefect.yaml on a process pool (needs `make serve`'s server).
deploy: setup
	PREFECT_API_URL=$(API_URL) $(VENV)/bin/prefect work-pool create newsflow --type process --overwrite
	PREFECT_API_URL=$(API_URL) NEWSFLOW_HOME=$(CURDIR) $(VENV)/bin/prefect --no-prompt deploy --all

# A screenshot of the UI for the README (headless Chromium; needs `make serve` running).
screenshot: setup
	$(VENV)/bin/python docs/screenshot.py --url http://$(HOST):$(PORT) --out docs/prefect-ui.png

# The data-quality report of data/ rebuilt on demand (a run writes it too): data/_reports/latest.html
report: setup
	$(VENV)/bin/newsflow report --data data

bench: setup
	$(VENV)/bin/newsflow bench run --sizes $(SIZES)

clean:
	rm -rf $(VENV) $(TOOLS) .prefect data/*/ data/_*
