# Two commands on a fresh machine: `make demo` and `make test`. Each installs what it needs
# into .venv (Python >= 3.11 from PATH, or PYTHON=...), and reinstalls only when the project
# files that list dependencies change.
PYTHON ?= python3
VENV   ?= .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed
PLUGIN_PROJECTS := $(wildcard plugins/*/pyproject.toml)

# `make test` runs the suite on every core (pytest-xdist, one SEKMET and fresh databases per
# worker) and prints the 30 slowest tests; `make test FAST=1` skips the tests marked slow
# (the SIGKILL proof and the other long runs) for a quick local check. CI runs them all.
XDIST  ?= -n auto
ifdef FAST
MARKS  := -m "not slow"
endif

.PHONY: install demo test lint bench clean

$(STAMP): pyproject.toml $(PLUGIN_PROJECTS)
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[test,postgres,web]' $(foreach p,$(PLUGIN_PROJECTS),-e $(dir $(p)))
	@scripts/install-chromium.sh  # the dashboard's browser tests drive Debian's chromium
	@touch $(STAMP)

install: $(STAMP)

demo: $(STAMP)
	$(BIN)/mafhir demo $(DEMO_ARGS)

lint: $(STAMP)
	$(BIN)/ruff check src tests plugins benchmarks
	$(BIN)/mypy  # src/ and the plugins' src/, per [tool.mypy] in pyproject.toml

test: $(STAMP) lint
	$(BIN)/python -m pytest $(XDIST) --durations=30 $(MARKS) $(PYTEST_ARGS)

# `make bench`: every benchmark in its quick mode (a few minutes on 2 cores), then one
# Markdown table of the ratios for the README (benchmarks/run_all.py; BENCH_ARGS=--full for
# the default sizes, BENCH_ARGS="--only startup map" for some).
bench: $(STAMP)
	$(BIN)/python benchmarks/run_all.py $(BENCH_ARGS)

clean:
	rm -rf $(VENV) mafhir-demo .pytest_cache .ruff_cache .mypy_cache
