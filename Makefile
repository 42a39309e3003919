# The two commands a user needs: `make demo` (the whole pipeline on the embedded stack)
# and `make test` (lint, types, unit and integration tests). Both build the project-local
# virtualenv first; nothing else has to be installed by hand.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: demo test lint typecheck unit integration fuzz bench clean prometheus-tools

$(STAMP): pyproject.toml
	@$(PYTHON) -c 'import sys; sys.exit(0 if sys.version_info >= (3, 11) else "revstream needs Python 3.11 or newer")'
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --disable-pip-version-check --upgrade pip==26.3
	$(BIN)/python -m pip install --quiet --disable-pip-version-check -e '.[dev]'
	@touch $(STAMP)

demo: $(STAMP)
	$(BIN)/revstream demo

lint: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

typecheck: $(STAMP)
	$(BIN)/mypy

unit: $(STAMP)
	$(BIN)/pytest -m unit -q

integration: $(STAMP) prometheus-tools
	$(BIN)/pytest -m integration -q

test: lint typecheck prometheus-tools
	$(BIN)/pytest -q

# The monitoring tests run promtool and a real Prometheus from the Debian package `prometheus`.
# As root on a Debian-like machine (CI runs .ci/run as root) it is installed when missing; otherwise
# those tests skip and say why.
prometheus-tools:
	@command -v promtool >/dev/null 2>&1 || [ "$$(id -u)" != 0 ] || ! command -v apt-get >/dev/null 2>&1 || { \
	  echo "installing the Debian package prometheus (promtool, prometheus) for the monitoring tests"; \
	  { apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends \
	    prometheus; } >/dev/null 2>&1 || echo "could not install prometheus: the monitoring tests will skip"; }

# Hypothesis fuzzing of every decoder (>= 100,000 inputs, a few minutes); `make test` runs a smoke
# version of the same tests. The counts go to .fuzz-report.json and the end of the output.
fuzz: $(STAMP)
	FUZZ_SCALE=1 FUZZ_REPORT=.fuzz-report.json $(BIN)/pytest tests/fuzz -q -p no:cacheprovider

bench: $(STAMP)
	$(BIN)/python -m bench

clean:
	rm -rf $(VENV) .revstream .mypy_cache .pytest_cache .ruff_cache .fuzz-report.json
