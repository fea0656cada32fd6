# Driftline's dev loop. `make test` is what CI runs: on a machine with only python3 and make it
# creates the virtualenv, installs the pinned dependencies and every tool the checks need, then runs
# lint, type checks, the generated-files check and the test suite.
SHELL := /bin/bash
.SHELLFLAGS := -eu -o pipefail -c
.DEFAULT_GOAL := help

PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
PY := $(BIN)/python
STAMP := $(VENV)/.driftline-installed
PYTEST_ARGS ?=

.PHONY: help install lock fmt lint typecheck crds check-generated test test-unit test-integration \
        bench demo clean

help: ## list the targets
	@grep -E '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  %-18s %s\n", $$1, $$2}'

# The virtualenv is rebuilt when pyproject.toml or a lock file changes.
$(STAMP): pyproject.toml requirements.lock requirements-dev.lock
	@test -x $(PY) || $(PYTHON) -m venv $(VENV)
	@echo "installing pinned dependencies into $(VENV) ..."
	$(PY) -m pip install --quiet --disable-pip-version-check -c requirements-dev.lock \
		-e '.[dev]'
	@touch $@

install: $(STAMP) ## create or refresh the virtualenv with pinned dependencies

# Two locks: requirements.lock is what the image installs (runtime only), requirements-dev.lock what
# the virtualenv installs (runtime + dev). Both are resolved from pyproject.toml in scratch venvs.
lock: ## re-resolve dependencies into requirements.lock and requirements-dev.lock
	rm -rf .lock-venv && $(PYTHON) -m venv .lock-venv
	.lock-venv/bin/pip install --quiet --disable-pip-version-check .
	.lock-venv/bin/pip freeze | grep -iv '^driftline' | sort -f > requirements.lock
	.lock-venv/bin/pip install --quiet --disable-pip-version-check '.[dev]'
	.lock-venv/bin/pip freeze | grep -iv '^driftline' | sort -f > requirements-dev.lock
	rm -rf .lock-venv

fmt: $(STAMP) ## format and auto-fix
	$(BIN)/ruff format .
	$(BIN)/ruff check --fix .

lint: $(STAMP) ## ruff (lint + format check), import-linter layers, hadolint on the Dockerfile
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/lint-imports
	$(BIN)/hadolint Dockerfile

typecheck: $(STAMP) ## mypy --strict on both packages
	$(BIN)/mypy -p driftline.operator -p driftline.serving

crds: $(STAMP) ## regenerate crds/ and the chart's copy from the pydantic API models
	$(BIN)/driftline crds --out crds --out charts/driftline/crds

check-generated: crds ## fail when generated files differ from what is committed
	@git diff --exit-code --stat -- crds charts/driftline/crds || \
		(echo "generated files are stale: run 'make crds' and commit" >&2; exit 1)
	@test -z "$$(git status --porcelain -- crds charts/driftline/crds)" || \
		(echo "untracked generated files: run 'make crds' and commit" >&2; git status --short crds; exit 1)

test-unit: $(STAMP) ## the fast unit layer only
	$(PY) -m pytest tests/unit $(PYTEST_ARGS)

test-integration: $(STAMP) ## real processes on 127.0.0.1 and the Kubernetes API emulator
	$(PY) -m pytest -m integration $(PYTEST_ARGS)

test: lint typecheck check-generated ## everything CI runs: lint, types, generated files, all tests
	$(PY) -m pytest $(PYTEST_ARGS)

bench: bench-serving bench-drift bench-router bench-operator ## every benchmark side by side (slow)

# ------------------------------------------------------------------ model server (issue 3)
# promtool (Debian's prometheus package) checks the server's /metrics in the tests. Only the one
# binary is unpacked into .tools/, the service is not installed. apt-get update runs only when the
# package lists are missing.
PROMTOOL := .tools/promtool

$(PROMTOOL):
	@rm -rf .tools/deb && mkdir -p .tools/deb
	cd .tools/deb && { apt-get download prometheus 2>/dev/null || \
		{ apt-get update -qq && apt-get download prometheus; }; }
	dpkg-deb -x .tools/deb/prometheus_*.deb .tools/deb/root
	cp .tools/deb/root/usr/bin/promtool $@
	rm -rf .tools/deb
	$@ --version >/dev/null

test: $(PROMTOOL)

# The serving benchmark: peers in their own virtualenvs under bench/.venvs (rebuilt when their
# requirements change), wrk from Debian. Args for a quicker run: BENCH_SERVING_ARGS="--duration 5".
BENCH_VENVS := bench/.venvs
BENCH_SERVING_ARGS ?=

$(BENCH_VENVS)/%/.installed: bench/serving/requirements-%.txt
	@test -x $(BENCH_VENVS)/$*/bin/python || $(PYTHON) -m venv $(BENCH_VENVS)/$*
	$(BENCH_VENVS)/$*/bin/pip install --quiet --disable-pip-version-check -r $<
	@touch $@

BENCH_SERVING_VENVS := $(foreach v,mlserver kserve web,$(BENCH_VENVS)/$(v)/.installed)

.PHONY: bench-serving-profile
bench-serving-profile: $(STAMP) ## where the model server's time goes: CPU us per stage, in process
	$(PY) bench/serving/profile.py --out bench/results/serving-profile.json

.PHONY: bench-serving
bench-serving: $(STAMP) $(BENCH_SERVING_VENVS) ## model server vs MLServer, KServe, FastAPI, Starlette
	@command -v wrk >/dev/null || apt-get install -y -qq wrk || \
		{ apt-get update -qq && apt-get install -y -qq wrk; }
	$(PY) bench/serving/run.py --stacks $(BENCH_SERVING_ARGS)

clean: ## remove the virtualenv, tool downloads and caches
	rm -rf $(VENV) .tools .pytest_cache .mypy_cache .ruff_cache build *.egg-info

# ------------------------------------------------------------------------------------ router bench
.PHONY: bench-router bench-router-clients
WRK := $(shell command -v wrk 2>/dev/null)

bench-router: $(STAMP) ## router: our server direct vs through driftline route (90/10, 100% mirror)
	@test -n "$(WRK)" || (apt-get update -qq && apt-get install -y -qq wrk)
	$(PY) bench/router/run.py $(BENCH_ROUTER_ARGS)

bench-router-clients: $(STAMP) ## router upstream client: ours vs aiohttp vs httpx
	$(PY) bench/router/clients.py

# ------------------------------------------------------------------------------ drift benchmark
# Peers live in their own virtualenvs (heavy, conflicting pins); Driftline runs from .venv.
DRIFT_VENVS := bench/.venvs
DRIFT_PEERS := evidently nannyml alibi
PEER_evidently := evidently==0.7.23 "pandas<3"
PEER_nannyml := nannyml==0.13.1 "pandas<3" statsmodels
PEER_alibi := alibi-detect==0.13.0 "pandas<3"

.PHONY: bench-drift bench-drift-venvs

$(DRIFT_VENVS)/%/.installed:
	@echo "creating $(DRIFT_VENVS)/$* (peer for bench-drift) ..."
	$(PYTHON) -m venv $(DRIFT_VENVS)/$*
	$(DRIFT_VENVS)/$*/bin/python -m pip install --quiet --disable-pip-version-check $(PEER_$*)
	@touch $@

bench-drift-venvs: ## create the peer virtualenvs of bench-drift (Evidently, NannyML, Alibi Detect)
	@for p in $(DRIFT_PEERS); do \
		$(MAKE) --no-print-directory $(DRIFT_VENVS)/$$p/.installed || \
		echo "WARNING: could not install the $$p peer; bench-drift reports it as missing" >&2; \
	done

bench-drift: $(STAMP) bench-drift-venvs ## drift: Driftline vs Evidently, NannyML, Alibi, numpy+scipy
	$(PY) bench/drift/run.py --out bench/results

# ---------------------------------------------------------------------------------- local mode
DEMO_ARGS ?=

demo: $(STAMP) ## the quickstart end to end on this machine, narrated (DRIFTLINE_DEMO_SHORT=1: CI mode)
	$(PY) examples/quickstart/demo.py $(DEMO_ARGS)

# ---------------------------------------------------------------------------------- operator bench
.PHONY: bench-operator
BENCH_OPERATOR_ARGS ?=

bench-operator: $(STAMP) ## operator control plane vs the API emulator: rollout, breach, create, 200 Deployments
	$(PY) bench/operator/control_plane.py $(BENCH_OPERATOR_ARGS)

# ------------------------------------------------------------------ Prometheus analysis provider (issue 6)
# The Prometheus server (same Debian package as promtool) for the test that runs the PromQL
# analysis provider against a real server scraping a real router. Only the one binary is kept.
PROMETHEUS := .tools/prometheus

$(PROMETHEUS):
	@rm -rf .tools/deb-prometheus && mkdir -p .tools/deb-prometheus
	cd .tools/deb-prometheus && { apt-get download prometheus 2>/dev/null || \
		{ apt-get update -qq && apt-get download prometheus; }; }
	dpkg-deb -x .tools/deb-prometheus/prometheus_*.deb .tools/deb-prometheus/root
	cp .tools/deb-prometheus/root/usr/bin/prometheus $@
	rm -rf .tools/deb-prometheus
	$@ --version >/dev/null

test: $(PROMETHEUS)
