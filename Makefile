# The two commands a new machine needs: `make run` (the platform on embedded defaults) and `make test`.
SHELL := /bin/bash
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed-$(shell sha1sum pyproject.toml | cut -c1-12)

.PHONY: deps system-deps run up test test-fast lint fmt bench bench-ingest clean

# System packages: Mosquitto for the broker the tests start privately (the embedded default falls
# back to an in-process broker without it). PostgreSQL comes from the pgserver wheel.
system-deps:
	@command -v mosquitto >/dev/null 2>&1 || [ -x /usr/sbin/mosquitto ] || { \
	  echo "installing Debian's mosquitto"; \
	  SUDO=$$( [ "$$(id -u)" = 0 ] || echo sudo ); \
	  $$SUDO apt-get update -qq && DEBIAN_FRONTEND=noninteractive $$SUDO apt-get install -y -qq mosquitto >/dev/null; }

$(STAMP): pyproject.toml
	@[ -x $(BIN)/python ] || $(PYTHON) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip
	$(BIN)/pip install -q -e '.[dev]'
	@rm -f $(VENV)/.installed-* && touch $(STAMP)

deps: system-deps $(STAMP)

run: deps
	$(BIN)/vpp up

up: run

lint: deps
	$(BIN)/ruff check vpp services tests migrations
	$(BIN)/ruff format --check vpp services tests migrations
	$(BIN)/mypy
	$(BIN)/lint-imports

fmt: deps
	$(BIN)/ruff check --fix vpp services tests migrations
	$(BIN)/ruff format vpp services tests migrations

test: lint
	$(BIN)/python -m pytest

test-fast: deps
	$(BIN)/python -m pytest tests/unit -q

bench: bench-ingest

bench-ingest: deps
	$(BIN)/vpp bench ingest

clean:
	rm -rf .vpp-data .pytest_cache .mypy_cache .ruff_cache
