# Kyperian: the two commands are `make run` and `make test`; both install what they need.
SHELL := /bin/bash
.DEFAULT_GOAL := help
UV_VERSION := 0.13.9
UV := python3 -m uv
RUN := $(UV) run --frozen
PYTHON_SOURCES := src tests benchmarks

.PHONY: help install run test lint format unit integration bench redis loadtest

help: ## list the targets
	@grep -E '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  make %-12s %s\n", $$1, $$2}'

.venv/.installed: pyproject.toml uv.lock
	@$(UV) --version >/dev/null 2>&1 || python3 -m pip install --quiet "uv==$(UV_VERSION)"
	$(UV) sync --frozen --all-extras --all-groups
	@touch $@

install: .venv/.installed ## create .venv with the locked dependencies

redis: ## make sure a redis-server binary is available (tests start their own)
	@scripts/ensure-redis.sh

run: install ## start the whole system locally (foreground; Ctrl-C stops it)
	$(RUN) kyperian up

lint: install ## ruff, formatting, mypy --strict, cfn-lint and checkov on the templates
	$(RUN) ruff check $(PYTHON_SOURCES)
	$(RUN) ruff format --check $(PYTHON_SOURCES)
	$(RUN) mypy
	scripts/cfn-check.sh

format: install ## apply ruff's fixes and formatting
	$(RUN) ruff check --fix $(PYTHON_SOURCES)
	$(RUN) ruff format $(PYTHON_SOURCES)

unit: install ## unit tests only
	$(RUN) pytest tests/unit -q

integration: install redis ## integration tests only (moto, real redis-server)
	$(RUN) pytest tests/integration -q

test: install redis lint ## install everything, lint, run every test
	$(RUN) pytest -q

bench: install redis ## print latency figures (p50/p95/p99) against the specification's budgets
	$(RUN) python -W ignore -m benchmarks.bench_ingest
	$(RUN) python -W ignore -m benchmarks.bench_engine

loadtest: install redis ## locust against the local stack (or HOST=https://...); fails on p99 > 100 ms or errors > 0.1 %
	scripts/loadtest.sh
