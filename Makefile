# The two quickstart commands are `make demo` and `make test`; the rest are conveniences.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
UV_VERSION := 0.13.8
DEMO_TRIALS ?= 12

.PHONY: setup demo test lint bench clean

setup: $(VENV)/.installed

# Reinstall whenever the pinned dependencies change.
$(VENV)/.installed: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --disable-pip-version-check uv==$(UV_VERSION)
	$(BIN)/uv pip install --quiet --python $(BIN)/python -e '.[dev,pipeline]'
	touch $@

demo: setup
	$(BIN)/mme train --max-jobs $(DEMO_TRIALS)

lint: setup
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

test: lint
	$(BIN)/pytest

bench: setup
	$(BIN)/python benchmarks/bench_search.py

clean:
	rm -rf $(VENV) .mme .pytest_cache .ruff_cache
