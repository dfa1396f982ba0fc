# Two commands on a fresh machine: `make demo` and `make test`. Each installs what it needs
# into .venv (Python >= 3.11 from PATH, or PYTHON=...), and reinstalls only when the project
# files that list dependencies change.
PYTHON ?= python3
VENV   ?= .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed
PLUGIN_PROJECTS := $(wildcard plugins/*/pyproject.toml)

.PHONY: install demo test lint bench clean

$(STAMP): pyproject.toml $(PLUGIN_PROJECTS)
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[test,postgres]' $(foreach p,$(PLUGIN_PROJECTS),-e $(dir $(p)))
	@touch $(STAMP)

install: $(STAMP)

demo: $(STAMP)
	$(BIN)/mafhir demo $(DEMO_ARGS)

lint: $(STAMP)
	$(BIN)/ruff check src tests plugins benchmarks

test: $(STAMP) lint
	$(BIN)/python -m pytest $(PYTEST_ARGS)

bench: $(STAMP)
	$(BIN)/python benchmarks/bench_map.py
	$(BIN)/python benchmarks/bench_send.py
	$(BIN)/python benchmarks/bench_sync.py
	$(BIN)/python benchmarks/bench_hl7v2.py
	$(BIN)/python benchmarks/bench_pharmacy.py

clean:
	rm -rf $(VENV) mafhir-demo .pytest_cache .ruff_cache
