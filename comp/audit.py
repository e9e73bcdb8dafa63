"""`comp audit`: the duplicates in the configured data, as a report (exit 0 whatever it finds).

Over the train file, every test set and every `data.extra_train` file together, with the
definitions of `comp.duplicates` (normalised text; exact, near question, near pair; groups as
connected components), it counts per file:

- duplicates within the file, exact (identical normalised text) and near;
- for a test or extra file, rows with a twin in train (exact, or near only);
- for train and extra files, rows with a twin in a test set;
- label conflicts: rows of a group whose labelled rows carry more than one label;

and per class: train rows that repeat another train row, conflicts, and test rows whose train
twin has the class (what a lookup would answer). It writes, beside the resolved config, into
`runs/audit/<train file stem>/`: `groups.csv` (every row of every group of two or more rows),
`conflicts.csv` (the groups with more than one label), `per_class.csv`, `summary.json` and
`duplicates_per_class.png`.
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import polars as pl
from rich.console import Console
from rich.markup import escape
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table

from comp.config import Config, write_config
from comp.data import load_tests, load_train
from comp.duplicates import (
    KIND_NAMES,
    STEPS,
    duplicate_groups,
    find_duplicates,
    grouping_settings,
    normalised_rows,
)
from comp.extra import load_extra_files
from comp.io import write_all_atomically
from comp.layout import CONFIG, PER_CLASS, audit_dir

GROUPS, CONFLICTS, SUMMARY, FIGURE = (
    "groups.csv",
    "conflicts.csv",
    "summary.json",
    "duplicates_per_class.png",
)
TRAIN, TEST, EXTRA = "train", "test", "extra"
QUESTION_CHARS = 200  # of the question shown per row in the CSV files


@dataclass(frozen=True)
class AuditResult:
    folder: Path
    rows: pl.DataFrame  # every row of every file: set, role, row, Id, label, group, text_group
    summary: list[dict]  # per file
    per_class: pl.DataFrame
    seconds: float


def _row_frame(config: Config) -> tuple[pl.DataFrame, list[str], list[str], list[str]]:
    """One frame row per data row of every file (set, role, row, Id, label), the questions and
    answers in the same order, and the train file's class names."""
    train = load_train(config.data)
    sets = [(TRAIN, TRAIN, train.questions, train.answers, train.labels, None)]
    sets += [(t.name, TEST, t.questions, t.answers, None, t.ids) for t in load_tests(config)]
    extra = load_extra_files(config, train)
    sets += [(e.name, EXTRA, e.questions, e.answers, e.labels, None) for e in extra]
    frames, questions, answers = [], [], []
    for name, role, q, a, labels, ids in sets:
        frames.append(
            pl.DataFrame(
                {
                    "set": [name] * len(q),
                    "role": [role] * len(q),
                    "row": np.arange(len(q)),
                    "Id": ids if ids is not None else [None] * len(q),
                    "label": labels if labels is not None else [None] * len(q),
                },
                schema={
                    "set": pl.String,
                    "role": pl.String,
                    "row": pl.Int64,
                    "Id": pl.String,
                    "label": pl.Int64,
                },
            )
        )
        questions += q
        answers += a
    return pl.concat(frames), questions, answers, train.label_names


def _flags(rows: pl.DataFrame) -> pl.DataFrame:
    """Per row: duplicates within its own file (exact / near), a train twin (exact / near), a
    test twin, and whether its group's labelled rows carry two or more labels."""
    in_set = pl.len().over("group", "set") >= 2
    exact_in_set = pl.len().over("text_group", "set") >= 2
    train_in = (pl.col("role") == TRAIN).sum().over
    return rows.with_columns(
        exact_within=exact_in_set,
        near_within=in_set & ~exact_in_set,
        train_twin_exact=(pl.col("role") != TRAIN) & (train_in("text_group") > 0),
        train_twin_near=(pl.col("role") != TRAIN)
        & (train_in("group") > 0)
        & (train_in("text_group") == 0),
        test_twin=(pl.col("role") != TEST) & ((pl.col("role") == TEST).sum().over("group") > 0),
        conflict=pl.col("label").drop_nulls().n_unique().over("group") >= 2,
        group_size=pl.len().over("group"),
    )


def _summary(rows: pl.DataFrame) -> list[dict]:
    counts = rows.group_by("set", "role", maintain_order=True).agg(
        rows=pl.len(),
        **{
            name: pl.col(name).sum()
            for name in (
                "exact_within",
                "near_within",
                "train_twin_exact",
                "train_twin_near",
                "test_twin",
            )
        },
        conflict=(pl.col("conflict") & pl.col("label").is_not_null()).sum(),
    )
    return counts.to_dicts()


def _per_class(rows: pl.DataFrame, names: list[str]) -> pl.DataFrame:
    """Per train class: rows, rows repeating another train row (exact, all), rows in a label
    conflict, and test rows whose group holds a train row of the class."""
    train = rows.filter(pl.col("role") == TRAIN)
    base = pl.DataFrame({"label": np.arange(len(names)), "category": names})
    own = train.group_by("label").agg(
        train_rows=pl.len(),
        duplicate_rows=(pl.col("exact_within") | pl.col("near_within")).sum(),
        exact_rows=pl.col("exact_within").sum(),
        conflict_rows=pl.col("conflict").sum(),
    )
    twins = (
        rows.filter(pl.col("role") == TEST)
        .join(train.select("group", "label").unique(), on="group", suffix="_twin")
        .group_by("label_twin")
        .agg(test_rows_with_train_twin=pl.len())
        .rename({"label_twin": "label"})
    )
    return (
        base.join(own, on="label", how="left")
        .join(twins, on="label", how="left")
        .fill_null(0)
        .sort(["duplicate_rows", "label"], descending=[True, False])
    )


def _group_table(rows: pl.DataFrame, questions: list[str], names: list[str]) -> pl.DataFrame:
    """Every row of every group of two or more rows, groups numbered from 1."""
    listed = rows.with_columns(question=pl.Series(questions)).filter(pl.col("group_size") >= 2)
    categories = pl.DataFrame({"label": np.arange(len(names)), "category": names})
    listed = listed.join(categories, on="label", how="left").with_columns(
        group=pl.col("group").rank("dense").cast(pl.Int64),
        question=pl.col("question").str.slice(0, QUESTION_CHARS),
    )
    identical = pl.len().over("text_group") >= 2
    return listed.sort("group", "text_group", "role", "set", "row").select(
        "group",
        "set",
        "row",
        "Id",
        "label",
        "category",
        identical.alias("identical_text"),
        "conflict",
        "question",
    )


def audit_data(config: Config, console: Console) -> AuditResult:
    """Find the duplicates of every configured file, write the report files, return them."""
    started = time.perf_counter()
    columns = (TextColumn("[bold]{task.description}"), BarColumn(), MofNCompleteColumn())
    with Progress(*columns, TimeElapsedColumn(), console=console, transient=True) as progress:
        task = progress.add_task("reading the files", total=len(STEPS) + 3)

        def step(name: str) -> None:
            progress.update(task, description=name, advance=1)

        rows, questions, answers, names = _row_frame(config)
        step(STEPS[0])
        normalised = normalised_rows(questions, answers)
        pairs = find_duplicates(normalised, config.dedup, step)
        step("groups and tables")
        rows = _flags(
            rows.with_columns(
                group=pl.Series(duplicate_groups(len(rows), pairs)),
                text_group=pl.Series(normalised.pairs).rank("dense").cast(pl.Int64),
            )
        )
        per_class, groups, summary = (
            _per_class(rows, names),
            _group_table(rows, questions, names),
            _summary(rows),
        )
        step("writing")
        kinds = np.bincount(pairs.kind, minlength=len(KIND_NAMES)).tolist()
        report = {
            "seconds_to_find": time.perf_counter() - started,
            "dedup": grouping_settings(config.dedup),
            "pairs": dict(zip(KIND_NAMES, kinds, strict=True)),
            "groups": int(rows.filter(pl.col("group_size") >= 2)["group"].n_unique()),
            "conflict_groups": int(rows.filter(pl.col("conflict"))["group"].n_unique()),
            "files": summary,
        }
        _write(config, audit_dir(config), groups, per_class, report)
    seconds = time.perf_counter() - started
    return AuditResult(audit_dir(config), rows, summary, per_class, seconds)


def _write(
    config: Config,
    folder: Path,
    groups: pl.DataFrame,
    per_class: pl.DataFrame,
    summary: dict,
) -> None:
    text = json.dumps(summary, indent=1, ensure_ascii=False) + "\n"
    write_all_atomically(
        {
            folder / CONFIG: lambda p: write_config(config, p),
            folder / GROUPS: groups.write_csv,
            folder / CONFLICTS: groups.filter(pl.col("conflict")).write_csv,
            folder / PER_CLASS: per_class.write_csv,
            folder / SUMMARY: lambda p: p.write_text(text, encoding="utf-8"),
            folder / FIGURE: lambda p: plot_duplicates_per_class(per_class, p),
        }
    )


def plot_duplicates_per_class(per_class: pl.DataFrame, path: Path) -> None:
    """Horizontal bars per class: train rows that repeat another train row, rows in a label
    conflict, test rows with a train twin of the class."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    ordered = per_class.sort(["duplicate_rows", "label"], descending=[False, True])
    y = np.arange(ordered.height)
    height = 0.27
    fig, ax = plt.subplots(figsize=(9, max(4.0, 0.16 * ordered.height + 1.5)))
    series = (
        ("duplicate_rows", "train rows that repeat another train row"),
        ("conflict_rows", "train rows in a label conflict"),
        ("test_rows_with_train_twin", "test rows with a train twin of this class"),
    )
    for offset, (column, label) in zip((height, 0.0, -height), series, strict=True):
        ax.barh(y + offset, ordered[column].to_numpy(), height=height, label=label)
    names = zip(ordered["category"], ordered["label"], strict=True)
    ax.set_yticks(y, [f"{category} ({label})" for category, label in names])
    ax.tick_params(axis="y", labelsize=6)
    ax.set_xlabel("rows")
    ax.set_title("Duplicates and label conflicts per class")
    ax.legend(loc="lower right", fontsize=8)
    ax.grid(axis="x", alpha=0.3)
    fig.savefig(path, format="png", dpi=110, bbox_inches="tight")
    plt.close(fig)


def print_audit(result: AuditResult, console: Console, top: int = 15) -> None:
    caption = (
        "dup: repeats a row of its own file (exact: the same normalised text); train twin: "
        "repeats a train row (exact, or near only); conflicts: labelled rows whose group has "
        "two or more labels"
    )
    table = Table(title=f"duplicates ({result.seconds:.1f} s)", caption=caption)
    headers = ("file", "rows", "exact dup", "near dup", "train twin", "near train twin")
    for column in (*headers, "test twin", "conflicts"):
        table.add_column(column, justify="left" if column == "file" else "right")
    for s in result.summary:
        is_train, is_test = s["role"] == TRAIN, s["role"] == TEST
        table.add_row(
            s["set"] if is_train else f"{s['set']} ({s['role']})",
            f"{s['rows']:,}",
            f"{s['exact_within']:,}",
            f"{s['near_within']:,}",
            "-" if is_train else f"{s['train_twin_exact']:,}",
            "-" if is_train else f"{s['train_twin_near']:,}",
            "-" if is_test else f"{s['test_twin']:,}",
            "-" if is_test else f"{s['conflict']:,}",
        )
    console.print(table)
    _print_classes(result.per_class, console, top)
    console.print(
        f"wrote {escape(str(result.folder))}/: {GROUPS}, {CONFLICTS}, {PER_CLASS}, {SUMMARY}, "
        f"{FIGURE}, {CONFIG}"
    )


def _print_classes(per_class: pl.DataFrame, console: Console, top: int) -> None:
    worst = per_class.filter(
        (pl.col("duplicate_rows") > 0) | (pl.col("test_rows_with_train_twin") > 0)
    ).head(top)
    if not worst.height:
        console.print("no class has a duplicate train row or a test row with a train twin")
        return
    classes = Table(title=f"classes with the most duplicate train rows (top {worst.height})")
    headers = ("label", "category", "train rows", "dup", "exact dup", "conflicts", "test twins")
    for column in headers:
        classes.add_column(column, justify="left" if column == "category" else "right")
    for row in worst.iter_rows(named=True):
        classes.add_row(
            str(row["label"]),
            escape(row["category"]),
            f"{row['train_rows']:,}",
            f"{row['duplicate_rows']:,}",
            f"{row['exact_rows']:,}",
            f"{row['conflict_rows']:,}",
            f"{row['test_rows_with_train_twin']:,}",
        )
    console.print(classes)
