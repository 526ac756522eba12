# The commands a person types. `make run` and `make test` work on a fresh machine, including on
# Debian's own Python (PEP 668): everything installs into .venv, built with $(PYTHON).
PYTHON ?= python3
# The interpreter that builds the venv; everything after runs inside it.
PYTHON_BOOT := $(PYTHON)
VENV ?= .venv
PY := $(VENV)/bin/python
PYTEST_ARGS ?=
# stack.sh runs its helper scripts with the venv's interpreter.
STACK := PYTHON=$(abspath $(PY)) bash scripts/stack.sh

.DEFAULT_GOAL := help
.PHONY: help venv install stack-up stack-down stack-status run test test-unit test-fault chaos bench lint format docs clean

help:               ## this list
	@awk 'BEGIN {FS = ":.*## "} /^[a-zA-Z_-]+:.*## / {printf "  make %-13s %s\n", $$1, $$2}' $(MAKEFILE_LIST)

$(VENV)/.installed: pyproject.toml
	$(PYTHON_BOOT) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q -e '.[test]'
	touch $@

venv: $(VENV)/.installed  ## create .venv with $(PYTHON) and install the package and test tools into it

install: venv       ## the package + test tools (in .venv), and the local stack's services (Redis, Kafka, Azurite, Prometheus)
	$(STACK) install

stack-up: install   ## start Redis (AOF), Kafka (KRaft), Azurite and Prometheus on 127.0.0.1; create topics
	$(STACK) start

stack-down:         ## stop exactly what stack-up started
	$(STACK) stop

stack-status:       ## one line per local service
	$(STACK) status

run: stack-up       ## the whole pipeline on the sample events, then a summary and the expectation check
	$(PY) -m ops.cli run

test: stack-up      ## every test, against the real local services
	$(PY) -m pytest $(PYTEST_ARGS)

test-unit: venv     ## pure-logic tests only (no services)
	$(PY) -m pytest tests/unit $(PYTEST_ARGS)

test-fault: stack-up  ## the long fault runs (kill workers/dispatcher, restart services)
	RUN_SLOW=1 $(PY) -m pytest -m slow $(PYTEST_ARGS)

CHAOS_SEED ?= 1
CHAOS_ARGS ?=
chaos: install      ## 2,000 events while every component is SIGKILLed twice (private Redis + Kafka), then an exact audit; CHAOS_SEED=n
	$(PY) scripts/chaos.py --seed $(CHAOS_SEED) $(CHAOS_ARGS)

bench: stack-up     ## benchmarks (each compares against its baseline in the same run)
	$(PY) bench/bench_flush.py
	$(PY) bench/bench_dispatch.py
	$(PY) bench/bench_e2e.py
	$(PY) bench/bench_large_file.py
	$(PY) bench/bench_table_growth.py

docs: venv          ## regenerate the README settings table from core/settings.py
	$(PY) scripts/update_readme.py

lint: venv          ## ruff (lint + format check), mypy (core, domains), import rules (lint-imports)
	$(PY) -m ruff check .
	$(PY) -m ruff format --check .
	$(PY) -m mypy
	$(VENV)/bin/lint-imports --no-cache --no-logo

format: venv        ## apply ruff's formatting and safe fixes
	$(PY) -m ruff format .
	$(PY) -m ruff check --fix .

clean:              ## remove the local lake and run files
	rm -rf lake .stack/run
