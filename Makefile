# The two quickstart commands are `make demo` and `make test`; the rest are conveniences.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
UV_VERSION := 0.13.8
DEMO_TRIALS ?= 12

CHECKOV := $(VENV)/checkov/bin/checkov
CHECKOV_VERSION := 3.3.30

.PHONY: setup demo test lint bench bench-tuning clean

setup: $(VENV)/.installed

# Reinstall whenever the pinned dependencies change.
$(VENV)/.installed: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --disable-pip-version-check uv==$(UV_VERSION)
	$(BIN)/uv pip install --quiet --python $(BIN)/python -e '.[dev,pipeline,ui]'
	touch $@

demo: setup
	$(BIN)/mme demo --max-jobs $(DEMO_TRIALS)

lint: setup
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

# checkov pins versions of boto3 and packaging that conflict with ours: it gets its own venv.
$(CHECKOV): | $(VENV)/.installed
	$(PYTHON) -m venv $(VENV)/checkov
	$(VENV)/checkov/bin/python -m pip install --quiet --disable-pip-version-check checkov==$(CHECKOV_VERSION)

test: lint $(CHECKOV)
	MME_REQUIRE_CHECKOV=1 $(BIN)/pytest

# Every benchmark runs its baseline in the same run and prints both; run them on a quiet machine.
# The peers (MLServer, FLAML) install into venvs of their own on first use.
bench: setup
	for bench in benchmarks/bench_*.py; do \
		case "$$bench" in *bench_tuning_quality.py) continue;; esac; \
		$(BIN)/python "$$bench" || exit 1; \
	done

# Tuning quality against FLAML on six datasets at equal and half wall time: about an hour at 16 trials.
bench-tuning: setup
	$(BIN)/python benchmarks/bench_tuning_quality.py --max-jobs 16

clean:
	rm -rf $(VENV) .mme .pytest_cache .ruff_cache
