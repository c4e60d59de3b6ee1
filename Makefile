# tickwire developer tasks. `make` (or `make help`) lists them.
# Everything installs itself on a fresh machine: the venv (pip), Redis/NATS (apt), Kafka jars (Maven).

SHELL := /bin/bash
.DEFAULT_GOAL := help

PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
TW := $(BIN)/tickwire
PYTEST := $(BIN)/pytest
# The other supported Kafka line, on its own ports, for test-kafka-alt (the default line is in
# tickwire/infra/config.py).
ALT_KAFKA_ENV := TICKWIRE_KAFKA_VERSION=$$($(BIN)/python -c 'from tickwire.infra.config import ALT_KAFKA_VERSION as v; print(v)') \
	TICKWIRE_KAFKA_PORT=29092 TICKWIRE_KAFKA_CONTROLLER_PORT=29093

.PHONY: help venv infra-up infra-down infra-status topics-apply lint test-unit test-integration \
	test-kafka-alt test-long test run bench clean

help: ## list the targets
	@awk 'BEGIN {FS = ":.*## "} /^[a-zA-Z_-]+:.*## / {printf "  \033[36m%-18s\033[0m %s\n", $$1, $$2}' $(MAKEFILE_LIST)

$(STAMP): pyproject.toml
	@test -n "$(PYTHON)" && $(PYTHON) -c 'import sys; sys.exit(sys.version_info < (3, 11))' \
		|| { echo "python 3.11+ is required (found: '$(PYTHON)')" >&2; exit 1; }
	@# A venv without pip (python3-venv missing when it was made) is rebuilt.
	@$(BIN)/python -m pip --version >/dev/null 2>&1 || $(PYTHON) -m venv --clear $(VENV) 2>/dev/null \
		|| { apt-get update -q && apt-get install -y -q python3-venv && $(PYTHON) -m venv --clear $(VENV); }
	$(BIN)/python -m pip install -q --disable-pip-version-check -e ".[dev]"
	@touch $@

venv: $(STAMP) ## create .venv and install tickwire with dev dependencies (idempotent)

infra-up: venv ## start (or reuse) local Kafka, Redis, NATS JetStream
	$(TW) infra up

infra-down: venv ## stop the local servers
	$(TW) infra down

infra-status: venv ## show state, address, pid, version of each local server
	$(TW) infra status

topics-apply: venv ## create/align the topics of topics.yaml on the local broker
	$(TW) topics apply

lint: venv ## ruff check, ruff format --check, mypy --strict on the packages (all three run, then fail)
	@rc=0; \
	echo "ruff check ."; $(BIN)/ruff check . || rc=1; \
	echo "ruff format --check ."; $(BIN)/ruff format --check . || rc=1; \
	echo "mypy (strict, [tool.mypy] packages)"; $(BIN)/mypy || rc=1; \
	exit $$rc

test-unit: venv ## unit tests (no servers)
	$(PYTEST) -q -m unit

# Two files at a time (the suite mostly waits on brokers, rebalances and timeouts), then the `serial`
# ones alone: pacing and limiter timing, the 3-broker cluster. Servers are up first (infra-up), so no
# worker starts or stops a shared one.
INTEGRATION_WORKERS ?= 2
test-integration: venv infra-up ## integration tests against the local servers (INTEGRATION_WORKERS=1: serially)
	$(PYTEST) -q -m "integration and not serial" -n $(INTEGRATION_WORKERS) --dist loadfile
	$(PYTEST) -q -m "integration and serial"

test-long: venv infra-up ## the long runs CI leaves out (Alpha Vantage limiter: 30 calls/60 s window over 2.5 minutes)
	TICKWIRE_LONG_TESTS=1 $(PYTEST) -q -m integration tests/integration/test_ingest_alphavantage.py -k limiter

test-kafka-alt: venv ## Kafka + normalizer (both guarantees) against the other Kafka version (ports 29092/29093)
	@set -e; export $(ALT_KAFKA_ENV); \
	trap '$(TW) infra down --only kafka' EXIT; \
	$(TW) infra up --only kafka; \
	KAFKA_BOOTSTRAP_SERVERS=127.0.0.1:29092 $(PYTEST) -q -m integration \
		tests/integration/test_infra_kafka.py tests/integration/test_normalize_modes.py

test: venv lint infra-up test-unit test-integration test-kafka-alt ## everything CI runs

run: venv infra-up ## run the whole pipeline (tickwire run) on the local servers
	$(TW) run

bench: venv ## run the benchmarks (tickwire bench)
	$(TW) bench

FUZZ_COUNT ?= 1000000
.PHONY: fuzz
fuzz: venv ## fuzz every parser + the per-message path: FUZZ_COUNT mutated inputs (1M) + hypothesis; counts by outcome
	nice $(BIN)/python -m tests.fuzz --count $(FUZZ_COUNT)

# --- containers (deploy/): images built here from a debootstrap base, a compose stack on 3 brokers ---
.PHONY: images deploy-up deploy-down deploy-status test-deploy

images: venv ## build the container images (debootstrap base, tickwire, Kafka, registry, Redis/NATS); cached in .local/images
	$(BIN)/python -m tickwire.infra.images build

deploy-up: images ## start deploy/compose.yaml (3 brokers, Redis, NATS, registry, simulator, producer, 2 normalizers, bridges)
	$(BIN)/python -m tickwire.infra.deploy up

deploy-status: venv ## health of every container of the stack and lag per consumer group
	$(BIN)/python -m tickwire.infra.deploy status

deploy-down: venv ## remove the stack (containers, volumes) and stop the Docker engine deploy-up started
	$(BIN)/python -m tickwire.infra.deploy down

test-deploy: images ## the compose stack test: up, canonical records in Redis and JetStream, broker stop, down
	TICKWIRE_DEPLOY_TEST=1 $(PYTEST) -q -m integration tests/integration/test_deploy_compose.py

clean: ## remove caches and build outputs (keeps .venv and .local; `make infra-down` first to stop servers)
	rm -rf .pytest_cache .mypy_cache .ruff_cache build dist bench-results
	find . -path ./.venv -prune -o -name __pycache__ -type d -exec rm -rf {} +
