"""Model kinds: what `comp train` can fit in the fold frame (`comp.runs.frame`), behind one small
protocol, and the registry that finds them. A kind is a module (or package) under `comp.kinds`
named in KINDS; it is imported only when used, and its module level stays light (no torch, no
scikit-learn), so that loading a config or fingerprinting a fold is cheap.

A kind module provides:

- `SECTION`: its own config section (a `comp.config.Section`: name, dataclass, checks), or None;
  `load_config` below hands every kind's section to the config loader;
- `USES_BACKBONE`: whether it reads `model.backbone` (make builds the demo's tiny backbone first;
  `comp pretrain` can pretrain it); `ENCODER_FOLDS`: whether its finished folds hold a fine-tuned
  encoder (`comp.neural.fold_encoder`) that another kind may embed rows with;
- `FOLD_FILES`: the names of its own files in a fold folder (a model, checkpoints), removed with
  the shared outputs when a fold starts over, and `SCRATCH_FILES`, those of them removed once
  the fold's outputs are written (a checkpoint);
- `shaping_config(config, content=True)`: the config values that shape a fold's model, by
  section. The frame hashes them (with the data keys every kind reads) into the fold's
  fingerprint, so an edit of another kind's keys never retrains this kind's folds; with
  `content`, also the content hashes of files they name (slow: `comp runs` asks without);
- `start(inputs, device, console)`: set up once per run (load a tokenizer, tokenise, join a
  process group) and return a `KindRun`, whose `fit_fold(fold, out, events)` trains one fold and
  returns its validation and test logits (`FoldFit`; None in a process that does not write),
  telling `events` (`comp.events`) how training goes, and whose `close()` tears down;
- `predict(folder, config, tests, device, cache_dir)`: logits of a finished fold, reloaded from
  its folder and the resolved config saved there, for test sets that arrived after training;
- `derived_configs(config)`: the experiments this kind derives from the experiment `config` that
  has just finished (kNN's `<experiment>_knn`), trained and predicted right after it.

Adding a kind is its module plus a line in KINDS; `tests/test_kinds.py` runs every kind through
the same contract checks.
"""

from __future__ import annotations

import dataclasses
import importlib
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Protocol

import numpy as np
from rich.console import Console

from comp.config import Config, ConfigError, Section
from comp.config import load_config as load_core_config
from comp.data import TestData, TrainData
from comp.events import Events
from comp.extra import ExtraRows

KINDS: dict[str, str] = {
    "transformer": "comp.kinds.transformer",
    "tfidf": "comp.kinds.tfidf",
    "knn": "comp.kinds.knn",  # retrieval with a finished transformer experiment
    "probe": "comp.kinds.probe",  # a linear model on a frozen encoder's vectors
}


@dataclass(frozen=True)
class MadeWith:
    """What a fold's files were made from: the fold file, the train file, and the fingerprint of
    the config values that shape the fold (`comp.runs.frame.fold_fingerprint`). metrics.json and
    checkpoints record it; a fold or checkpoint made with anything else is stale."""

    folds_sha256: str
    train_sha256: str
    fingerprint: str

    def record(self) -> dict:
        return dataclasses.asdict(self)

    @classmethod
    def recorded(cls, record: dict) -> MadeWith:
        """As a metrics.json or checkpoint records it (comp before 2026-12 named the fingerprint
        `config_sha256`)."""
        fingerprint = record.get("fingerprint", record.get("config_sha256"))
        return cls(record.get("folds_sha256"), record.get("train_sha256"), fingerprint)


@dataclass(frozen=True)
class RunInputs:
    """What the fold frame loads once per run and hands to every kind."""

    config: Config
    train: TrainData
    tests: list[TestData]
    folds: np.ndarray  # validation fold of each train row; -1 = train-only
    folds_sha256: str
    fingerprint: str  # of the config values that shape a fold (checkpoints record it)
    cache_dir: Path  # where a kind may cache what every fold of the experiment reuses
    writes: bool = True  # this process writes files (False on torchrun ranks other than 0)
    extra: ExtraRows | None = None  # data.extra_train rows, appended to `train` (fold -2)

    @property
    def made_with(self) -> MadeWith:
        return MadeWith(self.folds_sha256, self.train.sha256, self.fingerprint)

    def train_rows(self, fold: int) -> np.ndarray:
        keep = self.folds != fold  # train-only rows (fold -1) and extra rows (-2) included
        if self.extra is not None:  # ...but no extra row that repeats a validation or test row
            keep &= ~self.extra.dropped(fold, len(keep))
        return np.flatnonzero(keep)

    def val_rows(self, fold: int) -> np.ndarray:
        return np.flatnonzero(self.folds == fold)


@dataclass
class FoldFit:
    """One trained fold: validation logits (rows of `RunInputs.val_rows(fold)`, in order), one
    logits matrix per test set (in `RunInputs.tests` order), and what goes into metrics.json."""

    val_logits: np.ndarray
    test_logits: list[np.ndarray]
    samples_per_s: float
    tokens_per_s: float | None = None  # None: the kind counts no tokens
    best_step: int | None = None  # the step of the best evaluation; None: it trains no steps
    history: dict = field(default_factory=dict)  # comp.events.History.as_dict(); {} without steps
    extra: dict = field(default_factory=dict)


class KindRun(Protocol):
    def fit_fold(self, fold: int, out: Path, events: Events) -> FoldFit | None:
        """The fold's fit; None where `RunInputs.writes` is False (nothing to report). A kind
        that trains in steps tells `events` how it goes and ends early with
        `comp.events.FoldStopped` when `events.stop_reason` is set after an evaluation."""
        ...

    def close(self) -> None: ...


class ModelKind(Protocol):
    SECTION: Section | None
    USES_BACKBONE: bool
    ENCODER_FOLDS: bool
    FOLD_FILES: tuple[str, ...]
    SCRATCH_FILES: tuple[str, ...]

    def shaping_config(self, config: Config, content: bool = True) -> dict: ...

    def start(self, inputs: RunInputs, device: str | None, console: Console) -> KindRun: ...

    def predict(
        self, folder: Path, config: Config, tests: list[TestData], device: str, cache_dir: Path
    ) -> list[np.ndarray]: ...

    def derived_configs(self, config: Config) -> list[Config]: ...


def check_kind(name: str) -> None:
    if name not in KINDS:
        raise ConfigError(f"model.kind {name!r}: unknown (known: {', '.join(sorted(KINDS))})")


def get_kind(name: str) -> ModelKind:
    """The module of model kind `name`, imported on first use."""
    check_kind(name)
    return importlib.import_module(KINDS[name])  # type: ignore[return-value]


def config_sections() -> tuple[Section, ...]:
    """Every registered kind's own config section, in KINDS order."""
    modules = (get_kind(name) for name in KINDS)
    return tuple(m.SECTION for m in modules if getattr(m, "SECTION", None) is not None)


def load_config(paths: Sequence[str | Path] = (), overrides: Sequence[str] = ()) -> Config:
    """A config with the core sections and every kind's: defaults, each YAML file in order, then
    each `key=value` override; unknown keys and wrong types are ConfigErrors naming them."""
    return load_core_config(paths, overrides, config_sections())


def default_config() -> Config:
    """Every section at its defaults."""
    return load_config()


def derived_configs(config: Config) -> list[Config]:
    """The experiments every kind derives from the finished experiment `config`."""
    return [derived for name in KINDS for derived in get_kind(name).derived_configs(config)]
