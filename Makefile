# The few verbs people type. Every target installs what it needs first.
SHELL := /bin/bash
export MLFLOW_DISABLE_TELEMETRY := true
export BENTOML_DO_NOT_TRACK := true
export DO_NOT_TRACK := true
export PYTHONHASHSEED := 0

UV ?= $(shell command -v uv 2>/dev/null || echo .venv-tools/bin/uv)
PY := .venv/bin/python
RISKML := .venv/bin/riskml

.PHONY: install run test lint format bench clean

$(UV):
	python3 -m venv .venv-tools && .venv-tools/bin/pip install -q 'uv==0.13.9'

install: $(UV)
	$(UV) sync --locked --python 3.11

lint: install
	.venv/bin/ruff check src tests bench serving training
	.venv/bin/ruff format --check src tests bench serving training

format: install
	.venv/bin/ruff format src tests bench serving training
	.venv/bin/ruff check --fix src tests bench serving training

test: install lint
	.venv/bin/pytest -q

run: install
	$(RISKML) simulate --households 20000 --years 7 --seed 7 --out .riskml/data/panel.parquet
	$(RISKML) validate .riskml/data/panel.parquet

bench: install
	$(PY) bench/run_all.py

clean:
	rm -rf .riskml .pytest_cache .ruff_cache
