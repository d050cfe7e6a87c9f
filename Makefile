# Every target installs what it needs into .venv first, so each works on a fresh clone.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed-stamp
# Debian's Chromium, for the browser test of the Dagster UI (Playwright drives it; it never downloads a browser).
CHROMIUM := /usr/bin/chromium
# Debian's Redis, the broker of the test that runs a build's steps on Celery workers (PyPI's Redis
# server wheels are years old); the test starts its own server, on 127.0.0.1 and a free port.
REDIS := /usr/bin/redis-server

export SEGPIPE_HOME ?= $(CURDIR)/.segpipe
# Dagster's run history in the project, where `segpipe build` keeps it too: `make demo`, `make dev` and
# any `segpipe` command run in the checkout share one instance.
export DAGSTER_HOME ?= $(SEGPIPE_HOME)/dagster_home

.PHONY: install demo test dev bench clean

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e ".[dev]"
	touch $(STAMP)

$(CHROMIUM):
	command -v apt-get >/dev/null || { echo "install Chromium at $(CHROMIUM) (the UI test needs it)"; exit 1; }
	apt-get update -qq
	DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends chromium

install: $(STAMP)

$(DAGSTER_HOME)/dagster.yaml: dagster.yaml
	mkdir -p $(DAGSTER_HOME)
	cp dagster.yaml $(DAGSTER_HOME)/dagster.yaml

demo: install $(DAGSTER_HOME)/dagster.yaml
	$(BIN)/segpipe demo
	$(BIN)/segpipe build

$(REDIS):
	command -v apt-get >/dev/null || { echo "install redis-server at $(REDIS) (the Celery test needs it)"; exit 1; }
	apt-get update -qq
	DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends redis-server

test: install $(CHROMIUM) $(REDIS)
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
	$(BIN)/python -m segpipe_tests.bench.floors
	$(BIN)/python -m segpipe_tests.bench.whole_graph
	$(BIN)/python -m segpipe_tests.bench.scale_sweep
	$(BIN)/python -m segpipe_tests.bench.hostile

clean:
	rm -rf $(SEGPIPE_HOME) $(DAGSTER_HOME)
