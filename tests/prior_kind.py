"""A model kind written for the contract test, in one module as any new kind would be: it
predicts every row's class from the fold's training prior (log class frequencies). It proves that
the fold frame, `comp predict` and `comp ensemble` need no change for a kind they have never
seen."""

from __future__ import annotations

from pathlib import Path

import numpy as np
from rich.console import Console

from comp.config import Config
from comp.data import TestData
from comp.events import Events
from comp.io import atomic_path
from comp.kinds import FoldFit, RunInputs

SECTION = None  # no settings of its own
USES_BACKBONE = False
ENCODER_FOLDS = False
FOLD_FILES = ("prior.npy",)
SCRATCH_FILES = ()


def shaping_config(config: Config, content: bool = True) -> dict:
    return {}  # no settings of its own


class PriorRun:
    def __init__(self, inputs: RunInputs) -> None:
        self.inputs = inputs

    def fit_fold(self, fold: int, out: Path, events: Events) -> FoldFit:
        labels = self.inputs.train.labels[self.inputs.train_rows(fold)]
        counts = np.bincount(labels, minlength=self.inputs.config.data.num_labels)
        log_prior = np.log((counts + 1) / (counts + 1).sum()).astype(np.float32)
        with atomic_path(out / FOLD_FILES[0]) as tmp, open(tmp, "wb") as handle:
            np.save(handle, log_prior)
        val = np.tile(log_prior, (len(self.inputs.val_rows(fold)), 1))
        tests = [np.tile(log_prior, (len(t), 1)) for t in self.inputs.tests]
        return FoldFit(val, tests, samples_per_s=1.0, tokens_per_s=1.0)

    def close(self) -> None:
        pass


def start(inputs: RunInputs, device: str | None, console: Console) -> PriorRun:
    return PriorRun(inputs)


def predict(
    folder: Path, config: Config, tests: list[TestData], device: str, cache_dir: Path
) -> list[np.ndarray]:
    log_prior = np.load(Path(folder) / FOLD_FILES[0])
    return [np.tile(log_prior, (len(t), 1)) for t in tests]


def derived_configs(config: Config) -> list[Config]:
    return []
