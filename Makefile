# The two commands a new machine needs: `make run` (the platform on embedded defaults) and `make test`.
SHELL := /bin/bash
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
# Exact versions: requirements-dev.lock (what CI tested; the Dockerfile installs requirements.lock, its
# runtime subset). pyproject.toml holds the ranges; `make lock` re-resolves both files from it.
LOCK := requirements-dev.lock
STAMP := $(VENV)/.installed-$(shell cat pyproject.toml $(LOCK) | sha1sum | cut -c1-12)
UV_COMPILE = $(BIN)/uv pip compile pyproject.toml --universal --python-version 3.11 --quiet --custom-compile-command 'make lock'

.PHONY: hooks deps system-deps run up test test-fast lint fmt lock lock-upgrade bench bench-ingest bench-api bench-dr bench-soak clean

# System packages: Mosquitto for the brokers the tests start privately (the embedded default falls
# back to an in-process broker without it); Chromium and CJK fonts for the dashboard's browser tests
# and screenshots (Playwright drives Debian's Chromium; it never downloads a browser).
# PostgreSQL comes from the pgserver wheel; pg_auto_failover (and the PostgreSQL 15 it runs on) for the
# high-availability tests and `vpp bench ha`, which start a monitor, a primary and a synchronous standby.
# Prometheus for `promtool check rules` on deploy/prometheus (make test); iproute2 for the network
# namespaces the ECHONET Lite gateway tests create.
SYSTEM_PACKAGES := mosquitto mosquitto-clients chromium fonts-noto-cjk openssl prometheus iproute2 \
  postgresql-15-auto-failover pg-auto-failover-cli
system-deps:
	@missing=""; for p in $(SYSTEM_PACKAGES); do dpkg -s $$p >/dev/null 2>&1 || missing="$$missing $$p"; done; \
	if [ -n "$$missing" ]; then \
	  echo "installing Debian packages:$$missing"; \
	  SUDO=$$( [ "$$(id -u)" = 0 ] || echo sudo ); \
	  $$SUDO apt-get update -qq && DEBIAN_FRONTEND=noninteractive $$SUDO apt-get install -y -qq $$missing >/dev/null; \
	fi

$(STAMP): pyproject.toml $(LOCK)
	@[ -x $(BIN)/python ] || $(PYTHON) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip
	$(BIN)/pip install -q -r $(LOCK)
	$(BIN)/pip install -q --no-deps -e .
	@rm -f $(VENV)/.installed-* && touch $(STAMP)

deps: system-deps $(STAMP)

# After changing dependencies in pyproject.toml: keeps every pin that still fits, resolves the rest.
lock: deps
	$(UV_COMPILE) -o requirements.lock
	$(UV_COMPILE) --extra dev -c requirements.lock -o requirements-dev.lock

# Everything to the newest versions pyproject.toml allows (then run `make test` before committing).
lock-upgrade: deps
	$(UV_COMPILE) --upgrade -o requirements.lock
	$(UV_COMPILE) --extra dev -c requirements.lock -o requirements-dev.lock

run: deps
	$(BIN)/vpp up

up: run

lint: deps
	$(BIN)/ruff check vpp services bench tests migrations
	$(BIN)/ruff format --check vpp services bench tests migrations
	$(BIN)/mypy
	$(BIN)/lint-imports

fmt: deps
	$(BIN)/ruff check --fix vpp services bench tests migrations
	$(BIN)/ruff format vpp services bench tests migrations

# The lint half of `make test` as git pre-commit hooks (.pre-commit-config.yaml).
hooks: deps
	$(BIN)/pre-commit install

test: lint
	$(BIN)/python -m pytest

test-fast: deps
	$(BIN)/python -m pytest tests/unit -q

bench: bench-ingest bench-api bench-dr bench-soak

bench-ingest: deps
	$(BIN)/vpp bench ingest

bench-api: deps
	$(BIN)/vpp bench api

bench-dr: deps
	$(BIN)/vpp bench dr

bench-soak: deps
	$(BIN)/vpp bench soak

clean:
	rm -rf .vpp-data .pytest_cache .mypy_cache .ruff_cache
