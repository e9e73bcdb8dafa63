"""Leaderboard submissions: written from the ensemble's test logits, validated before they can
land on disk, checked on demand, and scored locally against a Kaggle-style answer key.

A submission is a UTF-8 CSV with the header `Id,Predicted` (`data.id_column`,
`data.prediction_column`) and one row per test Id, in the test file's order, holding an integer
label in 0..num_labels-1. `check_submission` lists every way a file departs from that;
`write_submission` and `make_submissions` run it on the temporary file before renaming it into
place, so an invalid submission is never left where a valid one is expected.

`comp submit --check FILE` (`check_command`) exits 0 when the file is valid, 3
(`comp.errors.EXIT_INVALID_SUBMISSION`) when it was read and has problems (each one printed),
and 2 (a CompError, like any other bad input) when it cannot be read at all: missing, not UTF-8,
empty or not parseable as CSV. Exit code 1 stays reserved for unexpected errors (bugs).
"""

from __future__ import annotations

import csv
import dataclasses
import io
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import polars as pl
from rich.console import Console
from rich.markup import escape
from rich.table import Table

from comp.config import Config, DataConfig, write_config
from comp.data import (
    MAX_ROWS_NAMED,
    DataError,
    TestData,
    check_ids,
    load_tests,
    parse_labels,
    rows_phrase,
)
from comp.data import read_csv as read_data_csv
from comp.ensemble import read_chosen_logits
from comp.errors import CompError
from comp.io import atomic_path, write_all_atomically
from comp.layout import (
    COMBINED,
    TEST_LOGITS,
    ensemble_dir,
    submission_config_path,
    submission_path,
)
from comp.metrics import macro_f1

USAGES = ("Public", "Private")  # the answer key's Usage values
TOP_LABELS = 5  # labels shown in the histogram of each written submission
_INTEGER = r"^[+-]?[0-9]+$"


class SubmitError(CompError):
    pass


# ---------------------------------------------------------------------------------------------
# Checking a submission file


@dataclass
class _Parsed:
    """A submission file read as text: problems of the file itself and its header, and the
    stripped Id and prediction of every data row (None where the file could not be read)."""

    problems: list[str]
    header: list[str] | None = None
    ids: pl.Series | None = None
    predicted: pl.Series | None = None


def _examples(values: Sequence[str], count: int = 3) -> str:
    return ", ".join(repr(v) for v in list(dict.fromkeys(values))[:count])


def _parse(path: str | Path, data: DataConfig) -> _Parsed:
    path = Path(path)
    try:
        raw = path.read_bytes()
    except FileNotFoundError:
        return _Parsed(["file not found"])
    except OSError as exc:
        return _Parsed([f"cannot read the file: {exc.strerror or exc}"])
    try:
        text = raw.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        line = raw[: exc.start].count(b"\n") + 1
        return _Parsed([f"not UTF-8: byte 0x{raw[exc.start]:02x} on line {line} is not valid"])
    if not text.strip():
        return _Parsed(["the file is empty"])
    reader = csv.reader(io.StringIO(text, newline=""), strict=True)
    try:
        records = [record for record in reader if record]  # blank lines are skipped
    except csv.Error as exc:
        return _Parsed([f"not a readable CSV: {exc} (line {reader.line_num})"])

    header, rows = records[0], records[1:]
    problems = []
    expected = [data.id_column, data.prediction_column]
    if header != expected:
        hint = " (columns in the wrong order)" if sorted(header) == sorted(expected) else ""
        problems.append(f"header is {','.join(header)!r}, expected {','.join(expected)!r}{hint}")
    if data.id_column in header and data.prediction_column in header:
        id_at, predicted_at = header.index(data.id_column), header.index(data.prediction_column)
    elif len(header) == 2:
        id_at, predicted_at = 0, 1  # a misnamed header: check the rows by position
    else:
        problems.append(
            f"cannot check the rows without columns '{data.id_column}' and "
            f"'{data.prediction_column}'"
        )
        return _Parsed(problems, header)

    widths = np.fromiter((len(r) for r in rows), dtype=np.int64, count=len(rows))
    ragged = widths != len(header)
    if ragged.any():
        first = int(np.flatnonzero(ragged)[0])
        problems.append(
            f"wrong number of fields in {rows_phrase(pl.Series(ragged))} (expected {len(header)}, "
            f"row {first + 1} has {widths[first]})"
        )

    def column(at: int) -> pl.Series:
        values = [r[at] if at < len(r) else "" for r in rows]
        return pl.Series(values, dtype=pl.String).str.strip_chars()

    return _Parsed(problems, header, column(id_at), column(predicted_at))


def _check_rows(parsed: _Parsed, test: TestData, data: DataConfig) -> list[str]:
    problems = list(parsed.problems)
    if parsed.ids is None or parsed.predicted is None:
        return problems
    ids, predicted = parsed.ids, parsed.predicted
    id_col, pred_col, where = data.id_column, data.prediction_column, f"test set '{test.name}'"

    empty = ids == ""
    if empty.any():
        problems.append(f"column '{id_col}' is empty in {rows_phrase(empty)}")
    duplicated = ids.is_duplicated() & ~empty
    if duplicated.any():
        first = ids.filter(duplicated)
        problems.append(
            f"column '{id_col}' has {first.n_unique()} duplicated Id(s) in "
            f"{rows_phrase(duplicated)} (e.g. {_examples(first.to_list())})"
        )
    expected = pl.Series(test.ids, dtype=pl.String).str.strip_chars()
    first_line = (parsed.header or [""])[0].strip()
    if data.id_column not in (parsed.header or []) and first_line in set(test.ids):
        problems.append(f"the first line starts with Id {first_line!r}: is the header missing?")
    extra = ~ids.is_in(expected.implode()) & ~empty
    if extra.any():
        values = ids.filter(extra)
        problems.append(
            f"{values.n_unique()} Id(s) not in {where}, in {rows_phrase(extra)} "
            f"(e.g. {_examples(values.to_list())})"
        )
    missing = expected.filter(~expected.is_in(ids.implode()))
    if len(missing):
        problems.append(
            f"{len(missing)} of {len(expected)} Ids of {where} are missing "
            f"(e.g. {_examples(missing.to_list(), MAX_ROWS_NAMED)})"
        )

    blank = predicted == ""
    if blank.any():
        problems.append(f"column '{pred_col}' is empty in {rows_phrase(blank)}")
    integer = predicted.str.contains(_INTEGER)
    not_integer = ~integer & ~blank
    if not_integer.any():
        problems.append(
            f"column '{pred_col}' is not an integer in {rows_phrase(not_integer)} "
            f"(e.g. {_examples(predicted.filter(not_integer).to_list())})"
        )
    label = predicted.cast(pl.Int64, strict=False)  # null where too large for int64
    out_of_range = integer & ~label.is_between(0, data.num_labels - 1).fill_null(False)
    if out_of_range.any():
        examples = _examples(predicted.filter(out_of_range).to_list())
        problems.append(
            f"column '{pred_col}' is outside 0..{data.num_labels - 1} in "
            f"{rows_phrase(out_of_range)} (e.g. {examples})"
        )

    if len(ids) != len(expected):
        problems.append(f"expected {len(expected)} rows (one per Id of {where}), found {len(ids)}")
    return problems


def check_submission(path: str | Path, test: TestData, data: DataConfig) -> list[str]:
    """Every problem of the submission at `path` for `test`, one line each (empty: valid).

    Rows are 1-based data rows (header and blank lines excluded); Ids are compared as stripped
    strings; only the first few rows and Ids of each problem are named."""
    return _check_rows(_parse(path, data), test, data)


def combined_test(tests: Sequence[TestData]) -> TestData:
    """Every test set's Ids in config order: what a combined submission must hold."""
    return TestData(
        COMBINED,
        tests[0].path,
        [i for t in tests for i in t.ids],
        [q for t in tests for q in t.questions],
        [a for t in tests for a in t.answers],
    )


# ---------------------------------------------------------------------------------------------
# Writing submissions


def _write_checked(
    tmp: Path,
    final: Path,
    ids: Sequence[str],
    labels: np.ndarray,
    test: TestData,
    data: DataConfig,
) -> None:
    """Write `ids`/`labels` to `tmp` in the test file's order, then check the file; a problem
    raises, and the caller's atomic write removes the temporary file."""
    ids = [str(i).strip() for i in ids]
    labels = np.asarray(labels)
    if len(ids) != len(labels):
        raise SubmitError(f"{final}: {len(ids)} Ids but {len(labels)} labels")
    position = {test_id: row for row, test_id in enumerate(ids)}
    if len(position) == len(ids) and position.keys() == set(test.ids):
        order = np.fromiter((position[i] for i in test.ids), dtype=np.int64, count=len(ids))
        ids, labels = [ids[i] for i in order], labels[order]
    # else: written as given, so the check below names the missing, extra or duplicated Ids
    frame = pl.DataFrame({data.id_column: pl.Series(ids, dtype=pl.String)}).with_columns(
        pl.Series(data.prediction_column, labels)
    )
    frame.write_csv(tmp)
    problems = check_submission(tmp, test, data)
    if problems:
        raise SubmitError(f"{final}: not written, invalid submission: {'; '.join(problems)}")


def write_submission(
    path: str | Path, ids: Sequence[str], labels: np.ndarray, test: TestData, data: DataConfig
) -> None:
    """Write `Id,Predicted` with one row per test Id in the test file's order; the file is
    checked before it is renamed into place, so an invalid one is never left at `path`."""
    with atomic_path(path) as tmp:
        _write_checked(tmp, Path(path), ids, labels, test, data)


def _load_ensemble(config: Config) -> tuple[Path, pl.DataFrame, str]:
    """(parquet path, frame of set/Id/chosen logits, chosen column) of the configured ensemble."""
    parquet, frame, column = read_chosen_logits(
        ensemble_dir(config), TEST_LOGITS, ["set", "Id"], config.data.num_labels
    )
    return parquet, frame.with_columns(pl.col("Id").cast(pl.String).str.strip_chars()), column


def _labels_for(frame: pl.DataFrame, column: str, test: TestData, parquet: Path) -> np.ndarray:
    """argmax of `column` for `test`'s Ids, in the test file's order."""
    rows = frame.filter(pl.col("set") == test.name)
    if rows.height == 0:
        found = ", ".join(repr(s) for s in frame["set"].unique(maintain_order=True).to_list())
        raise SubmitError(
            f"{parquet}: no rows for test set '{test.name}' (sets found: {found or 'none'}); "
            f"re-run `comp ensemble`"
        )
    expected, found = pl.Series(test.ids, dtype=pl.String), rows["Id"]
    missing = expected.filter(~expected.is_in(found.implode()))
    extra = found.filter(~found.is_in(expected.implode()))
    duplicated = found.filter(found.is_duplicated())
    if len(missing) or len(extra) or len(duplicated):
        counts = [
            (missing, "missing"),
            (extra, "extra"),
            (duplicated.unique(maintain_order=True), "duplicated"),
        ]
        details = ", ".join(f"{len(ids)} {what}" for ids, what in counts if len(ids))
        examples = next(_examples(ids.to_list()) for ids, _ in counts if len(ids))
        raise SubmitError(
            f"{parquet}: Ids of test set '{test.name}' differ from {test.path}: {details} "
            f"(e.g. {examples}); re-run `comp ensemble`"
        )
    source = (
        pl.DataFrame({"Id": expected})
        .join(
            found.to_frame().with_row_index("source"), on="Id", how="left", maintain_order="left"
        )["source"]
        .to_numpy()
    )
    logits = rows[column].to_numpy()[source]
    if not np.isfinite(logits).all():
        raise SubmitError(
            f"{parquet}: column '{column}' has non-finite values for test set '{test.name}'"
        )
    return logits.argmax(axis=1)


def _histogram(labels: np.ndarray, num_labels: int) -> tuple[int, str]:
    counts = np.bincount(labels, minlength=num_labels)
    top = [int(c) for c in np.argsort(-counts, kind="stable")[:TOP_LABELS] if counts[c]]
    return int((counts > 0).sum()), ", ".join(f"{c}: {counts[c]:,}" for c in top)


def make_submissions(config: Config, console: Console, combined: bool | None = None) -> list[Path]:
    """Write `submissions/<name>_<set>.csv` for every configured test set (and, if combined,
    `<name>_combined.csv` with every set's rows in config order) from the ensemble's test
    logits, plus `<name>.config.yaml`; all in one atomic step. Returns the CSV paths."""
    combined = config.submit.combined if combined is None else combined
    data = config.data
    parquet, frame, column = _load_ensemble(config)
    tests = load_tests(config)
    if combined and any(t.name == COMBINED for t in tests):
        raise SubmitError(
            f"data.test_sets: a test set named '{COMBINED}' clashes with the combined submission"
        )
    labels = [_labels_for(frame, column, test, parquet) for test in tests]

    files = [
        (submission_path(config, test.name), test, lab)
        for test, lab in zip(tests, labels, strict=True)
    ]
    if combined:
        files.append(
            (submission_path(config, COMBINED), combined_test(tests), np.concatenate(labels))
        )

    def writer(path: Path, test: TestData, lab: np.ndarray):
        return lambda tmp: _write_checked(tmp, path, test.ids, lab, test, data)

    writers = {path: writer(path, test, lab) for path, test, lab in files}
    writers[submission_config_path(config)] = lambda tmp: write_config(config, tmp)
    write_all_atomically(writers)

    title = f"submissions from {parquet} ({column})"
    table = Table(title=escape(title), min_width=len(title))
    table.add_column("file", overflow="fold")
    table.add_column("rows", justify="right")
    table.add_column("labels", justify="right")
    table.add_column(f"most frequent (label: rows, top {TOP_LABELS})")
    for path, test, lab in files:
        distinct, top = _histogram(lab, data.num_labels)
        table.add_row(escape(str(path)), f"{len(test):,}", str(distinct), top)
    console.print(table)
    return [path for path, _, _ in files]


# ---------------------------------------------------------------------------------------------
# `comp submit --check`


def _pick_test(
    parsed: _Parsed, tests: list[TestData], test_set: str | None
) -> tuple[TestData, str]:
    """The test set to check against and the files it comes from."""
    candidates = {t.name: (t, str(t.path)) for t in tests}
    if len(tests) > 1 and COMBINED not in candidates:
        paths = ", ".join(str(t.path) for t in tests)
        candidates[COMBINED] = (combined_test(tests), paths)
    if test_set is not None:
        if test_set not in candidates:
            raise SubmitError(f"unknown test set {test_set!r} (known: {', '.join(candidates)})")
        return candidates[test_set]
    if parsed.ids is None or len(candidates) == 1:
        return next(iter(candidates.values()))
    ids = set(parsed.ids.to_list())

    def overlap(item: tuple[TestData, str]) -> float:  # Jaccard similarity of the Id sets
        expected = set(item[0].ids)
        return len(ids & expected) / len(ids | expected)

    return max(candidates.values(), key=overlap)  # first of equals: config order


def check_command(
    path: str | Path, config: Config, console: Console, test_set: str | None = None
) -> bool:
    """Check a submission file against a test set (by name, else the one whose Ids match best;
    'combined' = every set's Ids in config order); print every problem; True iff valid.

    The CLI exits 0 when this returns True and `EXIT_INVALID_SUBMISSION` (3) otherwise. A file
    that cannot be read as a CSV at all, and bad config or test files, raise CompError (exit 2)."""
    tests = load_tests(config)
    parsed = _parse(path, config.data)
    if parsed.header is None:  # not found, unreadable, not UTF-8, empty or not a CSV
        raise SubmitError(f"{path}: {'; '.join(parsed.problems)}")
    test, source = _pick_test(parsed, tests, test_set)
    problems = _check_rows(parsed, test, config.data)
    where = f"test set '{escape(test.name)}' ({escape(source)}, {len(test):,} Ids)"
    if not problems:
        console.print(f"[green]valid[/]: {escape(str(path))} matches {where}")
        return True
    console.print(
        f"[bold red]invalid[/]: {escape(str(path))} against {where}: "
        f"{len(problems)} problem{'s' if len(problems) > 1 else ''}"
    )
    for problem in problems:
        console.print(f"  - {escape(problem)}", soft_wrap=True)
    return False


# ---------------------------------------------------------------------------------------------
# A local leaderboard


def load_solution(path: str | Path, data: DataConfig, num_labels: int) -> pl.DataFrame:
    """The answer key as Id (stripped string), label (int64) and Usage (Public/Private)."""
    path = Path(path)
    label_columns = list(dict.fromkeys([data.label_column, "label", data.prediction_column]))
    head = read_data_csv(path, [data.id_column, "Usage"])
    label_column = next((c for c in label_columns if c in head.columns), None)
    if label_column is None:
        raise DataError(
            f"{path}: missing column '{label_columns[0]}' (columns found: "
            f"{', '.join(head.columns)})"
        )
    ids = check_ids(head, path, data.id_column)
    labels = parse_labels(head, path, label_column, num_labels)
    usage = head["Usage"].fill_null("").str.strip_chars()
    bad = ~usage.is_in(list(USAGES))
    if bad.any():
        raise DataError(
            f"{path}: column 'Usage' is not Public or Private in {rows_phrase(bad)} "
            f"(e.g. {usage.filter(bad)[0]!r})"
        )
    return pl.DataFrame({"Id": ids, "label": labels, "Usage": usage})


def score_submission(
    path: str | Path, solution_path: str | Path, data: DataConfig, num_labels: int
) -> dict:
    """Macro-F1 of a submission against the answer key, for the Public rows, the Private rows
    and all of them, with row counts: {"public": {"macro_f1", "rows"}, "private": ..., "overall":
    ...}. A submission may leave out a whole Usage split (e.g. a file of the public test set
    only): that split is then reported with 0 rows and macro_f1 None. Any other missing Id, an
    extra or duplicated Id, or a malformed row raises SubmitError."""
    data = dataclasses.replace(data, num_labels=num_labels)
    solution = load_solution(solution_path, data, num_labels)
    parsed = _parse(path, data)
    if parsed.ids is not None:
        covered = solution.filter(pl.col("Id").is_in(parsed.ids.implode()))["Usage"].unique()
        if len(covered):
            solution = solution.filter(pl.col("Usage").is_in(covered.implode()))
    key = TestData("solution", Path(solution_path), solution["Id"].to_list(), [], [])
    problems = _check_rows(parsed, key, data)
    if problems:
        raise SubmitError(
            f"{path}: cannot be scored against {solution_path}: {'; '.join(problems)}"
        )
    assert parsed.ids is not None and parsed.predicted is not None
    submitted = pl.DataFrame({"Id": parsed.ids, "predicted": parsed.predicted.cast(pl.Int64)})
    joined = solution.join(submitted, on="Id", how="left")

    def score(rows: pl.DataFrame) -> dict:
        if rows.height == 0:
            return {"macro_f1": None, "rows": 0}
        y_true, y_pred = rows["label"].to_numpy(), rows["predicted"].to_numpy()
        return {"macro_f1": macro_f1(y_true, y_pred, num_labels), "rows": rows.height}

    scores = {"submission": str(path), "solution": str(solution_path)}
    for usage in USAGES:
        scores[usage.lower()] = score(joined.filter(pl.col("Usage") == usage))
    scores["overall"] = score(joined)
    return scores


def print_scores(scores: dict, console: Console) -> None:
    title = f"local leaderboard: {scores.get('submission', '')}"
    table = Table(title=escape(title), min_width=len(title))  # a path is never cut mid-word
    table.add_column("split")
    table.add_column("rows", justify="right")
    table.add_column("macro-F1", justify="right")
    for split in ("public", "private", "overall"):
        entry = scores[split]
        f1 = "-" if entry["macro_f1"] is None else f"{entry['macro_f1']:.4f}"
        table.add_row(split.capitalize(), f"{entry['rows']:,}", f1)
    console.print(table)
    if any(scores[s]["rows"] == 0 for s in ("public", "private")):
        console.print("(a split with 0 rows is not in the submission)")
