# Every target sets itself up: a fresh machine needs only Python 3.11+.
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed

.PHONY: setup tools demo up test lint lock lock-check format typecheck clean

# The lock tool's own version: only `make lock` uses it (installs never need it).
UV_VERSION := 0.13.9

setup: $(STAMP)

# Installs the exact versions (with hashes) of lock/ when one fits this interpreter (CPython 3.11 or
# 3.12 on glibc Linux x86_64), else pyproject.toml's ranges, saying so. The bundled Redis/PostgreSQL
# binaries (extra "embedded") come along either way, so the fallback to them is always there.
$(STAMP): pyproject.toml $(wildcard lock/*.txt)
	@$(PYTHON) -c 'import sys; assert sys.version_info >= (3, 11), "Python 3.11+ needed"'
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	@if lock=$$($(BIN)/python lock/lock.py target); then \
	  $(BIN)/python lock/lock.py check || \
	    echo "WARNING: installing a lock older than pyproject.toml; run 'make lock'"; \
	  echo "installing the locked versions of $$lock"; \
	  $(BIN)/python -m pip install --quiet --require-hashes -r $$lock && \
	  $(BIN)/python -m pip install --quiet --no-deps --no-build-isolation -e .; \
	else \
	  echo "installing from pyproject.toml's version ranges instead: what gets installed may differ"; \
	  $(BIN)/python -m pip install --quiet --upgrade pip && \
	  $(BIN)/python -m pip install --quiet -e ".[dev,embedded]"; \
	fi
	@touch $(STAMP)

# Remakes lock/*.txt from pyproject.toml against the package index (on purpose: an upstream
# release never changes what `make setup` installs until someone runs this and commits).
lock: setup
	$(BIN)/python -m pip install --quiet uv==$(UV_VERSION)
	$(BIN)/python lock/lock.py update --uv $(BIN)/uv

# Offline: fails when pyproject.toml's dependencies changed after the lock was made.
lock-check:
	$(PYTHON) lock/lock.py check

# promtool (from Debian's prometheus package) for the tests that check the metrics exposition
# and the alerting rules. No PyPI package ships it. Only the binary is taken: the package is
# downloaded and unpacked into .venv/bin (no Prometheus service installed, no root needed unless
# apt's package lists must be fetched first). Without apt the promtool tests skip, saying why.
tools: setup
	@if command -v promtool >/dev/null 2>&1 || test -x $(BIN)/promtool; then exit 0; fi; \
	if ! command -v apt-get >/dev/null 2>&1; then \
	  echo "no promtool and no apt-get: the promtool checks will be skipped"; exit 0; fi; \
	tmp=$$(mktemp -d); \
	( cd $$tmp && apt-get download prometheus >/dev/null 2>&1 ) || \
	  { test "$$(id -u)" = 0 && apt-get update -qq && ( cd $$tmp && apt-get download prometheus >/dev/null 2>&1 ); } || \
	  { echo "could not download Debian's prometheus package: the promtool checks will be skipped"; rm -rf $$tmp; exit 0; }; \
	dpkg-deb -x $$tmp/prometheus_*.deb $$tmp/x && cp $$tmp/x/usr/bin/promtool $(BIN)/promtool && \
	  echo "installed promtool into $(BIN)"; rm -rf $$tmp

demo: setup  ## bring the stack up (2 pods) and play 50 scripted PvP matches
	$(BIN)/cardgame demo --pods 2 --pairs 50

up: setup  ## run auth + 2 pods in the foreground; Ctrl-C stops
	$(BIN)/cardgame up --pods 2

test: setup tools  ## the whole test suite against real Redis and PostgreSQL
	$(BIN)/pytest

lint: typecheck  ## mypy, ruff's rules and its formatter (check only)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

format: setup
	$(BIN)/ruff format .

# Which files, and how strictly, is pyproject.toml's [tool.mypy].
typecheck: setup
	$(BIN)/mypy

clean:
	rm -rf $(VENV) .pytest_cache .ruff_cache .mypy_cache *.egg-info
