# aospmdm: `make run` serves on SQLite; `make test` lints, type-checks and tests.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
RUNTIME := $(VENV)/.installed-runtime
TESTDEPS := $(VENV)/.installed-test
# Long checks are bounded: the whole reliability run stops after this many seconds.
RELIABILITY_SECONDS ?= 900

.PHONY: run test lint typecheck pytest reliability bench clean

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip

$(RUNTIME): pyproject.toml | $(BIN)/python
	$(BIN)/pip install --quiet -e .
	touch $@

$(TESTDEPS): pyproject.toml | $(BIN)/python
	$(BIN)/pip install --quiet -e '.[test]'
	touch $(RUNTIME) $@

run: $(RUNTIME)
	$(BIN)/aospmdm migrate
	$(BIN)/aospmdm serve --host 127.0.0.1 --port 8000

lint: $(TESTDEPS)
	$(BIN)/ruff check src tests bench migrations
	$(BIN)/ruff format --check src tests bench migrations

typecheck: $(TESTDEPS)
	$(BIN)/mypy

pytest: $(TESTDEPS)
	$(BIN)/pytest -n 2 -q

test: lint typecheck pytest

reliability: $(TESTDEPS)
	timeout --signal=INT $(RELIABILITY_SECONDS) $(BIN)/pytest -q -rP --show-capture=stdout -m reliability tests/reliability

bench: $(TESTDEPS)
	$(BIN)/python -m bench

clean:
	rm -rf $(VENV) .mypy_cache .pytest_cache .ruff_cache
