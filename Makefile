# Herald: `make run` serves the whole stack locally, `make test` runs every check.
SHELL := /bin/bash
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed-$(shell cksum < pyproject.toml | cut -d' ' -f1)

# Settings from .env (if any) take precedence over the defaults below.
-include .env

# `make run` defaults: the embedded emulator on loopback with throwaway credentials.
# (Tests start their own emulator on a free port and set these themselves.)
run: export AWS_ENDPOINT_URL ?= http://127.0.0.1:4566
run: export AWS_DEFAULT_REGION ?= us-east-1
run: export AWS_ACCESS_KEY_ID ?= testing
run: export AWS_SECRET_ACCESS_KEY ?= testing
run: export HERALD_PYTHON ?= $(CURDIR)/$(PY)
run: export HERALD_API_HOST ?= 127.0.0.1
run: export HERALD_API_PORT ?= 8000
run: export HERALD_EMULATOR ?= true
run: export HERALD_EMULATOR_PORT ?= 4566
run: export HERALD_SANDBOX ?= true
run: export HERALD_SANDBOX_PORT ?= 8025
run: export HERALD_ROUTERS ?= 1
run: export HERALD_WORKERS ?= 1
run: export HERALD_SCHEDULERS ?= 1
run: export HERALD_EVALUATORS ?= 1
run: export HERALD_BOOTSTRAP_API_KEY ?= hk_dev_local-development-key

.PHONY: install run stop status test lint typecheck pytest bench chaos clean

$(STAMP):
	@$(PYTHON) -c 'import sys; assert sys.version_info >= (3, 11), "Python 3.11+ is required"'
	@test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -e '.[dev]'
	@rm -f $(VENV)/.installed-* && touch $@

install: $(STAMP)

run: install
	@rm -rf var/metrics && mkdir -p var/log var/metrics
	@echo "Herald: Swagger UI at http://127.0.0.1:$${HERALD_API_PORT}/docs (Ctrl-C stops everything)"
	@echo "Herald: development API key: $${HERALD_BOOTSTRAP_API_KEY} (send it as X-API-Key)"
	exec $(VENV)/bin/supervisord -n -c supervisord.conf

stop:
	-$(VENV)/bin/supervisorctl -c supervisord.conf shutdown

status:
	$(VENV)/bin/supervisorctl -c supervisord.conf status

lint: install
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .
	$(VENV)/bin/bandit -q -c pyproject.toml -r . --severity-level medium

typecheck: install
	$(VENV)/bin/mypy .

pytest: install
	$(VENV)/bin/pytest $(PYTEST_ARGS)

test: lint typecheck pytest

# The fault-injection suite at full size (`make test` runs it small); prints a table.
chaos: install
	HERALD_CHAOS_SCALE=full $(VENV)/bin/pytest tests/chaos $(PYTEST_ARGS)

# Starts its own emulators, sandbox and Herald processes on free loopback ports; writes
# docs/benchmarks.md (a few minutes).
bench: install
	$(PY) -m bench.run

clean:
	rm -rf $(VENV) var .pytest_cache .mypy_cache .ruff_cache
