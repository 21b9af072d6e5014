# lakestack — the two commands: `make run` and `make test`. Everything they need is installed here.
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
ORDERS ?= 100000
SEED ?= 42
RUN_DIR ?= .run/northwind
BREAK_GOLD ?=
PYTEST_ARGS ?=
# the crash matrix (tests marked `crash`) is long: `make test` skips it, `.ci/run` runs it (CRASH=1)
CRASH ?=
MARKERS := $(if $(CRASH),,-m "not crash")

.PHONY: run test lint bench clean venv

$(VENV)/bin/python:
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip

$(VENV)/.installed-run: pyproject.toml | $(VENV)/bin/python
	$(PY) -m pip install -q -e .
	touch $@

$(VENV)/.installed-dev: pyproject.toml | $(VENV)/bin/python
	$(PY) -m pip install -q -e '.[dev]'
	touch $@ $(VENV)/.installed-run

venv: $(VENV)/.installed-dev

## run: generate the Northwind example (ORDERS order lines) and run it end to end: ingest, promote, build
run: $(VENV)/.installed-run
	rm -rf $(RUN_DIR)
	$(VENV)/bin/lakestack example northwind $(RUN_DIR) --orders $(ORDERS) --seed $(SEED) $(if $(BREAK_GOLD),--break-gold)
	$(VENV)/bin/lakestack -p $(RUN_DIR) run
	$(VENV)/bin/lakestack -p $(RUN_DIR) tables

## test: the whole suite with coverage (services are read from LAKESTACK_TEST_* variables)
test: $(VENV)/.installed-dev
	$(PY) -m pytest --cov=lakestack --cov-report=term --cov-report=xml:.coverage.xml $(MARKERS) $(PYTEST_ARGS)

## lint: ruff and mypy on the package
lint: $(VENV)/.installed-dev
	$(VENV)/bin/ruff check src tests benchmarks
	$(VENV)/bin/ruff format --check src tests benchmarks
	$(VENV)/bin/mypy

## bench: the benchmarks, side by side with their peers (medians of repeated runs)
bench: $(VENV)/.installed-dev
	$(PY) benchmarks/run.py

clean:
	rm -rf .run .pytest_cache .mypy_cache .ruff_cache .coverage .coverage.xml
