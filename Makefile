# The two commands of the quick start: `make demo` and `make test`. Both build .venv at the
# root and reuse it while pyproject.toml and the constraints are unchanged.
SHELL := /bin/bash
PYTHON ?= python3.11
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
# torch==2.13.0 is a CPU wheel on these machines; unpinned, pip pulls a CUDA build of several GB.
CONSTRAINTS ?= constraints/cpu.txt
# Used when its server answers; otherwise the tests start the embedded PostgreSQL of `make demo`
# (deploy/dev/ensure-services.sh, deploy/dev/embedded_db.py).
TEST_DATABASE_URL ?= postgres://postgres@127.0.0.1:5432/spatialprefs
TEST_BROKER_URL ?= redis://127.0.0.1:6379/15
# Settings refuse to start without SECRET_KEY (DJANGO_DEBUG=0 is the default): the tests and the
# migrations check get a random key made once per run (the recursive make inherits it), never a
# key written here; the Celery workers and manage.py that tests start inherit it from pytest.
ifndef TEST_SECRET_KEY
TEST_SECRET_KEY := $(shell head -c 48 /dev/urandom | od -An -tx1 | tr -d ' \n')
endif
export TEST_SECRET_KEY

.PHONY: demo test venv services lint check-migrations clean bench

venv: $(STAMP)

$(STAMP): pyproject.toml $(CONSTRAINTS)
	@command -v $(PYTHON) >/dev/null || { echo "error: $(PYTHON) not found (Python 3.11 is required)"; exit 1; }
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	@echo "Installing SpatialPrefs and its dependencies into $(VENV) (torch, diffusers, the embedded"
	@echo "PostgreSQL, ...: about 1 GB, typically 2 minutes; once, until pyproject.toml changes)."
	@$(BIN)/python -m pip install --quiet --upgrade pip
	@$(BIN)/python -m pip install --quiet --progress-bar off -c $(CONSTRAINTS) -e '.[ml,dev]'
	@echo "Installed into $(VENV)."
	@touch $(STAMP)

services:
	@bash deploy/dev/ensure-services.sh
	@bash deploy/dev/ensure-chromium.sh

demo: venv
	@bash deploy/dev/demo.sh

test: venv services
	SECRET_KEY=$(TEST_SECRET_KEY) CELERY_BROKER_URL=$(TEST_BROKER_URL) \
		bash deploy/dev/ensure-services.sh --database '$(TEST_DATABASE_URL)' -- \
		$(BIN)/python -m pytest -p no:cacheprovider
	$(MAKE) --no-print-directory lint check-migrations

lint: venv
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

check-migrations: venv
	SECRET_KEY=$(TEST_SECRET_KEY) \
		bash deploy/dev/ensure-services.sh --database '$(TEST_DATABASE_URL)' -- \
		$(BIN)/python manage.py makemigrations --check --dry-run

bench: venv services
	@echo "see bench/README.md for each benchmark's command"

# var/ holds the embedded PostgreSQL's data too: stop its server before the folder goes.
clean:
	@if [ -x $(BIN)/python ]; then $(BIN)/python deploy/dev/embedded_db.py stop; fi
	rm -rf var .pytest_cache
