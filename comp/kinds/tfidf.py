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
- The fitted vectorizers, weights and temperature are pickled to `tfidf_model.pkl` in the fold's
  folder; `predict` reloads them and reproduces the fold's test logits exactly.
- What shapes a fold: the `tfidf` section alone (its seed included), so editing `train.*` or
  `model.backbone` never retrains a TF-IDF fold.
"""

from __future__ import annotations

import dataclasses
import pickle
import resource
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import scipy.sparse as sp
from joblib import Parallel, delayed
from rich.console import Console
from rich.progress import Progress, SpinnerColumn, TextColumn, TimeElapsedColumn
from sklearn.feature_extraction.text import TfidfVectorizer
from sklearn.linear_model import LogisticRegression
from sklearn.svm import LinearSVC

from comp.calibration import fit_temperature
from comp.config import Config, TfidfConfig
from comp.data import TestData
from comp.errors import CompError
from comp.io import UnreadableFile, atomic_path
from comp.kinds import FoldFit, RunInputs

MODEL_FILE = "tfidf_model.pkl"
MODEL_FORMAT = 1
ABSENT_SCORE = -1.0e4  # the logit of a class that had no training rows in the fold
SEPARATOR = " \n "  # between question and answer; the word tokenizer drops it

SVM_SCALE_BOUNDS = (np.exp(-5.0), np.exp(5.0))  # T for LinearSVC scores, fitted on training rows


@dataclass
class TfidfModel:
    vectorizers: list[TfidfVectorizer]
    coef: np.ndarray  # [num_labels, features] float32; zero rows for absent classes
    intercept: np.ndarray  # [num_labels] float32
    present: np.ndarray  # [num_labels] bool: the class had training rows
    scale: float  # temperature multiplier of the raw scores (1.0 for logreg)


# ---------------------------------------------------------------------------------------------
# Features


def join_texts(questions: list[str], answers: list[str]) -> list[str]:
    return [q + SEPARATOR + a for q, a in zip(questions, answers, strict=True)]


def build_vectorizers(cfg: TfidfConfig) -> list[TfidfVectorizer]:
    common = {
        "min_df": cfg.min_df,
        "max_features": cfg.max_features,
        "sublinear_tf": cfg.sublinear_tf,
        "dtype": np.float64,  # liblinear's own type: no copy per class
    }
    vectorizers = [TfidfVectorizer(ngram_range=(1, cfg.word_ngram_max), **common)]
    if cfg.char_ngram_min > 0:
        high = max(cfg.char_ngram_max, cfg.char_ngram_min)
        vectorizers.append(
            TfidfVectorizer(analyzer="char_wb", ngram_range=(cfg.char_ngram_min, high), **common)
        )
    return vectorizers


def _canonical(matrices: list[sp.spmatrix]) -> sp.csr_matrix:
    x = matrices[0].tocsr() if len(matrices) == 1 else sp.hstack(matrices, format="csr")
    x.sum_duplicates()  # sorted and flagged canonical: threads only read it from here on
    return x


def fit_features(vectorizers: list[TfidfVectorizer], texts: list[str]) -> sp.csr_matrix:
    return _canonical([v.fit_transform(texts) for v in vectorizers])


def transform_features(vectorizers: list[TfidfVectorizer], texts: list[str]) -> sp.csr_matrix:
    return _canonical([v.transform(texts) for v in vectorizers])


# ---------------------------------------------------------------------------------------------
# Classifier


def class_weights(labels: np.ndarray, num_labels: int, balanced: bool) -> np.ndarray:
    """Weight of a class's positive rows in its binary problem (negatives weigh 1)."""
    counts = np.bincount(labels, minlength=num_labels)
    if not balanced:
        return np.ones(num_labels)
    present = counts > 0
    return np.where(present, len(labels) / (present.sum() * np.maximum(counts, 1)), 0.0)


def _binary_estimator(cfg: TfidfConfig, positive_weight: float):
    weight = {0: 1.0, 1: float(positive_weight)}
    if cfg.classifier == "svm":
        return LinearSVC(C=cfg.c, class_weight=weight, dual=True, random_state=cfg.seed)
    return LogisticRegression(
        solver="liblinear", C=cfg.c, class_weight=weight, dual=True, random_state=cfg.seed
    )


def _fit_binary(x: sp.csr_matrix, target: np.ndarray, estimator) -> tuple[np.ndarray, float]:
    estimator.fit(x, target)
    return estimator.coef_.ravel(), float(estimator.intercept_[0])


def fit_one_vs_rest(
    x: sp.csr_matrix, labels: np.ndarray, num_labels: int, cfg: TfidfConfig
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Coefficients [num_labels, features], intercepts and the mask of classes with rows."""
    present = np.bincount(labels, minlength=num_labels) > 0
    if present.sum() < 2:
        raise CompError("tfidf: the training rows hold fewer than two classes")
    weights = class_weights(labels, num_labels, cfg.class_weight == "balanced")
    classes = np.flatnonzero(present)
    fitted = Parallel(n_jobs=-1, prefer="threads")(
        delayed(_fit_binary)(x, (labels == c).astype(np.int64), _binary_estimator(cfg, weights[c]))
        for c in classes
    )
    coef = np.zeros((num_labels, x.shape[1]), dtype=np.float32)
    intercept = np.zeros(num_labels, dtype=np.float32)
    for c, (w, b) in zip(classes, fitted, strict=True):
        coef[c], intercept[c] = w, b
    return coef, intercept, present


def raw_scores(x: sp.csr_matrix, coef: np.ndarray, intercept: np.ndarray) -> np.ndarray:
    return np.asarray(x @ coef.T, dtype=np.float64) + intercept


def fit_tfidf(
    cfg: TfidfConfig,
    questions: list[str],
    answers: list[str],
    labels: np.ndarray,
    num_labels: int,
) -> TfidfModel:
    """Vectorizers and one-vs-rest classifier fitted on the given rows."""
    vectorizers = build_vectorizers(cfg)
    x = fit_features(vectorizers, join_texts(questions, answers))
    coef, intercept, present = fit_one_vs_rest(x, labels, num_labels, cfg)
    scale = 1.0
    if cfg.classifier == "svm":
        scores = raw_scores(x, coef, intercept)[:, present]
        labels_present = np.searchsorted(np.flatnonzero(present), labels)
        scale = 1.0 / fit_temperature(scores, labels_present, bounds=SVM_SCALE_BOUNDS)
    return TfidfModel(vectorizers, coef, intercept, present, scale)


def tfidf_logits(model: TfidfModel, questions: list[str], answers: list[str]) -> np.ndarray:
    """[rows, num_labels] float32 logits; ABSENT_SCORE for classes the model never saw."""
    x = transform_features(model.vectorizers, join_texts(questions, answers))
    logits = model.scale * raw_scores(x, model.coef, model.intercept)
    logits[:, ~model.present] = ABSENT_SCORE
    return logits.astype(np.float32)


# ---------------------------------------------------------------------------------------------
# Saving and reloading


def save_model(model: TfidfModel, path: Path) -> None:
    state = {"format": MODEL_FORMAT, **vars(model)}
    with atomic_path(path) as tmp, open(tmp, "wb") as handle:
        pickle.dump(state, handle, protocol=pickle.HIGHEST_PROTOCOL)


def load_model(path: Path) -> TfidfModel:
    """A pickle written by `save_model` (pickles run code on load: only open your own runs)."""
    retrain = f"comp train --fold {path.parent.name.removeprefix('fold')} --force"
    if not path.is_file():
        raise CompError(f"{path}: not found; train this fold first (`{retrain}`)")
    try:
        with open(path, "rb") as handle:
            state = pickle.load(handle)
    except (OSError, EOFError, pickle.UnpicklingError) as exc:
        raise UnreadableFile(path, str(exc), retrain) from None
    if not isinstance(state, dict) or state.pop("format", None) != MODEL_FORMAT:
        reason = f"not a tfidf model of format {MODEL_FORMAT}; retrain the fold"
        raise UnreadableFile(path, reason, retrain)
    return TfidfModel(**state)


# ---------------------------------------------------------------------------------------------
# The model kind (comp.kinds)

FOLD_FILES = (MODEL_FILE,)
SCRATCH_FILES = ()


def shaping_config(config: Config, content: bool = True) -> dict:
    return {"tfidf": dataclasses.asdict(config.tfidf)}


def _progress(console: Console) -> Progress:
    return Progress(
        SpinnerColumn(),
        TextColumn("[bold]{task.description}"),
        TimeElapsedColumn(),
        console=console,
        transient=True,
    )


def _pick(values: list[str], rows: np.ndarray) -> list[str]:
    return [values[i] for i in rows]


@dataclass
class TfidfRun:
    inputs: RunInputs
    console: Console

    def fit_fold(self, fold: int, out: Path) -> FoldFit | None:
        if not self.inputs.writes:  # under torchrun, rank 0 alone fits (on the CPU)
            return None
        train, cfg = self.inputs.train, self.inputs.config
        rows, val_rows = self.inputs.train_rows(fold), self.inputs.val_rows(fold)
        with _progress(self.console) as progress:
            task = progress.add_task(f"fold {fold}: fitting on {len(rows):,} rows")
            started = time.perf_counter()
            model = fit_tfidf(
                cfg.tfidf,
                _pick(train.questions, rows),
                _pick(train.answers, rows),
                train.labels[rows],
                cfg.data.num_labels,
            )
            fit_s = time.perf_counter() - started
            progress.update(task, description=f"fold {fold}: scoring")
            val_logits = tfidf_logits(
                model, _pick(train.questions, val_rows), _pick(train.answers, val_rows)
            )
            test_logits = [tfidf_logits(model, t.questions, t.answers) for t in self.inputs.tests]
            save_model(model, out / MODEL_FILE)
        words = sum(len(train.questions[i].split()) + len(train.answers[i].split()) for i in rows)
        return FoldFit(
            val_logits,
            test_logits,
            samples_per_s=len(rows) / max(fit_s, 1e-9),
            tokens_per_s=words / max(fit_s, 1e-9),
            extra={
                "fit_s": fit_s,
                "peak_memory_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
                "device": "cpu",
                "classifier": cfg.tfidf.classifier,
                "num_features": int(model.coef.shape[1]),
                "logit_scale": model.scale,
            },
        )

    def close(self) -> None:
        pass


def start(inputs: RunInputs, device: str | None, console: Console) -> TfidfRun:
    """The TF-IDF kind runs on the CPU whatever `device` says."""
    return TfidfRun(inputs, console)


def predict(
    folder: Path, config: Config, tests: list[TestData], device: str, cache_dir: Path
) -> list[np.ndarray]:
    model = load_model(Path(folder) / MODEL_FILE)
    return [tfidf_logits(model, t.questions, t.answers) for t in tests]
