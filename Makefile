# Encargo: development tasks. `make run` starts everything; `make test` is what CI runs.
#
#   make run            Redis + PostgreSQL (data in .run/), migrations, sandbox core, web, worker, scheduler
#   make stop           stop what an interrupted `make run` left running
#   make clean-run      stop, then delete .run/ (database, Redis data, generated secrets)
#   make web | worker | scheduler | sandbox-core   one process with .run/env (services must be up)
#   make migrate        apply migrations to DATABASE_URL from .run/env
#   make chat           talk to the running system as a customer (FROM=+50370000001)
#   make test           install what is missing, lint, pytest
#   make lint           ruff + mypy + lint-imports (imports point one way: pyproject [tool.importlinter])
#   make env-example    write .env.example from the settings declared in config.py
#   make bench          run the benchmarks (router, ingest, pipeline, LLM cost, notifications; ~20 minutes)

SHELL := /bin/bash
PYTHON ?= python3
VENV := .venv
VPY := $(VENV)/bin/python
STAMP := $(VENV)/.installed
RUN_ALL := $(VPY) -m scripts.run_all
FROM ?= +50370000001
PYTEST_ARGS ?=
# apt-get runs through sudo when we are not root.
SUDO := $(shell [ "$$(id -u)" -eq 0 ] || echo sudo)

.DEFAULT_GOAL := help
.PHONY: help venv run stop clean-run web worker scheduler sandbox-core migrate chat lint test bench env-example

help:
	@sed -n '2,13s/^# \{0,1\}//p' Makefile

# --- virtual environment ------------------------------------------------------------------
# A fresh Debian may lack the venv module (package python3-venv): install it and try again.
$(VPY):
	@if ! $(PYTHON) -m venv $(VENV); then \
	  echo "'$(PYTHON) -m venv' failed; installing python3-venv with apt-get"; \
	  rm -rf $(VENV); \
	  $(SUDO) env DEBIAN_FRONTEND=noninteractive apt-get update -q && \
	  $(SUDO) env DEBIAN_FRONTEND=noninteractive apt-get install -y -q python3 python3-venv python3-pip && \
	  $(PYTHON) -m venv $(VENV); \
	fi

# Reinstall only when pyproject.toml is newer than the stamp: a second run is quick.
$(STAMP): pyproject.toml | $(VPY)
	$(VPY) -m pip install --disable-pip-version-check -q -e '.[dev]'
	@touch $(STAMP)

venv: $(STAMP)

# --- running --------------------------------------------------------------------------------
run: venv
	$(VPY) -m scripts.bootstrap_env
	$(RUN_ALL)

stop: venv
	$(RUN_ALL) --stop

clean-run: venv
	$(RUN_ALL) --clean

web worker scheduler sandbox-core: venv
	$(RUN_ALL) --only $@

migrate: venv
	$(RUN_ALL) --exec $(VENV)/bin/encargo-migrate

chat: venv
	$(RUN_ALL) --exec $(VPY) scripts/chat.py --from '$(FROM)'

# .env.example is generated; tests/test_config.py fails when it is out of date.
env-example: venv
	$(VPY) -m scripts.env_example

# --- checks ---------------------------------------------------------------------------------
lint: venv
	$(VENV)/bin/ruff check .
	$(VENV)/bin/mypy
	$(VENV)/bin/lint-imports

# Redis, PostgreSQL, Chromium and Tesseract come from apt-get (devservices); the tests start their own
# throw-away servers. pytest's exit 5 (no test collected) fails too: nothing would be tested.
test: venv
	@if [ "$$(id -u)" -ne 0 ] && [ -t 0 ] && command -v sudo >/dev/null 2>&1 && \
	   { ! command -v redis-server >/dev/null || ! command -v chromium >/dev/null || \
	     ! command -v tesseract >/dev/null || ! ls /usr/lib/postgresql/*/bin/postgres >/dev/null 2>&1; }; then \
	  echo "sudo may ask for your password to install redis-server, postgresql, chromium and tesseract-ocr"; sudo -v; \
	fi
	$(VPY) -m scripts.devservices --browser --ocr
	$(MAKE) --no-print-directory lint
	@rc=0; $(VENV)/bin/pytest $(PYTEST_ARGS) || rc=$$?; \
	if [ $$rc -eq 5 ]; then echo "pytest collected no tests: failing, since nothing was tested" >&2; fi; \
	exit $$rc

bench: venv
	$(VPY) bench/router.py
	$(VPY) -m bench.ingest
	$(VPY) -m bench.pipeline
	$(VPY) -m bench.llm_cost
	$(VPY) -m bench.notifications
