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
run local-env: export AWS_DEFAULT_REGION ?= us-east-1
run local-env: export AWS_ACCESS_KEY_ID ?= testing
run local-env: export AWS_SECRET_ACCESS_KEY ?= testing
# Every program ends with supervisord, even a killed one (cli/parent_guard.py).
run local-env: export HERALD_PYTHON ?= $(CURDIR)/$(PY) -m cli.parent_guard
run local-env: export HERALD_API_HOST ?= 127.0.0.1
run local-env: export HERALD_API_PORT ?= 8000
run local-env: export HERALD_EMULATOR ?= true
run local-env: export HERALD_EMULATOR_PORT ?= 4566
# DynamoDB in a second emulator process: one process serving all three services was the
# stack's bottleneck (SNS delivers to SQS inside its process, so those two stay together).
run local-env: export HERALD_EMULATOR_DYNAMODB_PORT ?= 4567
# Only beside the embedded emulator: an AWS_ENDPOINT_URL given from outside (LocalStack, a
# test's emulator) names a stack that serves DynamoDB itself.
OUTSIDE_ENDPOINT := $(AWS_ENDPOINT_URL)
run local-env: export AWS_ENDPOINT_URL ?= http://127.0.0.1:$(HERALD_EMULATOR_PORT)
run local-env: export AWS_ENDPOINT_URL_DYNAMODB ?= $(if $(and $(filter true,$(HERALD_EMULATOR)),$(if $(OUTSIDE_ENDPOINT),,embedded)),http://127.0.0.1:$(HERALD_EMULATOR_DYNAMODB_PORT))
run local-env: export HERALD_SANDBOX ?= true
run local-env: export HERALD_SANDBOX_PORT ?= 8025
run local-env: export HERALD_ROUTERS ?= 1
run local-env: export HERALD_WORKERS ?= 1
run local-env: export HERALD_SCHEDULERS ?= 1
run local-env: export HERALD_EVALUATORS ?= 1
run local-env: export HERALD_BOOTSTRAP_API_KEY ?= hk_dev_local-development-key

.PHONY: install run local-env stop status test lint typecheck pytest bench bench-full chaos clean synth

# The packages go in with uv (itself a package from PyPI, pinned): the same versions pip
# resolves, installed in parallel. Compiled to bytecode here, as pip does: otherwise the
# first process to import each module compiles it, and the tests start dozens at once.
UV_VERSION := 0.13.9
$(STAMP):
	@$(PYTHON) -c 'import sys; assert sys.version_info >= (3, 11), "Python 3.11+ is required"'
	@test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet uv==$(UV_VERSION)
	$(VENV)/bin/uv pip install --quiet --compile-bytecode --python $(PY) -e '.[dev]'
	@rm -f $(VENV)/.installed-* && touch $@

install: $(STAMP)

# The settings the `herald` command reads from any terminal (core/platform/local_stack.py).
# Credentials only the emulator's throwaway ones: real ones stay out of files.
LOCAL_ENV_VARS := AWS_ENDPOINT_URL AWS_DEFAULT_REGION HERALD_API_HOST HERALD_API_PORT \
	HERALD_SANDBOX_PORT HERALD_BOOTSTRAP_API_KEY

LOCAL_ENV ?= var/local.env

# Writes $(LOCAL_ENV) from the settings `make run` uses (run does it before starting).
local-env:
	@mkdir -p $(dir $(LOCAL_ENV))
	@{ echo "# written by make run: the local stack, for the herald command"; \
		for name in $(LOCAL_ENV_VARS); do echo "$$name=$${!name}"; done; \
		[ -z "$${AWS_ENDPOINT_URL_DYNAMODB}" ] || \
			echo "AWS_ENDPOINT_URL_DYNAMODB=$${AWS_ENDPOINT_URL_DYNAMODB}"; \
		[ -z "$${HERALD_RESOURCE_PREFIX}" ] || echo "HERALD_RESOURCE_PREFIX=$${HERALD_RESOURCE_PREFIX}"; \
		[ "$${HERALD_EMULATOR}" != true ] || printf '%s\n' AWS_ACCESS_KEY_ID=testing \
			AWS_SECRET_ACCESS_KEY=testing; \
	} > $(LOCAL_ENV)

run: install
	@rm -rf var/metrics && mkdir -p var/log var/metrics
	@$(PY) -m cli.ports 127.0.0.1 "$${HERALD_API_PORT}:api" \
		$$([ "$${HERALD_EMULATOR}" = true ] && echo "$${HERALD_EMULATOR_PORT}:emulator \
			$${HERALD_EMULATOR_DYNAMODB_PORT}:emulator-dynamodb") \
		$$([ "$${HERALD_SANDBOX}" = true ] && echo "$${HERALD_SANDBOX_PORT}:sandbox")
	@$(MAKE) --no-print-directory local-env
	@echo "Herald: Swagger UI at http://127.0.0.1:$${HERALD_API_PORT}/docs (Ctrl-C stops everything)"
	@echo "Herald: development API key: $${HERALD_BOOTSTRAP_API_KEY} (send it as X-API-Key)"
	@echo "Herald: AWS endpoint $${AWS_ENDPOINT_URL}$${AWS_ENDPOINT_URL_DYNAMODB:+ (DynamoDB \
		$${AWS_ENDPOINT_URL_DYNAMODB})}; in another terminal: .venv/bin/herald dlq list"
	exec $(VENV)/bin/supervisord -n -c supervisord.conf

# Returns once supervisord (which stops its programs first) has exited.
stop:
	-@$(VENV)/bin/supervisorctl -c supervisord.conf shutdown
	@pid=$$(cat var/supervisord.pid 2>/dev/null); for _ in $$(seq 600); do \
		[ -n "$$pid" ] && kill -0 "$$pid" 2>/dev/null || exit 0; sleep 0.1; done; \
		echo "Herald: supervisord ($$pid) still running after 60 s" >&2; exit 1

# Exit 0 on a healthy stack (provision has exited, everything else runs).
status:
	@$(VENV)/bin/supervisorctl -c supervisord.conf status | $(PY) -m cli.stack_status

lint: install
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .
	$(VENV)/bin/bandit -q -c pyproject.toml -r . --severity-level medium

typecheck: install
	$(VENV)/bin/mypy .

# PYTEST_WORKERS (a number, or auto: one per core) spreads the tests over that many
# pytest-xdist workers, each with its own emulator and servers; `make test` uses one per core,
# `make pytest` one process unless given.
pytest: install
	$(VENV)/bin/pytest $(if $(PYTEST_WORKERS),-n $(PYTEST_WORKERS) --dist loadgroup) $(PYTEST_ARGS)

# lint and typecheck run beside the tests (make -j: their few lines land among pytest's);
# `make test` fails if any of the three fails.
test: PYTEST_WORKERS ?= auto
test: install
	@$(MAKE) --no-print-directory -j3 lint typecheck pytest PYTEST_WORKERS=$(PYTEST_WORKERS)

# The fault-injection suite at full size (`make test` runs it small); prints a table.
chaos: install
	HERALD_CHAOS_SCALE=full $(VENV)/bin/pytest tests/chaos $(PYTEST_ARGS)

# Start their own emulators, sandbox and Herald processes on free loopback ports; write
# docs/benchmarks.md and docs/benchmarks-rules.md. `bench` leaves out the capacity phase's
# 100,000-subscriber topic (about 10 minutes on 2 cores); `bench-full` runs it too (about
# 35 minutes).
bench: install
	$(PY) -m bench.run

bench-full: install
	$(PY) -m bench.run --full

# The CDK app's CloudFormation templates in cdk.out/, offline (deploy/, docs/deploy.md).
# CDK's Python library runs Node.js; `install` brings aws-cdk-lib, cdk-nag and cfn-lint.
synth: install
	@command -v node >/dev/null || { echo "make synth needs Node.js 20+ (node) on PATH" >&2; exit 1; }
	JSII_SILENCE_WARNING_DEPRECATED_NODE_VERSION=1 $(PY) -m deploy.app --outdir cdk.out
	$(VENV)/bin/cfn-lint --ignore-checks W3005 -- cdk.out/*.template.json

clean:
	rm -rf $(VENV) var cdk.out test-output .pytest_cache .mypy_cache .ruff_cache
