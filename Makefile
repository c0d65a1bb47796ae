# Every target sets itself up: a fresh machine needs only Python 3.11+.
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed

.PHONY: setup tools demo up test test-fast lint format typecheck clean

setup: $(STAMP)

# Installs the project, plus bundled Redis/PostgreSQL binaries when the machine has none.
$(STAMP): pyproject.toml
	@$(PYTHON) -c 'import sys; assert sys.version_info >= (3, 11), "Python 3.11+ needed"'
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	@extras=dev; \
	if ! command -v redis-server >/dev/null 2>&1 || \
	   ! { command -v initdb >/dev/null 2>&1 || command -v pg_config >/dev/null 2>&1 || \
	       ls -d /usr/lib/postgresql/*/bin >/dev/null 2>&1; }; then \
	  echo "no local redis-server/PostgreSQL binaries: installing bundled ones"; extras=dev,embedded; \
	fi; \
	$(BIN)/python -m pip install --quiet -e ".[$$extras]"
	@touch $(STAMP)

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

lint: setup
	$(BIN)/ruff check .

format: setup
	$(BIN)/ruff format .

typecheck: setup
	$(BIN)/mypy servers fake_client

clean:
	rm -rf $(VENV) .pytest_cache .ruff_cache .mypy_cache *.egg-info
