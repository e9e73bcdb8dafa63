"""The TF-IDF kind's model: features, the one-vs-rest classifier, the model file, and a run that
fits the folds (see `comp.kinds.tfidf` for what it does and why)."""

from __future__ import annotations

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
from comp.config import Config
from comp.data import TestData
from comp.errors import CompError
from comp.events import Events
from comp.io import UnreadableFile, atomic_path, read_npz
from comp.kinds import FoldFit, RunInputs
from comp.kinds.tfidf.settings import MODEL_FILE, OLD_MODEL_FILE, TfidfConfig
from comp.layout import retrain_command

MODEL_FORMAT = 2
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


def _terms_arrays(vectorizer: TfidfVectorizer) -> tuple[np.ndarray, np.ndarray]:
    """The vocabulary in index order as UTF-8 bytes and their offsets: plain arrays."""
    terms = sorted(vectorizer.vocabulary_, key=vectorizer.vocabulary_.__getitem__)
    encoded = [term.encode("utf-8") for term in terms]
    offsets = np.zeros(len(encoded) + 1, dtype=np.int64)
    offsets[1:] = np.cumsum([len(e) for e in encoded])
    return np.frombuffer(b"".join(encoded), dtype=np.uint8), offsets


def _terms(blob: np.ndarray, offsets: np.ndarray) -> dict[str, int]:
    text = blob.tobytes()
    return {text[offsets[i] : offsets[i + 1]].decode("utf-8"): i for i in range(len(offsets) - 1)}


def save_model(model: TfidfModel, path: Path) -> None:
    arrays = {
        "format": np.asarray(MODEL_FORMAT),
        "vectorizers": np.asarray(len(model.vectorizers)),
        "coef": model.coef,
        "intercept": model.intercept,
        "present": model.present,
        "scale": np.asarray(model.scale),
    }
    for i, vectorizer in enumerate(model.vectorizers):
        arrays[f"terms{i}"], arrays[f"offsets{i}"] = _terms_arrays(vectorizer)
        arrays[f"idf{i}"] = vectorizer.idf_
    with atomic_path(path) as tmp, open(tmp, "wb") as handle:
        np.savez(handle, **arrays)


def load_model(path: Path, cfg: TfidfConfig) -> TfidfModel:
    """The model `save_model` wrote, its vectorizers rebuilt with the fold's settings `cfg`. A
    pickle of an older comp is refused unopened; a file that is not what comp wrote is
    UnreadableFile, naming the command that retrains the fold."""
    retrain = retrain_command(path.parent)
    old = path.with_name(OLD_MODEL_FILE)
    if not path.is_file() and old.is_file():
        raise CompError(
            f"{old}: a TF-IDF model pickled by an older comp; comp no longer opens pickles "
            f"(loading one can run code): retrain the fold with `{retrain}`"
        )
    if not path.is_file():
        raise CompError(f"{path}: not found; train this fold first (`{retrain}`)")
    arrays = read_npz(path, retrain)
    keys = ("format", "vectorizers", "coef", "intercept", "present", "scale")
    if any(key not in arrays for key in keys) or int(arrays["format"]) != MODEL_FORMAT:
        raise UnreadableFile(path, f"not a tfidf model of format {MODEL_FORMAT}", retrain)
    vectorizers = build_vectorizers(cfg)
    if len(vectorizers) != int(arrays["vectorizers"]):
        raise UnreadableFile(path, "its analyzers differ from the fold's config.yaml", retrain)
    try:
        for i, vectorizer in enumerate(vectorizers):
            vectorizer.vocabulary_ = _terms(arrays[f"terms{i}"], arrays[f"offsets{i}"])
            vectorizer.idf_ = arrays[f"idf{i}"]
    except (KeyError, UnicodeDecodeError, ValueError) as exc:
        raise UnreadableFile(path, f"a damaged vocabulary ({exc})", retrain) from None
    present = arrays["present"].astype(bool)
    return TfidfModel(
        vectorizers, arrays["coef"], arrays["intercept"], present, float(arrays["scale"])
    )


# ---------------------------------------------------------------------------------------------
# Fitting folds


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

    def fit_fold(self, fold: int, out: Path, events: Events) -> FoldFit | None:
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


def predict_fold(folder: Path, config: Config, tests: list[TestData]) -> list[np.ndarray]:
    model = load_model(Path(folder) / MODEL_FILE, config.tfidf)
    return [tfidf_logits(model, t.questions, t.answers) for t in tests]
