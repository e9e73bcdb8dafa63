"""`model.kind: tfidf`: TF-IDF features and a linear classifier, fitted by the fold frame like
every kind (the same oof.parquet, test_logits.parquet and metrics.json). Needs no torch.

- Text: question and answer joined as `question \\n answer` into one document, so one vocabulary
  and one IDF serve both (separate question/answer vectorizers scored about 0.04 macro-F1 lower on
  the demo). Word n-grams 1..`word_ngram_max`, optionally char_wb n-grams stacked beside them.
- The vectorizers are fitted on the fold's training rows only: the OOF rows never shape the
  vocabulary or the IDF weights.
- Classifier: one binary liblinear problem per class (one-vs-rest), solved in threads (liblinear
  releases the GIL). `logreg`: L2 logistic regression; `svm`: L2 hinge (LinearSVC). With
  `class_weight: balanced` a class's positive rows weigh n / (classes * n_c) and negatives 1,
  which is how LinearSVC weights its own multiclass one-vs-rest (weighting each binary problem
  50/50 instead scored about 0.03 lower).
- Logits: `logreg` gives each class's log-odds (decision_function); `svm` gives its margins times
  one temperature per fold, fitted on the training rows by softmax cross-entropy, so the scores
  sit on a logit-like scale next to other models' logits (argmax is unchanged). A class without
  training rows in a fold gets ABSENT_SCORE, so every output has num_labels columns.
- The fitted vocabularies, IDF weights, coefficients and temperature are saved as plain arrays to
  `tfidf_model.npz` in the fold's folder (no pickle: loading a shared fold runs no code);
  `predict` rebuilds the vectorizers from them and reproduces the fold's test logits exactly. A
  `tfidf_model.pkl` of an older comp is never opened: the fold must be retrained.
- What shapes a fold: the `tfidf` section alone (its seed included), so editing `train.*` or
  `model.backbone` never retrains a TF-IDF fold.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path

import numpy as np
from rich.console import Console

from comp.config import Config, Section
from comp.data import TestData
from comp.kinds import KindRun, RunInputs
from comp.kinds.tfidf.settings import MODEL_FILE, OLD_MODEL_FILE, TfidfConfig, checks

SECTION = Section("tfidf", TfidfConfig, checks)
USES_BACKBONE = False  # model.backbone is not read
ENCODER_FOLDS = False  # its folds hold no neural encoder
FOLD_FILES = (MODEL_FILE, OLD_MODEL_FILE)
SCRATCH_FILES = (OLD_MODEL_FILE,)  # an older comp's pickle: removed once the fold is retrained


def shaping_config(config: Config, content: bool = True) -> dict:
    return {"tfidf": dataclasses.asdict(config.tfidf)}


def start(inputs: RunInputs, device: str | None, console: Console) -> KindRun:
    """The TF-IDF kind runs on the CPU whatever `device` says."""
    from comp.kinds.tfidf.model import TfidfRun

    return TfidfRun(inputs, console)


def predict(
    folder: Path, config: Config, tests: list[TestData], device: str, cache_dir: Path
) -> list[np.ndarray]:
    from comp.kinds.tfidf.model import predict_fold

    return predict_fold(folder, config, tests)


def derived_configs(config: Config) -> list[Config]:
    return []
