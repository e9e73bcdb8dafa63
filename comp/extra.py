"""Extra labelled training data (`data.extra_train`): more rows for every training split, never
validated, and never a row that repeats what a fold is scored on.

Each file follows the train file's contract (its text column; an integer label column, or a
category column whose names are mapped to label ids: through the file's `category_map`, a CSV
with the category and label columns, or else through the train file's own category names).

The extra rows are appended to the train data with fold EXTRA_FOLD, which no fold validates. An
extra row is left out of a fold's training split when its duplicate group (`comp.duplicates`,
computed over the train rows, the extra rows and every test set together) holds a validation row
of that fold, and out of every fold's when it holds a test row: it would score the model on what
it was trained on. What came in and what was left out, and why, is reported per fold.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import polars as pl
from rich.console import Console
from rich.table import Table

from comp.config import Config, DataConfig, DedupConfig, ExtraTrain
from comp.data import (
    DataError,
    TestData,
    TrainData,
    parse_labels,
    questions_and_answers,
    read_csv,
    rows_phrase,
)
from comp.duplicates import (
    duplicate_groups,
    find_duplicates,
    grouping_settings,
    normalised_rows,
)
from comp.io import sha256_file

EXTRA_FOLD = -2  # the fold of an extra row: in every training split, in no validation fold


@dataclass(frozen=True)
class ExtraFile:
    name: str  # the file's stem, for reports
    path: Path
    questions: list[str]
    answers: list[str]
    labels: np.ndarray

    def __len__(self) -> int:
        return len(self.labels)


def read_category_map(path: str | Path, data: DataConfig) -> dict[str, int]:
    """A CSV of category names (data.category_column) and label ids (data.label_column)."""
    path = Path(path)
    category = data.category_column or "category"
    frame = read_csv(path, [category, data.label_column])
    names = frame[category].fill_null("").str.strip_chars()
    blank = names == ""
    if blank.any():
        raise DataError(f"{path}: column '{category}' is null or empty in {rows_phrase(blank)}")
    repeated = names.is_duplicated()
    if repeated.any():
        raise DataError(
            f"{path}: column '{category}' names a category twice in {rows_phrase(repeated)} "
            f"(e.g. {names.filter(repeated)[0]!r})"
        )
    labels = parse_labels(frame, path, data.label_column, data.num_labels)
    return dict(zip(names.to_list(), labels.tolist(), strict=True))


def _mapped(frame: pl.DataFrame, path: Path, column: str, mapping: dict[str, int], source: str):
    names = frame[column].fill_null("").str.strip_chars()
    unknown = ~names.is_in(list(mapping))
    if unknown.any():
        raise DataError(
            f"{path}: column '{column}': category {names.filter(unknown)[0]!r} in "
            f"{rows_phrase(unknown)} is not in {source}"
        )
    return np.array([mapping[name] for name in names.to_list()], dtype=np.int64)


def load_extra_file(spec: ExtraTrain, data: DataConfig, train_names: list[str]) -> ExtraFile:
    """One extra file, checked like the train file; labels from its label column, or from its
    category names (mapped through `spec.category_map`, else through `train_names`)."""
    path = Path(spec.path)
    frame = read_csv(path, [data.text_column])
    questions, answers = questions_and_answers(frame, path, data)
    category = data.category_column
    if spec.category_map is not None:
        if category is None or category not in frame.columns:
            raise DataError(f"{path}: missing column '{category}' (its category_map needs names)")
        mapping = read_category_map(spec.category_map, data)
        labels = _mapped(frame, path, category, mapping, spec.category_map)
    elif data.label_column in frame.columns:
        labels = parse_labels(frame, path, data.label_column, data.num_labels)
    elif category is not None and category in frame.columns:
        mapping = {name: label for label, name in enumerate(train_names)}
        labels = _mapped(frame, path, category, mapping, "the train file's categories")
    else:
        raise DataError(
            f"{path}: missing column '{data.label_column}' (or '{category}' with category names, "
            "mapped by data.extra_train's category_map)"
        )
    return ExtraFile(path.stem, path, questions, answers, labels)


def load_extra_files(config: Config, train: TrainData) -> list[ExtraFile]:
    return [load_extra_file(s, config.data, train.label_names) for s in config.data.extra_train]


def _sha256(path: str | Path, key: str) -> str:
    if not Path(path).is_file():
        raise DataError(f"{path}: file not found ({key})")
    return sha256_file(path)


def extra_shaping(config: Config) -> dict:
    """What the extra rows of a fold depend on, for the fold fingerprint: the extra files and
    their category maps, the test files (their twins are left out) and the duplicate settings.
    Empty without extra data, so adding none changes no fingerprint."""
    if not config.data.extra_train:
        return {}
    files = [
        {
            "sha256": _sha256(spec.path, "data.extra_train"),
            "category_map": spec.category_map and _sha256(spec.category_map, "category_map"),
        }
        for spec in config.data.extra_train
    ]
    tests = [_sha256(t.path, "data.test_sets") for t in config.data.test_sets]
    return {"extra_train": files, "test_sets": tests, "dedup": grouping_settings(config.dedup)}


@dataclass(frozen=True)
class ExtraRows:
    """The extra rows appended to a run's train data, and which of them each fold leaves out."""

    files: list[ExtraFile]
    first_row: int  # the first extra row in the run's train data
    file_of: np.ndarray  # [extra rows] index into `files`
    test_twin: np.ndarray  # [extra rows] bool: in a duplicate group with a test row
    val_twin: np.ndarray  # [K, extra rows] bool: in a group with a validation row of fold k

    def dropped(self, fold: int, total_rows: int) -> np.ndarray:
        """[total_rows] bool: the rows fold `fold` must not train on."""
        out = np.zeros(total_rows, dtype=bool)
        out[self.first_row :] = self.test_twin | self.val_twin[fold]
        return out

    def counts(self, index: int, fold: int) -> tuple[int, int, int]:
        """Of file `index`: rows, rows left out for a test twin (in every fold), and rows left
        out of fold `fold` for a validation twin (and no test twin)."""
        mine = self.file_of == index
        test = int((mine & self.test_twin).sum())
        return int(mine.sum()), test, int((mine & self.val_twin[fold] & ~self.test_twin).sum())

    def fold_report(self, fold: int) -> dict:
        """Per file, what fold `fold` trained on (metrics.json's `extra_train`)."""
        report = {}
        for index, file in enumerate(self.files):
            rows, test, val = self.counts(index, fold)
            report[str(file.path)] = {
                "rows": rows,
                "dropped_test_twin": test,
                "dropped_validation_twin": val,
                "trained": rows - test - val,
            }
        return report


def _twins(
    train: TrainData,
    folds: np.ndarray,
    extra: list[ExtraFile],
    tests: list[TestData],
    k: int,
    dedup: DedupConfig,
) -> tuple[np.ndarray, np.ndarray]:
    """(test_twin, val_twin) of every extra row: its duplicate group holds a test row / a
    validation row of fold k."""
    sets = [(train.questions, train.answers), *((e.questions, e.answers) for e in extra)]
    sets += [(t.questions, t.answers) for t in tests]
    questions = [q for qs, _ in sets for q in qs]
    answers = [a for _, answers in sets for a in answers]
    rows = normalised_rows(questions, answers)
    group = duplicate_groups(len(rows), find_duplicates(rows, dedup))
    n_train, n_extra = len(train), sum(len(e) for e in extra)
    extra_group = group[n_train : n_train + n_extra]
    test_twin = np.isin(extra_group, group[n_train + n_extra :])
    val_twin = np.stack([np.isin(extra_group, group[:n_train][folds == f]) for f in range(k)])
    return test_twin, val_twin


def add_extra_train(
    config: Config, train: TrainData, folds: np.ndarray, tests: list[TestData]
) -> tuple[TrainData, np.ndarray, ExtraRows | None]:
    """The train data and folds with the extra rows appended (fold EXTRA_FOLD), and which rows
    each fold leaves out; unchanged, with None, when no extra data is configured."""
    files = load_extra_files(config, train)
    if not files:
        return train, folds, None
    test_twin, val_twin = _twins(train, folds, files, tests, config.folds.k, config.dedup)
    combined = TrainData(
        train.path,
        train.sha256,
        train.questions + [q for f in files for q in f.questions],
        train.answers + [a for f in files for a in f.answers],
        np.concatenate([train.labels, *(f.labels for f in files)]),
        train.label_names,
    )
    file_of = np.repeat(np.arange(len(files)), [len(f) for f in files])
    extra_folds = np.full(len(file_of), EXTRA_FOLD, dtype=folds.dtype)
    rows = ExtraRows(files, len(train), file_of, test_twin, val_twin)
    return combined, np.concatenate([folds, extra_folds]), rows


def print_extra_report(rows: ExtraRows, k: int, console: Console) -> None:
    """How many extra rows came in, and how many each fold leaves out and why."""
    table = Table(title="extra training data (data.extra_train): rows left out of training")
    for column in (
        "file",
        "rows",
        "test twins",
        *(f"fold {f}: validation twins" for f in range(k)),
    ):
        table.add_column(column, justify="left" if column == "file" else "right")
    for index, file in enumerate(rows.files):
        counts = [rows.counts(index, f) for f in range(k)]
        table.add_row(
            str(file.path), f"{counts[0][0]:,}", f"{counts[0][1]:,}", *(f"{c[2]:,}" for c in counts)
        )
    console.print(table)
