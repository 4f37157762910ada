# Each target creates .venv and installs what it needs from pyproject.toml by itself.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin

.PHONY: demo test test-fast lint format bench clean

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip

$(VENV)/.installed-core: pyproject.toml | $(BIN)/python
	$(BIN)/pip install -q -e .
	touch $@

$(VENV)/.installed-%: pyproject.toml | $(BIN)/python
	$(BIN)/pip install -q -e ".[$*]"
	touch $@

demo: $(VENV)/.installed-core
	$(BIN)/imcphys demo --out demo-report

# Everything, as CI runs it (lint first: it takes a second). Two workers: the suite is dominated by
# single-threaded XLA compilation, so one worker per core halves it.
test: lint
	$(BIN)/python -m pytest -q -n 2 --dist loadfile

# The edit loop: everything but the tests marked slow (notebooks, the wheel install, CLI round trips).
test-fast: $(VENV)/.installed-test
	$(BIN)/python -m pytest -q -n 2 --dist loadfile -m "not slow"

lint: $(VENV)/.installed-test
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

format: $(VENV)/.installed-test
	$(BIN)/ruff format .
	$(BIN)/ruff check --fix .

bench: $(VENV)/.installed-bench
	$(BIN)/python benchmarks/run_all.py --out benchmarks

clean:
	rm -rf $(VENV) demo-report .pytest_cache
