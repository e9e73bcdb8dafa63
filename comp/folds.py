"""Stratified K folds that keep every class represented, as an artifact with a data hash.

Policy for classes with fewer rows than folds (documented in the README):
- n >= K rows: MultilabelStratifiedKFold over one-hot labels, then, if a validation fold still
  lacks the class, one row is moved there from the fold holding most of it.
- 2 <= n < K rows: one row in each of n different validation folds (those with the fewest rows
  so far), so every training split keeps at least n - 1 >= 1 of them.
- n == 1 row: train-only (fold -1): it is in every training split and in no validation fold,
  since validating on it would leave one training split without the class. These rows have no
  out-of-fold prediction, and the ensemble lists and leaves them out.

With `folds.group_duplicates` (the default), every duplicate group (`comp.duplicates`: exact
and near duplicates, connected) is placed whole: the stratification runs over groups (a group's
classes as its labels), and the policy above counts a class's groups instead of its rows, so a
class whose rows all repeat one text is train-only like a single-row class.
"""

from __future__ import annotations

import dataclasses
import json
import warnings
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import polars as pl
from rich.console import Console
from rich.table import Table

from comp.config import Config, write_config
from comp.data import TrainData
from comp.duplicates import grouping_settings, row_groups
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
    grouping: GroupingReport | None = None  # set by make_folds when it grouped duplicates


@dataclass(frozen=True)
class GroupingReport:
    """What keeping duplicate groups together did, against a row-level stratified split."""

    groups: int  # groups of two or more rows, each kept inside one fold
    rows: int  # rows in those groups
    largest: int  # rows in the largest group
    split_without: int  # of those groups, how many a row-level split puts in 2+ folds
    split_rows: int  # rows in those split groups
    imbalance: int  # largest |rows of a class in a validation fold - its even share|, grouped
    imbalance_without: int  # the same for the row-level split


def _stratified(presence: np.ndarray, k: int, seed: int) -> np.ndarray:
    """Iterative stratification of the rows of a (groups x classes) presence matrix."""
    from iterstrat.ml_stratifiers import MultilabelStratifiedKFold

    fold = np.full(len(presence), TRAIN_ONLY, dtype=np.int64)
    splitter = MultilabelStratifiedKFold(n_splits=k, shuffle=True, random_state=seed)
    for index, (_, val) in enumerate(splitter.split(np.zeros(len(presence)), presence)):
        fold[val] = index
    return fold


@dataclass(frozen=True)
class _Groups:
    """The groups that fold assignment places whole (a row is its own group when not grouping)."""

    of_row: np.ndarray  # [N] group id of each row, 0..G-1, numbered by first row
    size: np.ndarray  # [G] rows per group
    presence: np.ndarray  # [G, C] bool: the group holds rows of the class
    train_only: np.ndarray  # [G] bool: holds a class none of whose rows are in another group
    placeable: np.ndarray  # [C] groups of the class that are not train-only


def _groups(labels: np.ndarray, num_labels: int, groups: np.ndarray | None) -> _Groups:
    of_row = np.arange(len(labels)) if groups is None else np.asarray(groups, dtype=np.int64)
    count = int(of_row.max()) + 1 if len(of_row) else 0
    presence = np.zeros((count, num_labels), dtype=bool)
    presence[of_row, labels] = True
    train_only = (presence & (presence.sum(axis=0) == 1)).any(axis=1)
    placeable = (presence & ~train_only[:, None]).sum(axis=0)
    return _Groups(of_row, np.bincount(of_row, minlength=count), presence, train_only, placeable)


def _fill_missing_validation(fold: np.ndarray, members: np.ndarray, single: np.ndarray, k: int):
    """Give every validation fold at least one of a class's groups (`members`, each placed); the
    group moved is the first single-class one of the fold holding most, else its first."""
    for target in range(k):
        counts = np.bincount(fold[members], minlength=k)
        if counts[target] == 0:
            donors = members[fold[members] == int(np.argmax(counts))]
            alone = donors[single[donors]]
            fold[(alone if len(alone) else donors)[0]] = target


def _place_rare(fold: np.ndarray, g: _Groups, label: int, k: int, rng: np.random.Generator) -> None:
    """Put each group of a class with 2..K-1 groups into its own validation fold, the folds with
    the fewest rows first, so every training split keeps at least one of them."""
    members = rng.permutation(np.flatnonzero(g.presence[:, label] & ~g.train_only))
    placed = fold >= 0
    sizes = np.bincount(fold[placed], weights=g.size[placed], minlength=k)
    tie_break = rng.permutation(k)
    taken = set(fold[members][fold[members] >= 0].tolist())  # placed by another rare class
    free = [f for f in sorted(range(k), key=lambda f: (sizes[f], tie_break[f])) if f not in taken]
    todo = members[fold[members] < 0]
    fold[todo] = free[: len(todo)]


def assign_folds(
    labels: np.ndarray, num_labels: int, k: int, seed: int, groups: np.ndarray | None = None
) -> np.ndarray:
    """Validation fold of each row (0..K-1), or TRAIN_ONLY; see the module's policy. With
    `groups` (a group id per row, numbered 0.. by first row), every group lands in one fold and
    the policy counts a class's groups instead of its rows; without, each row is its own group."""
    labels = np.asarray(labels, dtype=np.int64)
    g = _groups(labels, num_labels, groups)
    rare = (g.presence & (g.placeable < k)).any(axis=1)
    common = np.flatnonzero(~g.train_only & ~rare)
    fold = np.full(len(g.size), TRAIN_ONLY, dtype=np.int64)
    if len(common):
        fold[common] = _stratified(g.presence[common], k, seed)
    rng = np.random.default_rng(seed)
    single = g.presence.sum(axis=1) == 1
    for label in np.flatnonzero(g.placeable >= k):
        members = np.flatnonzero(g.presence[:, label])
        _fill_missing_validation(fold, members[fold[members] >= 0], single, k)
    for label in np.flatnonzero((g.placeable >= 2) & (g.placeable < k)):
        _place_rare(fold, g, label, k, rng)
    return fold[g.of_row]


def check_folds(
    labels: np.ndarray,
    fold: np.ndarray,
    num_labels: int,
    k: int,
    groups: np.ndarray | None = None,
) -> FoldReport:
    """Counts per fold and class, and every broken invariant in words."""
    labels = np.asarray(labels, dtype=np.int64)
    g = _groups(labels, num_labels, groups)
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
    wrongly_held_out = train_only[~g.train_only[g.of_row[train_only]]]
    if len(wrongly_held_out):
        problems.append(
            f"rows {wrongly_held_out[:5].tolist()} are in no validation fold, though their "
            f"class has 2 or more {'rows' if groups is None else 'duplicate groups'}"
        )
    lowest, highest = np.full(len(g.size), k), np.full(len(g.size), TRAIN_ONLY - 1)
    np.minimum.at(lowest, g.of_row, fold)
    np.maximum.at(highest, g.of_row, fold)
    spanning = np.flatnonzero((lowest != highest)[g.of_row])
    if len(spanning):
        problems.append(f"rows {spanning[:5].tolist()} are in duplicate groups split across folds")
    present = class_counts > 0
    for f in range(k):
        lacking = np.flatnonzero(present & (train_counts[f] == 0))
        if len(lacking):
            problems.append(f"fold {f}: training split lacks classes {lacking.tolist()}")
        unvalidated = np.flatnonzero((g.placeable >= k) & (val_counts[f] == 0))
        if len(unvalidated):
            problems.append(f"fold {f}: validation lacks classes {unvalidated.tolist()}")
    return FoldReport(
        k=k,
        class_counts=class_counts,
        val_counts=val_counts,
        train_counts=train_counts,
        train_only_rows=train_only.tolist(),
        rare_classes=np.flatnonzero(present & (g.placeable < k)).tolist(),
        absent_classes=np.flatnonzero(class_counts == 0).tolist(),
        problems=problems,
    )


def folds_paths(config: Config) -> tuple[Path, Path, Path]:
    base = Path(config.folds.dir) / config.folds.name
    return base.with_suffix(".csv"), base.with_suffix(".json"), Path(f"{base}.config.yaml")


def grouping_metadata(config: Config) -> dict:
    """The settings that decide the groups, as the fold file records them."""
    if not config.folds.group_duplicates:
        return {"group_duplicates": False}
    return {"group_duplicates": True, **grouping_settings(config.dedup)}


def _metadata(config: Config, train: TrainData, report: FoldReport) -> dict:
    grouped = report.grouping
    return {
        "format": FORMAT_VERSION,
        "name": config.folds.name,
        "k": config.folds.k,
        "seed": config.folds.seed,
        "grouping": grouping_metadata(config),
        "duplicate_groups": grouped.groups if grouped else 0,
        "rows_in_duplicate_groups": grouped.rows if grouped else 0,
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


def _imbalance(labels: np.ndarray, fold: np.ndarray, num_labels: int, k: int) -> int:
    """Largest distance, in rows, of a class's count in a validation fold from its even share
    (its rows that are in some validation fold, over K)."""
    counts = np.stack([np.bincount(labels[fold == f], minlength=num_labels) for f in range(k)])
    return int(np.ceil(np.abs(counts - counts.sum(axis=0) / k).max())) if len(labels) else 0


def row_level_split(labels: np.ndarray, k: int, seed: int) -> np.ndarray:
    """A stratified split of the rows, blind to duplicates (scikit-learn's StratifiedKFold, the
    same K and seed): what grouping is compared with. The ungrouped assignment itself would be a
    second iterative stratification, about half a second on the full-size demo, which would take
    `make-folds` past its 3-second budget; this split is one like it, up to the random draw."""
    from sklearn.model_selection import StratifiedKFold

    fold = np.full(len(labels), TRAIN_ONLY, dtype=np.int64)
    if len(labels) == 0 or np.bincount(labels).max() < k:
        return fold  # too few rows in every class to split them at all
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)  # classes with fewer rows than folds
        splitter = StratifiedKFold(n_splits=k, shuffle=True, random_state=seed)
        for index, (_, val) in enumerate(splitter.split(np.zeros(len(labels)), labels)):
            fold[val] = index
    return fold


def _grouping_report(
    labels: np.ndarray, fold: np.ndarray, groups: np.ndarray, num_labels: int, k: int, seed: int
) -> GroupingReport:
    """What grouping did, against a row-level stratified split of the same labels."""
    sizes = np.bincount(groups, minlength=1)
    multi = sizes >= 2
    plain = row_level_split(labels, k, seed)
    lowest, highest = np.full(len(sizes), k), np.full(len(sizes), TRAIN_ONLY - 1)
    np.minimum.at(lowest, groups, plain)
    np.maximum.at(highest, groups, plain)
    split = multi & (lowest != highest)
    return GroupingReport(
        groups=int(multi.sum()),
        rows=int(sizes[multi].sum()),
        largest=int(sizes.max()) if len(sizes) else 0,
        split_without=int(split.sum()),
        split_rows=int(sizes[split].sum()),
        imbalance=_imbalance(labels, fold, num_labels, k),
        imbalance_without=_imbalance(labels, plain, num_labels, k),
    )


def make_folds(config: Config, train: TrainData) -> FoldReport:
    """Assign, check and write folds/<name>.csv, .json and .config.yaml in one atomic step. With
    folds.group_duplicates, every duplicate group (comp.duplicates) lands in one fold."""
    k, num_labels, seed = config.folds.k, config.data.num_labels, config.folds.seed
    groups = row_groups(train, config.dedup) if config.folds.group_duplicates else None
    fold = assign_folds(train.labels, num_labels, k, seed, groups)
    report = check_folds(train.labels, fold, num_labels, k, groups)
    if report.problems:
        raise FoldsError("fold assignment broke an invariant: " + "; ".join(report.problems))
    if groups is not None:
        grouping = _grouping_report(train.labels, fold, groups, num_labels, k, seed)
        report = dataclasses.replace(report, grouping=grouping)
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
    if meta.get("grouping") != grouping_metadata(config):
        raise FoldsError(
            f"{json_path}: folds were grouped with {meta.get('grouping')} but the config says "
            f"{grouping_metadata(config)} (folds.group_duplicates, dedup); {again}"
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
    if report.grouping is not None:
        _print_grouping(report.grouping, console)

    if report.rare_classes:
        listed = ", ".join(
            f"{label_names[c]} ({c}): {int(report.class_counts[c])} rows"
            for c in report.rare_classes
        )
        grouped = report.grouping is not None
        console.print(
            f"[yellow]warning:[/] {len(report.rare_classes)} classes have fewer rows than "
            f"folds{' (duplicate groups counted once)' if grouped else ''} ({listed}); they are "
            "in only some validation folds"
            + (
                f", and {len(report.train_only_rows)} rows of classes with a single "
                f"{'group' if grouped else 'row'} are train-only"
                if report.train_only_rows
                else ""
            )
        )
    if report.absent_classes:
        console.print(
            f"[yellow]warning:[/] classes with no training rows at all: {report.absent_classes}"
        )


def _print_grouping(grouping: GroupingReport, console: Console) -> None:
    if not grouping.groups:
        console.print("duplicate groups: none found, so the folds are those of an ungrouped split")
        return
    console.print(
        f"duplicate groups kept together: {grouping.groups:,} groups of 2 or more rows "
        f"({grouping.rows:,} rows, the largest {grouping.largest:,}), each inside one fold. "
        f"A row-level stratified split (the same K and seed) puts {grouping.split_without:,} of "
        f"them ({grouping.split_rows:,} rows) in two or more folds. Largest gap between a "
        f"class's rows in a validation fold and its even share: {grouping.imbalance} rows "
        f"grouped, {grouping.imbalance_without} row-level."
    )
