"""`model.kind: transformer`: the seed paper's recipe (a pretrained encoder, a [CLS] or mean head,
LDAM/DRW, FGM, LLRD AdamW), one model per fold, on the shared neural parts (`comp.neural`).

The package holds the recipe, split by job: `model` (classifier and heads), `losses` (LDAM,
DRW), `fgm`, `context` (what a step works with), `step` (the sync-free step) and `eager_step`,
`graphs` (CUDA graphs), `loop` (one fold, top to bottom), `run` (what a run sets up once) and
`inference` (a finished fold reloaded from its folder). This module is the kind's face to the fold
frame (see `comp.kinds`); it imports torch only when a run starts or a fold predicts.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path

from rich.console import Console

from comp.config import Config
from comp.data import TestData
from comp.kinds import KindRun, RunInputs
from comp.neural.files import (  # light: names only
    BACKBONE,
    BEST_MODEL,
    CHECKPOINT,
    PREVIOUS_CHECKPOINT,
    backbone_sha256,
)

SECTION = None  # the recipe's keys are the core `model` and `train` sections
USES_BACKBONE = True
ENCODER_FOLDS = True  # best_model.pt and backbone/: comp.neural.fold_encoder
FOLD_FILES = (CHECKPOINT, PREVIOUS_CHECKPOINT, BEST_MODEL, BACKBONE)
SCRATCH_FILES = (CHECKPOINT, PREVIOUS_CHECKPOINT)  # only an unfinished fold needs them

# train keys that change where, how fast or how often things happen, not the model a fold makes
NOT_SHAPING = {
    "experiment",
    "runs_dir",
    "device",
    "compile",
    "pad_multiple",
    "eval_batch_size",
    "eval_every",
    "checkpoint_every",
    "max_nonfinite_steps",
    "step",
    "cuda_graphs",
    "attention",
    "log_every",
    "tensorboard",
}


def shaping_config(config: Config, content: bool = True) -> dict:
    """The model and train keys that shape a fold; with `content`, for a backbone that is a
    local folder also its content hash, so that a backbone rebuilt or re-pretrained at the same
    path retrains (`comp runs` shows the keys without reading the folder)."""
    train = dataclasses.asdict(config.train)
    model = {k: v for k, v in dataclasses.asdict(config.model).items() if k != "kind"}
    if content and (sha256 := backbone_sha256(config.model.backbone)):
        model["backbone_sha256"] = sha256
    return {"model": model, "train": {k: v for k, v in train.items() if k not in NOT_SHAPING}}


def start(inputs: RunInputs, device: str | None, console: Console) -> KindRun:
    from comp.kinds.transformer.run import start as start_run

    return start_run(inputs, device, console)


def predict(folder: Path, config: Config, tests: list[TestData], device: str, cache_dir: Path):
    from comp.kinds.transformer.inference import predict_fold

    return predict_fold(folder, config, tests, device, cache_dir)


def derived_configs(config: Config) -> list[Config]:
    return []
