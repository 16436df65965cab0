# The two commands a fresh machine needs: `make run` and `make test` (both install first).
SHELL := /bin/bash
.DEFAULT_GOAL := help

PYTHON_SYSTEM ?= python3
VENV := .venv
PY := $(VENV)/bin/python
UV_VERSION := 0.13.9
STAMP := $(VENV)/.installed
# Tools stay quiet and offline-friendly; a user's own settings win.
export ZENML_ANALYTICS_OPT_IN ?= false
export ZENML_AUTO_OPEN_DASHBOARD ?= false
export BENTOML_DO_NOT_TRACK ?= true
MLFLOW_DIR := $(CURDIR)/state/mlflow
# The service image (container/): podman builds and runs it (with runc), debootstrap makes its base.
CONTAINER_TOOLS := podman runc debootstrap
# The console's browser tests drive Debian's chromium (Playwright cannot download a browser here).
CHROMIUM ?= /usr/bin/chromium

.PHONY: help install run test bench lock dashboard dashboard-stop mlflow-ui stack-local eda clean-state image container-tools

help: ## List the targets
	@grep -E '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  make %-15s %s\n", $$1, $$2}'

# --compile-bytecode: uv writes no .pyc by default, and where PYTHONDONTWRITEBYTECODE is set (as on
# these machines) nothing ever does, so every process (a gateway restart, a BentoML worker, a
# pipeline step) would compile its imports from source again: ~30 s once here saves seconds each time.
$(STAMP): requirements.lock requirements.txt pyproject.toml Makefile
	@test -x $(PY) || $(PYTHON_SYSTEM) -m venv $(VENV)
	@$(PY) -m pip install --quiet --disable-pip-version-check uv==$(UV_VERSION)
	@echo "installing the pinned environment (requirements.lock) into $(VENV), then compiling it to bytecode ..."
	$(VENV)/bin/uv pip sync --compile-bytecode --python $(PY) requirements.lock
	$(VENV)/bin/uv pip install --quiet --python $(PY) --no-deps -e .   # the project itself (pyproject.toml)
	@touch $(STAMP)

install: $(STAMP) ## Create .venv (if missing) and install the pinned environment

run: $(STAMP) ## Install, then run the main job on the embedded default data
	$(PY) run.py

test: $(STAMP) container-tools $(CHROMIUM) ## Install, then run the test suite (isolated ZenML/MLflow/BentoML homes)
	FRAUD_CHROMIUM=$(CHROMIUM) $(PY) -m pytest
# Without root, make test and make bench go on without the container tools (tests/serving/test_image.py
# and bench/image.py skip; the test fails on CI).
test bench: CONTAINER_TOOLS_OPTIONAL := 1

$(CHROMIUM): # Debian's chromium for the console's browser tests, installed only when missing
	@echo "installing chromium from Debian's packages (the console's browser tests use it) ..."
	@if [ "$$(id -u)" = 0 ]; then sudo=; else sudo=sudo; fi; \
		$$sudo apt-get update -qq && DEBIAN_FRONTEND=noninteractive $$sudo apt-get install -y -qq chromium >/dev/null
	@test -x $(CHROMIUM) || { echo "chromium is not at $(CHROMIUM) after installing it; set CHROMIUM=..." >&2; exit 1; }

image: $(STAMP) container-tools ## Build the service's OCI image with podman (BENTO=name:version, else the deployed champion)
	$(PY) container/image.py $(if $(BENTO),--bento $(BENTO))

container-tools: ## Install podman, runc and debootstrap with apt-get when one is missing (needs root)
	@missing=""; for tool in $(CONTAINER_TOOLS); do command -v $$tool >/dev/null || missing="$$missing $$tool"; done; \
	if [ -z "$$missing" ]; then exit 0; fi; \
	if [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null; then \
		echo "installing$$missing with apt-get (about a minute) ..."; \
		apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq$$missing > /dev/null; \
	else \
		echo "missing:$$missing; install as root: apt-get install -y$$missing" >&2; \
		$(if $(CONTAINER_TOOLS_OPTIONAL),echo "(the image's test and benchmark skip without them)" >&2,exit 1); \
	fi

bench: $(STAMP) container-tools ## Run every benchmark in bench/ (figures in bench/results/*.json)
	@set -e; for script in bench/*.py; do name=$$(basename $$script .py); \
		case $$name in __init__|common|report|reference_service) continue;; esac; \
		echo "== bench.$$name"; $(PY) -m bench.$$name; done
	$(PY) -m bench.report

lock: ## Re-resolve requirements.txt into requirements.lock (Python 3.11, Linux x86_64)
	@test -x $(VENV)/bin/uv || { $(PYTHON_SYSTEM) -m venv $(VENV) && $(PY) -m pip install --quiet uv==$(UV_VERSION); }
	$(VENV)/bin/uv pip compile requirements.txt --python-version 3.11 \
		--python-platform x86_64-manylinux_2_28 --quiet -o requirements.lock

stack-local: $(STAMP) ## Register and activate the local stack (MLflow, Evidently, BentoML)
	$(PY) run.py --stack local

eda: $(STAMP) ## Execute notebooks 01-03 headless (EDA_ROWS=N for a sample); notebooks + HTML in reports/eda/
	./run_eda_simple.sh

dashboard: $(STAMP) ## Start the ZenML dashboard on http://127.0.0.1:8237
	$(PY) -m stacks.dashboard

dashboard-stop: ## Stop the ZenML dashboard
	$(PY) -m stacks.dashboard --stop

mlflow-ui: $(STAMP) ## MLflow UI on http://127.0.0.1:5000 over the project's tracking store
	@mkdir -p $(MLFLOW_DIR)/artifacts
	$(VENV)/bin/mlflow ui --backend-store-uri sqlite:///$(MLFLOW_DIR)/mlflow.db \
		--default-artifact-root $(MLFLOW_DIR)/artifacts --host 127.0.0.1 --port 5000

clean-state: ## Delete generated stores, data and reports (not ZenML's own config)
	rm -rf state reports data/generated
