# comp: `make all` runs the whole pipeline on the demo competition, `make test` runs the tests.
#
#   make all                              demo competition, CPU, end to end
#   make all CONFIG=configs/abjadmed.yaml the real competition (files in data/abjadmed/, a GPU)
#   make train FOLDS="0 2"                chosen folds only
#   make -j4 train GPUS="0 1 2 3"         folds in parallel, one process per GPU
#   make -j3 train GPUS="0 0 0"           three folds at once on one GPU
#   make setup TORCH=torch                GPU users: a CUDA build of torch instead of the CPU one

PYTHON ?= python3
TORCH ?= torch==2.13.0
CONFIG ?= configs/demo.yaml
GPUS ?=
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
COMP := $(BIN)/comp

.PHONY: setup test lint all train clean
.DELETE_ON_ERROR:

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

clean:
	rm -rf data/demo runs .make folds/*.csv folds/*.json folds/*.yaml submissions/*.csv \
		submissions/*.yaml

# ---------------------------------------------------------------------------------------------
# The pipeline. Its paths come from the config: make builds .make/<config>.mk (after setup, with
# `comp show-config --make`) and reads it; GNU make restarts itself once that file is made.

ifeq ($(filter setup lint test clean,$(MAKECMDGOALS)),)
CONFIG_MK := .make/$(subst /,_,$(CONFIG)).mk
-include $(CONFIG_MK)

$(CONFIG_MK): $(CONFIG) $(STAMP)
	@mkdir -p .make
	$(COMP) show-config --make --config $(CONFIG) > $@

FOLDS ?= $(FOLD_IDS)
FOLD_METRICS := $(foreach k,$(FOLD_IDS),$(RUN_DIR)/fold$(k)/metrics.json)
BACKBONE_DEP := $(if $(TINY_BACKBONE),$(TINY_BACKBONE)/config.json)
gpu_of = $(word $(shell expr $(1) % $(words $(GPUS)) + 1),$(GPUS))

all: $(SUBMISSION) $(ENSEMBLE_DIR)/fold_scores.png
	@$(COMP) summary --config $(CONFIG)

train: $(foreach k,$(FOLDS),$(RUN_DIR)/fold$(k)/metrics.json)

$(TRAIN_FILE):
ifeq ($(IS_DEMO),1)
	$(COMP) demo-data --config $(CONFIG)
else
	@echo "error: $(TRAIN_FILE) not found: put the competition's files in $(dir $(TRAIN_FILE))" >&2
	@if command -v kaggle >/dev/null; then echo "  with the Kaggle CLI:" \
		"kaggle competitions download -c <competition> -p $(dir $(TRAIN_FILE))" \
		"&& unzip -o '$(dir $(TRAIN_FILE))*.zip' -d $(dir $(TRAIN_FILE))" >&2; fi
	@exit 2
endif

$(TEST_FILES): | $(TRAIN_FILE)
	@test -f $@ || { echo "error: test file $@ not found (see data.test_sets in $(CONFIG))" >&2; \
		exit 2; }

ifneq ($(TINY_BACKBONE),)
$(TINY_BACKBONE)/config.json: $(TRAIN_FILE)
	$(COMP) backbone tiny $(TINY_BACKBONE) --config $(CONFIG)
endif

# Each step also depends on the config file: after an edit, make-folds writes the same bytes
# unless the folds changed, and comp train retrains a fold only if its training config or folds
# changed (else it marks the fold checked, touching its metrics.json).
$(FOLDS_JSON): $(TRAIN_FILE) $(CONFIG)
	$(COMP) make-folds --config $(CONFIG)

# comp train skips a finished fold and resumes an interrupted one.
$(RUN_DIR)/fold%/metrics.json: $(FOLDS_JSON) $(BACKBONE_DEP) $(CONFIG) | $(TEST_FILES)
	$(if $(GPUS),CUDA_VISIBLE_DEVICES=$(call gpu_of,$*)) $(COMP) train --config $(CONFIG) --fold $*

# predict adds test sets configured after training (a no-op when every fold has them all).
$(ENSEMBLE_DIR)/metrics.json: $(FOLD_METRICS)
	$(COMP) predict --config $(CONFIG)
	$(COMP) ensemble --config $(CONFIG)

$(ENSEMBLE_DIR)/fold_scores.png: $(ENSEMBLE_DIR)/metrics.json
	$(COMP) report --config $(CONFIG)

$(SUBMISSION): $(ENSEMBLE_DIR)/metrics.json
	$(COMP) submit --combined --config $(CONFIG)
endif
