# Each target creates .venv and installs what it needs from pyproject.toml by itself.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin

.PHONY: demo test bench clean

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

# two workers: the suite is dominated by single-threaded XLA compilation, so one worker per core halves it
test: $(VENV)/.installed-test
	$(BIN)/python -m pytest -q -n 2 --dist loadfile

bench: $(VENV)/.installed-bench
	$(BIN)/python benchmarks/run_all.py --out benchmarks

clean:
	rm -rf $(VENV) demo-report .pytest_cache
