# Every target installs what it needs into .venv first, so each works on a fresh clone.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed-stamp

export SEGPIPE_HOME ?= $(CURDIR)/.segpipe
export DAGSTER_HOME ?= $(CURDIR)/.dagster_home

.PHONY: install demo test dev bench clean

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e ".[dev]"
	touch $(STAMP)

install: $(STAMP)

$(DAGSTER_HOME)/dagster.yaml: dagster.yaml
	mkdir -p $(DAGSTER_HOME)
	cp dagster.yaml $(DAGSTER_HOME)/dagster.yaml

demo: install $(DAGSTER_HOME)/dagster.yaml
	$(BIN)/segpipe demo
	$(BIN)/segpipe build

test: install
	$(BIN)/pytest

dev: install $(DAGSTER_HOME)/dagster.yaml
	$(BIN)/dagster dev -w workspace.yaml

bench: install
	$(BIN)/python -m segpipe_tests.bench.rasterize
	$(BIN)/python -m segpipe_tests.bench.ingest
	$(BIN)/python -m segpipe_tests.bench.consensus
	$(BIN)/python -m segpipe_tests.bench.backfill
	$(BIN)/python -m segpipe_tests.bench.sampling
	$(BIN)/python -m segpipe_tests.bench.release
	$(BIN)/python -m segpipe_tests.bench.outlines
	$(BIN)/python -m segpipe_tests.bench.whole_graph

clean:
	rm -rf $(SEGPIPE_HOME) $(DAGSTER_HOME)
