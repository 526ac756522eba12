# The commands a person types. `make run` and `make test` work on a fresh machine.
PYTHON ?= python3
PIP ?= $(PYTHON) -m pip
PYTEST_ARGS ?=
export PYTHON

.PHONY: docs install stack-up stack-down stack-status run test test-unit test-fault bench lint clean

install:            ## Python package + test tools, and the local stack's services (Redis, Kafka, Azurite)
	$(PIP) install -q -e '.[test]'
	bash scripts/stack.sh install

stack-up: install   ## start Redis (AOF), Kafka (KRaft) and Azurite on 127.0.0.1; create topics
	bash scripts/stack.sh start

stack-down:         ## stop exactly what stack-up started
	bash scripts/stack.sh stop

stack-status:
	bash scripts/stack.sh status

run: stack-up       ## the whole pipeline on the sample events, then a summary
	$(PYTHON) -m pipeline.cli run

test: stack-up      ## every test, against the real local services
	$(PYTHON) -m pytest $(PYTEST_ARGS)

test-unit:          ## pure-logic tests only (no services)
	$(PYTHON) -m pytest tests/unit $(PYTEST_ARGS)

test-fault: stack-up  ## the long fault runs (kill workers/dispatcher, restart services)
	RUN_SLOW=1 $(PYTHON) -m pytest -m slow $(PYTEST_ARGS)

bench: stack-up     ## benchmarks (each compares against its baseline in the same run)
	$(PYTHON) bench/bench_flush.py
	$(PYTHON) bench/bench_dispatch.py

docs:               ## regenerate the README settings table from pipeline/settings.py
	$(PYTHON) scripts/update_readme.py

lint:
	$(PYTHON) -m ruff check .

clean:
	rm -rf lake .stack/run
