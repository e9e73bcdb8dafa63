"""Stratified K folds that keep every class represented, as an artifact with a data hash.

Policy for classes with fewer rows than folds (documented in the README):
- n >= K rows: MultilabelStratifiedKFold over one-hot labels, then, if a validation fold still
  lacks the class, one row is moved there from the fold holding most of it.
- 2 <= n < K rows: one row in each of n different validation folds (those with the fewest rows
  so far), so every training split keeps at least n - 1 >= 1 of them.
- n == 1 row: train-only (fold -1): it is in every training split and in no validation fold,
  since validating on it would leave one training split without the class. These rows have no
  out-of-fold prediction, and the ensemble lists and leaves them out.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import polars as pl
from rich.console import Console
from rich.table import Table

from comp.config import Config, write_config
from comp.data import TrainData
from comp.errors import CompError
from comp.io import read_json, sha256_file, write_all_atomically

TRAIN_ONLY = -1
FORMAT_VERSION = 1


class FoldsError(CompError):
    pass


@dataclass(frozen=True)
class FoldReport:
    k: int
    class_counts: np.ndarray  # [C] rows per class in the whole train file
    val_counts: np.ndarray  # [K, C] rows per class in each validation fold
    train_counts: np.ndarray  # [K, C] rows per class in each training split
    train_only_rows: list[int]
    rare_classes: list[int]  # 1 <= n < K
    absent_classes: list[int]  # n == 0: no fold can have them
    problems: list[str]  # broken invariants; empty for folds made by assign_folds


def _stratified(labels: np.ndarray, num_labels: int, k: int, seed: int) -> np.ndarray:
    from iterstrat.ml_stratifiers import MultilabelStratifiedKFold

    fold = np.full(len(labels), TRAIN_ONLY, dtype=np.int64)
    onehot = np.zeros((len(labels), num_labels), dtype=np.int8)
    onehot[np.arange(len(labels)), labels] = 1
    splitter = MultilabelStratifiedKFold(n_splits=k, shuffle=True, random_state=seed)
    for index, (_, val) in enumerate(splitter.split(np.zeros(len(labels)), onehot)):
        fold[val] = index
    return fold


def _fill_missing_validation(fold: np.ndarray, rows: np.ndarray, k: int) -> None:
    """Give every validation fold at least one row of a class that has >= K rows."""
    for target in range(k):
        counts = np.bincount(fold[rows], minlength=k)
        if counts[target] == 0:
            donor = int(np.argmax(counts))
            fold[rows[fold[rows] == donor][0]] = target


def assign_folds(labels: np.ndarray, num_labels: int, k: int, seed: int) -> np.ndarray:
    """Validation fold of each row (0..K-1), or TRAIN_ONLY; see the module's policy."""
    labels = np.asarray(labels, dtype=np.int64)
    counts = np.bincount(labels, minlength=num_labels)
    fold = np.full(len(labels), TRAIN_ONLY, dtype=np.int64)
    common = np.flatnonzero(counts[labels] >= k)
    if len(common):
        fold[common] = _stratified(labels[common], num_labels, k, seed)
    rng = np.random.default_rng(seed)
    for label in np.flatnonzero(counts >= k):
        _fill_missing_validation(fold, np.flatnonzero(labels == label), k)
    for label in np.flatnonzero((counts >= 2) & (counts < k)):
        rows = rng.permutation(np.flatnonzero(labels == label))
        sizes = np.bincount(fold[fold >= 0], minlength=k)
        tie_break = rng.permutation(k)
        targets = sorted(range(k), key=lambda f: (sizes[f], tie_break[f]))[: len(rows)]
        fold[rows] = targets
    return fold


def check_folds(labels: np.ndarray, fold: np.ndarray, num_labels: int, k: int) -> FoldReport:
    """Counts per fold and class, and every broken invariant in words."""
    labels = np.asarray(labels, dtype=np.int64)
    class_counts = np.bincount(labels, minlength=num_labels)
    val_counts = np.zeros((k, num_labels), dtype=np.int64)
    for f in range(k):
        val_counts[f] = np.bincount(labels[fold == f], minlength=num_labels)
    train_counts = class_counts[None, :] - val_counts
    problems = []
    invalid = np.flatnonzero((fold < TRAIN_ONLY) | (fold >= k))
    if len(invalid):
        problems.append(f"rows {invalid[:5].tolist()} have a fold outside -1..{k - 1}")
    train_only = np.flatnonzero(fold == TRAIN_ONLY)
    wrongly_held_out = train_only[class_counts[labels[train_only]] >= 2]
    if len(wrongly_held_out):
        problems.append(
            f"rows {wrongly_held_out[:5].tolist()} are in no validation fold, though their "
            "class has 2 or more rows"
        )
    present = class_counts > 0
    for f in range(k):
        lacking = np.flatnonzero(present & (train_counts[f] == 0))
        if len(lacking):
            problems.append(f"fold {f}: training split lacks classes {lacking.tolist()}")
        unvalidated = np.flatnonzero((class_counts >= k) & (val_counts[f] == 0))
        if len(unvalidated):
            problems.append(f"fold {f}: validation lacks classes {unvalidated.tolist()}")
    return FoldReport(
        k=k,
        class_counts=class_counts,
        val_counts=val_counts,
        train_counts=train_counts,
        train_only_rows=train_only.tolist(),
        rare_classes=np.flatnonzero((class_counts >= 1) & (class_counts < k)).tolist(),
        absent_classes=np.flatnonzero(class_counts == 0).tolist(),
        problems=problems,
    )


def folds_paths(config: Config) -> tuple[Path, Path, Path]:
    base = Path(config.folds.dir) / config.folds.name
    return base.with_suffix(".csv"), base.with_suffix(".json"), Path(f"{base}.config.yaml")


def _metadata(config: Config, train: TrainData, report: FoldReport) -> dict:
    return {
        "format": FORMAT_VERSION,
        "name": config.folds.name,
        "k": config.folds.k,
        "seed": config.folds.seed,
        "train_file": str(train.path),
        "train_sha256": train.sha256,
        "num_rows": len(train),
        "num_labels": config.data.num_labels,
        "fold_sizes": [int(n) for n in report.val_counts.sum(axis=1)],
        "train_only_rows": report.train_only_rows,
        "rare_classes": {str(c): int(report.class_counts[c]) for c in report.rare_classes},
        "absent_classes": report.absent_classes,
        "label_names": train.label_names,
        "class_counts": report.class_counts.tolist(),
        "val_class_counts": report.val_counts.tolist(),
        "train_class_counts": report.train_counts.tolist(),
    }


def make_folds(config: Config, train: TrainData) -> FoldReport:
    """Assign, check and write folds/<name>.csv, .json and .config.yaml in one atomic step."""
    k, num_labels = config.folds.k, config.data.num_labels
    fold = assign_folds(train.labels, num_labels, k, config.folds.seed)
    report = check_folds(train.labels, fold, num_labels, k)
    if report.problems:
        raise FoldsError("fold assignment broke an invariant: " + "; ".join(report.problems))
    frame = pl.DataFrame({"row": np.arange(len(train)), "label": train.labels, "fold": fold})
    meta = json.dumps(_metadata(config, train, report), indent=1) + "\n"
    csv_path, json_path, config_path = folds_paths(config)
    write_all_atomically(
        {
            csv_path: frame.write_csv,
            json_path: lambda p: p.write_text(meta, encoding="utf-8"),
            config_path: lambda p: write_config(config, p),
        }
    )
    return report


def load_folds(config: Config, train: TrainData) -> np.ndarray:
    """The fold of every train row, refusing folds made from other data or settings."""
    csv_path, json_path, _ = folds_paths(config)
    again = "run `comp make-folds` again"
    if not json_path.is_file() or not csv_path.is_file():
        raise FoldsError(f"{csv_path}: no folds found; run `comp make-folds` first")
    meta = read_json(json_path, "comp make-folds")
    if meta.get("train_sha256") != train.sha256:
        raise FoldsError(
            f"{json_path}: folds were made from other data than {train.path} "
            f"(sha256 {str(meta.get('train_sha256'))[:12]} vs {train.sha256[:12]}); {again}"
        )
    if meta.get("k") != config.folds.k or meta.get("seed") != config.folds.seed:
        raise FoldsError(
            f"{json_path}: folds have k={meta.get('k')}, seed={meta.get('seed')} but the config "
            f"says k={config.folds.k}, seed={config.folds.seed}; {again}"
        )
    labels, fold = _read_fold_csv(csv_path)
    if len(labels) != len(train) or not np.array_equal(labels, train.labels):
        raise FoldsError(f"{csv_path}: rows or labels do not match {train.path}; {again}")
    return fold


def _read_fold_csv(csv_path: Path) -> tuple[np.ndarray, np.ndarray]:
    """(label, fold) columns of a fold file, as int64; FoldsError if it cannot be read."""
    try:
        frame = pl.read_csv(csv_path, schema_overrides={"label": pl.Int64, "fold": pl.Int64})
        return frame["label"].to_numpy(), frame["fold"].to_numpy()
    except (pl.exceptions.PolarsError, OSError) as exc:
        reason = str(exc).strip().splitlines()[0]
        raise FoldsError(f"{csv_path}: unreadable ({reason}); run `comp make-folds`") from None


@dataclass
class FoldAssignment:
    """The fold file as everything after training reads it."""

    labels: np.ndarray
    fold: np.ndarray
    label_names: list[str]
    sha256: str  # every model of an ensemble must come from these folds


def label_names(config: Config) -> list[str]:
    """The class names recorded with the folds (from the train file's category column); the
    label ids as text where there are none. Names are for display only."""
    json_path = folds_paths(config)[1]
    try:
        names = json.loads(json_path.read_text(encoding="utf-8")).get("label_names")
    except (OSError, ValueError, AttributeError):
        names = None
    if isinstance(names, list) and len(names) == config.data.num_labels:
        return [str(name) for name in names]
    return [str(i) for i in range(config.data.num_labels)]


def load_fold_assignment(config: Config) -> FoldAssignment:
    csv_path, json_path, _ = folds_paths(config)
    if not csv_path.is_file() or not json_path.is_file():
        raise FoldsError(f"{csv_path}: no folds found; run `comp make-folds` first")
    labels, fold = _read_fold_csv(csv_path)
    return FoldAssignment(labels, fold, label_names(config), sha256_file(csv_path))


def print_fold_summary(report: FoldReport, label_names: list[str], console: Console) -> None:
    table = Table(title=f"{report.k} folds")
    for column in (
        "fold",
        "val rows",
        "train rows",
        "classes in val",
        "smallest val class",
        "classes missing from train",
    ):
        table.add_column(column, justify="right")
    present = report.class_counts > 0
    for f in range(report.k):
        val = report.val_counts[f]
        in_val = val[present & (val > 0)]
        table.add_row(
            str(f),
            f"{int(val.sum()):,}",
            f"{int(report.train_counts[f].sum()):,}",
            f"{int((val > 0).sum())}/{int(present.sum())}",
            str(int(in_val.min())) if len(in_val) else "-",
            str(int((present & (report.train_counts[f] == 0)).sum())),
        )
    console.print(table)
    if report.rare_classes:
        listed = ", ".join(
            f"{label_names[c]} ({c}): {int(report.class_counts[c])} rows"
            for c in report.rare_classes
        )
        console.print(
            f"[yellow]warning:[/] {len(report.rare_classes)} classes have fewer rows than "
            f"folds ({listed}); they are in only some validation folds"
            + (
                f", and {len(report.train_only_rows)} single-row classes are train-only"
                if report.train_only_rows
                else ""
            )
        )
    if report.absent_classes:
        console.print(
            f"[yellow]warning:[/] classes with no training rows at all: {report.absent_classes}"
        )
