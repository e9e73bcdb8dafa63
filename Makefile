# comp: `make all` runs the whole pipeline on the demo competition, `make test` runs the tests.
#
#   make all                              demo competition, CPU, end to end
#   make all CONFIG=configs/abjadmed.yaml the real competition (files in data/abjadmed/, a GPU)
#   make all CONFIG="configs/abjadmed.yaml configs/abjadmed/marbertv2.yaml"   layered configs
#   make train FOLDS="0 2"                chosen folds only
#   make -j4 train GPUS="0 1 2 3"         folds in parallel, one process per GPU
#   make -j3 train GPUS="0 0 0"           three folds at once on one GPU
#   make setup TORCH="torch --index-url https://download.pytorch.org/whl/cu128"
#                                         GPU users: a CUDA build of torch instead of the CPU one

PYTHON ?= python3
TORCH ?= torch==2.13.0
CONFIG ?= configs/demo.yaml
GPUS ?=
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
COMP := $(BIN)/comp

.PHONY: setup test lint docs all train clean slurm-up slurm-down test-slurm
.DELETE_ON_ERROR:

setup: $(STAMP)

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet $(TORCH)
	$(BIN)/pip install --quiet -e ".[dev]"
	touch $@

lint: $(STAMP)
	$(BIN)/ruff check comp tests benchmarks
	$(BIN)/ruff format --check comp tests benchmarks

test: lint
	$(BIN)/pytest -m "not slurm"
	@echo "(the Slurm tests are a target of their own: make slurm-up && make test-slurm)"

# A one-node Slurm on this machine (Debian's slurm-wlm and munge; root), for the Slurm tests.
slurm-up:
	bash slurm/up.sh

slurm-down:
	bash slurm/down.sh

test-slurm: $(STAMP)
	$(BIN)/pytest -m slurm -rs

# docs/config.md is generated from the config dataclasses' comments (a test fails when stale)
docs: $(STAMP)
	$(COMP) show-config --docs > docs/config.md.tmp && mv docs/config.md.tmp docs/config.md

clean:
	rm -rf data/demo runs .make folds/*.csv folds/*.json folds/*.yaml submissions/*.csv \
		submissions/*.yaml

# ---------------------------------------------------------------------------------------------
# The pipeline. Its paths come from the config: make builds .make/<config>.mk (after setup, with
# `comp show-config --make`) and reads it; GNU make restarts itself once that file is made.

ifeq ($(filter setup lint test docs clean slurm-up slurm-down test-slurm,$(MAKECMDGOALS)),)
empty :=
space := $(empty) $(empty)
CONFIG_ARGS := $(foreach c,$(CONFIG),--config $(c))
CONFIG_MK := .make/$(subst $(space),+,$(subst /,_,$(strip $(CONFIG)))).mk
-include $(CONFIG_MK)

$(CONFIG_MK): $(CONFIG) $(STAMP)
	@mkdir -p .make
	$(COMP) show-config --make $(CONFIG_ARGS) > $@

FOLDS ?= $(FOLD_IDS)
FOLD_METRICS := $(foreach k,$(FOLD_IDS),$(RUN_DIR)/fold$(k)/metrics.json)
TINY_DEP := $(if $(TINY_BACKBONE),$(TINY_BACKBONE)/config.json)
BACKBONE_DEP := $(if $(PRETRAINED_BACKBONE),$(PRETRAINED_BACKBONE)/config.json,$(TINY_DEP))
gpu_of = $(word $(shell expr $(1) % $(words $(GPUS)) + 1),$(GPUS))

all: $(SUBMISSION) $(ENSEMBLE_DIR)/fold_scores.png
	@$(COMP) summary $(CONFIG_ARGS)

train: $(foreach k,$(FOLDS),$(RUN_DIR)/fold$(k)/metrics.json)

$(TRAIN_FILE):
ifeq ($(IS_DEMO),1)
	$(COMP) demo-data $(CONFIG_ARGS)
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
	$(COMP) backbone tiny $(TINY_BACKBONE) $(CONFIG_ARGS)
endif

# When model.backbone is pretrain.out_dir: comp pretrain skips a folder made with the same
# settings and text (touching it), and resumes an interrupted one.
ifneq ($(PRETRAINED_BACKBONE),)
$(PRETRAINED_BACKBONE)/config.json: $(TRAIN_FILE) $(TEST_FILES) $(TINY_DEP) $(CONFIG)
	$(COMP) pretrain $(CONFIG_ARGS)
endif

# Each step also depends on the config file: after an edit, make-folds writes the same bytes
# unless the folds changed, and comp train retrains a fold only if its training config or folds
# changed (else it marks the fold checked, touching its metrics.json).
$(FOLDS_JSON): $(TRAIN_FILE) $(CONFIG)
	$(COMP) make-folds $(CONFIG_ARGS)

# comp train skips a finished fold and resumes an interrupted one.
$(RUN_DIR)/fold%/metrics.json: $(FOLDS_JSON) $(BACKBONE_DEP) $(CONFIG) | $(TEST_FILES)
	$(if $(GPUS),CUDA_VISIBLE_DEVICES=$(call gpu_of,$*)) $(COMP) train $(CONFIG_ARGS) --fold $*

# predict adds test sets configured after training (a no-op when every fold has them all).
$(ENSEMBLE_DIR)/metrics.json: $(FOLD_METRICS)
	$(COMP) predict $(CONFIG_ARGS)
	$(COMP) ensemble $(CONFIG_ARGS)

$(ENSEMBLE_DIR)/fold_scores.png: $(ENSEMBLE_DIR)/metrics.json
	$(COMP) report $(CONFIG_ARGS)

$(SUBMISSION): $(ENSEMBLE_DIR)/metrics.json
	$(COMP) submit --combined $(CONFIG_ARGS)
endif
