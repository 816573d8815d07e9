# The few verbs people type. Every target installs what it needs first.
SHELL := /bin/bash
export MLFLOW_DISABLE_TELEMETRY := true
export BENTOML_DO_NOT_TRACK := true
export DO_NOT_TRACK := true
export PYTHONHASHSEED := 0

# The project's own uv, pinned (a machine's uv is never relied on; `make UV=uv ...` to use yours).
UV ?= .venv-tools/bin/uv
PY := .venv/bin/python
RISKML := .venv/bin/riskml
STATE := .riskml
PANEL := $(STATE)/data/panel.parquet
KEYS := $(STATE)/api_keys.yaml
HOUSEHOLDS ?= 100000
YEARS ?= 7
SEED ?= 7
PORT ?= 3000

.PHONY: install browser postgres run panel train keys serve test test-fast lint format bench clean

$(UV):
	python3 -m venv .venv-tools && .venv-tools/bin/pip install -q 'uv==0.13.9'

install: $(UV)
	$(UV) sync --locked --python 3.11

# The Bento's pinned requirements: the lock file's versions, without Spark (the service does not use it).
serving/requirements.txt: uv.lock $(UV)
	$(UV) export --frozen --no-dev --no-emit-project --no-hashes --prune pyspark --format requirements-txt -o $@ >/dev/null

# Debian's Chromium and a CJK font for the caseworker pages' browser test (never `playwright install`).
browser:
	@if [ ! -x /usr/bin/chromium ] || ! fc-list 2>/dev/null | grep -qi 'wenquanyi\|wqy'; then \
		apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends chromium fonts-wqy-microhei >/dev/null; \
	fi

# Debian's PostgreSQL server for the tests that start one (tests/code/postgres.py; never a system service).
postgres:
	@if ! ls /usr/lib/postgresql/*/bin/initdb >/dev/null 2>&1; then \
		apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends postgresql >/dev/null; \
	fi

# The main job on the embedded default (SQLite tracking + ledger, local artifacts), ending in the service.
run: install panel train keys serve

panel: install
	$(RISKML) simulate --households $(HOUSEHOLDS) --years $(YEARS) --seed $(SEED) --out $(PANEL)
	$(RISKML) validate $(PANEL)

train: install
	$(RISKML) train --config training/default.yaml --data $(PANEL)

keys: install
	@if [ ! -f $(KEYS) ]; then \
		echo "API keys (shown once; hashes kept in $(KEYS)):"; \
		echo "  scorer:     $$($(RISKML) keys add --id demo-scorer --role scorer --file $(KEYS) | tail -n1)"; \
		echo "  caseworker: $$($(RISKML) keys add --id demo-caseworker --role caseworker --county 532328 --file $(KEYS) | tail -n1)"; \
		echo "  township:   $$($(RISKML) keys add --id demo-township --role township --township 532328101 --file $(KEYS) | tail -n1)"; \
		echo "  county:     $$($(RISKML) keys add --id demo-county --role county --county 532328 --file $(KEYS) | tail -n1)"; \
		echo "  admin:      $$($(RISKML) keys add --id demo-admin --role admin --file $(KEYS) | tail -n1)"; \
	fi

serve: install
	RISKML_API_KEYS_FILE=$(KEYS) $(RISKML) serve --host 127.0.0.1 --port $(PORT)

# `bentoml build` (a test) calls uv: the tests see the project's uv first on their PATH.
TEST_PATH := $(abspath $(dir $(UV))):$(PATH)

test: install browser postgres lint
	PATH="$(TEST_PATH)" .venv/bin/pytest -q

test-fast: install
	PATH="$(TEST_PATH)" .venv/bin/pytest -q -m "not slow"

lint: install
	.venv/bin/ruff check src tests bench serving training
	.venv/bin/ruff format --check src tests bench serving training
	.venv/bin/lint-imports --no-cache

format: install
	.venv/bin/ruff format src tests bench serving training
	.venv/bin/ruff check --fix src tests bench serving training

bench: install
	$(PY) bench/run_all.py

clean:
	rm -rf $(STATE) .pytest_cache .ruff_cache tests/artifacts bench/results
