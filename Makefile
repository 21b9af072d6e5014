# lakestack — the two commands: `make run` and `make test`. Everything they need is installed here.
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
ORDERS ?= 100000
SEED ?= 42
RUN_DIR ?= .run/northwind
BREAK_GOLD ?=
PYTEST_ARGS ?=
# make bench BENCH=merge: one benchmark of the suite (empty: all)
BENCH ?=
# test processes (pytest-xdist; one file stays on one process, so module fixtures are built once)
JOBS ?= 2
# the crash matrix (tests marked `crash`) is long: `make test` skips it, `.ci/run` runs it (CRASH=1)
CRASH ?=
MARKERS := $(if $(CRASH),,-m "not crash")
# make run publishes Northwind Gold here (the example's `analytics` target, optional: a PostgreSQL
# that does not answer is skipped with a note, and the run still succeeds); only for `run`, so the
# tests' Northwind runs never publish to a shared server
run: export NORTHWIND_POSTGRES_URL ?= $(or $(LAKESTACK_TEST_POSTGRES_URL),postgresql://postgres@127.0.0.1:5432/test)

# an editable install compiles no bytecode (a wheel's install does); where PYTHONDONTWRITEBYTECODE is set
# (as on this project's hosts) every command would compile every module it imports again: ~0.15 s of each
# `lakestack query`. run and bench compile what changed first (only changed files: ~0.3 s)

.PHONY: run test lint bench bench-check clean venv

$(VENV)/bin/python:
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip

$(VENV)/.installed-run: pyproject.toml Makefile | $(VENV)/bin/python
	$(PY) -m pip install -q -e '.[serve,postgres,rest]'  # every README command works after make run (serve: lakestack serve; rest: the example's APIs)
	touch $@

$(VENV)/.installed-dev: pyproject.toml | $(VENV)/bin/python
	$(PY) -m pip install -q -e '.[dev]'
	touch $@ $(VENV)/.installed-run

venv: $(VENV)/.installed-dev
	scripts/install-chromium.sh

## run: start the example's CRM and vehicle-valuation APIs on 127.0.0.1, generate the Northwind example (ORDERS
## order lines) with them, run it end to end: ingest (files and the contacts API), promote, enrich, build,
## publish to PostgreSQL (NORTHWIND_POSTGRES_URL, when it answers); then its run records (lineage:
## $(RUN_DIR)/warehouse/_lakestack/lineage/). The APIs stop however it ends (scripts/run-northwind.sh)
run: $(VENV)/.installed-run
	$(PY) -m compileall -q src/lakestack >/dev/null
	scripts/run-northwind.sh $(VENV)/bin/lakestack $(RUN_DIR) $(ORDERS) $(SEED) $(if $(BREAK_GOLD),--break-gold)
	@echo "The web console: $(VENV)/bin/lakestack -p $(RUN_DIR) serve --insecure-dev, then open http://127.0.0.1:8080/console/ (with API keys: lakestack keys create --role analyst)"

## test: the whole suite with coverage (services are read from LAKESTACK_TEST_* variables)
test: $(VENV)/.installed-dev
	scripts/install-chromium.sh
	$(PY) -m pytest -n $(JOBS) --dist loadfile --durations=30 --cov=lakestack --cov-report=term --cov-report=xml:.coverage.xml $(MARKERS) $(PYTEST_ARGS)

## lint: ruff and mypy on the package
lint: $(VENV)/.installed-dev
	$(VENV)/bin/ruff check src tests benchmarks
	$(VENV)/bin/ruff format --check src tests benchmarks
	$(VENV)/bin/mypy

## bench: the benchmark suite, each benchmark with its peers at 4 sizes (medians; results in
## benchmarks/results/, rendered into docs/benchmarks.md); BENCH=name runs one (benchmarks/run.py --help)
bench: $(VENV)/.installed-dev
	$(PY) -m compileall -q src/lakestack >/dev/null
	$(PY) benchmarks/run.py $(BENCH)
	$(PY) benchmarks/render.py

## bench-check: each benchmark again at a small size (its floor >= 0.1 s); fails when lakestack's ratio to
## the floor drops more than 30 % below the committed results
bench-check: $(VENV)/.installed-dev
	$(PY) -m compileall -q src/lakestack >/dev/null
	$(PY) benchmarks/check.py

clean:
	rm -rf .run .pytest_cache .mypy_cache .ruff_cache .coverage .coverage.xml
