# comp: `make all` runs the whole pipeline on the demo competition, `make test` runs the tests.
# GPU users: `make setup TORCH=torch` (or a pinned CUDA build) before anything else.

PYTHON ?= python3
TORCH ?= torch==2.13.0
CONFIG ?= configs/demo.yaml
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
COMP := $(BIN)/comp


.PHONY: setup test lint all clean

setup: $(STAMP)

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet "$(TORCH)"
	$(BIN)/pip install --quiet -e ".[dev]"
	touch $@

lint: $(STAMP)
	$(BIN)/ruff check comp tests benchmarks
	$(BIN)/ruff format --check comp tests benchmarks

test: lint
	$(BIN)/pytest

DEMO := data/demo
DEMO_TRAIN := $(DEMO)/shared_task_train.csv
TINY := $(DEMO)/tiny-bert/config.json
FOLDS := folds/demo.json

all: $(STAMP) $(DEMO_TRAIN) $(TINY) $(FOLDS)
	$(COMP) train --config $(CONFIG) --fold all

$(DEMO_TRAIN): $(STAMP) $(CONFIG)
	$(COMP) demo-data --config $(CONFIG)

$(TINY): $(DEMO_TRAIN)
	$(COMP) backbone tiny $(DEMO)/tiny-bert --config $(CONFIG)

$(FOLDS): $(DEMO_TRAIN)
	$(COMP) make-folds --config $(CONFIG)

clean:
	rm -rf data/demo runs folds/*.csv folds/*.json folds/*.yaml submissions/*.csv
