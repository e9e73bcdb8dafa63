"""Read and validate the competition's CSV files.

Everything is read as text (no type inference), so the checks below see exactly what is in the
file. A failed check raises a CompError naming the file, the column and the first offending rows
(1-based data rows, header excluded) before anything is written.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import polars as pl

from comp.config import Config, DataConfig, TestSet
from comp.errors import CompError
from comp.io import sha256_file
from comp.text import split_qa

MAX_ROWS_NAMED = 5


class DataError(CompError):
    pass


@dataclass(frozen=True)
class TrainData:
    path: Path
    sha256: str
    questions: list[str]
    answers: list[str]
    labels: np.ndarray  # int64, 0..num_labels-1
    label_names: list[str]  # one per label id: the category name, or the id as text

    def __len__(self) -> int:
        return len(self.labels)


@dataclass(frozen=True)
class TestData:
    name: str
    path: Path
    ids: list[str]  # kept as written in the file, so submissions reproduce them exactly
    questions: list[str]
    answers: list[str]

    def __len__(self) -> int:
        return len(self.ids)


def rows_phrase(mask: pl.Series) -> str:
    rows = (np.flatnonzero(mask.to_numpy()) + 1).tolist()
    named = ", ".join(str(r) for r in rows[:MAX_ROWS_NAMED])
    more = f" and {len(rows) - MAX_ROWS_NAMED} more" if len(rows) > MAX_ROWS_NAMED else ""
    return f"row{'s' if len(rows) > 1 else ''} {named}{more}"


# Encodings Arabic CSVs often come in (Excel on Windows saves Windows-1256), as iconv names them
LIKELY_ENCODINGS = {"UTF-16": "utf-16", "WINDOWS-1256": "cp1256", "ISO-8859-6": "iso8859_6"}
SNIFF_BYTES = 4 << 20  # read this much of a file to guess its encoding


def not_utf8(path: Path) -> str | None:
    """For a file that is not UTF-8: where it stops being UTF-8, which usual encoding reads it
    as Arabic text, and the command that converts it; None if it is valid UTF-8. comp itself
    reads UTF-8 only."""
    with open(path, "rb") as handle:
        raw = handle.read(SNIFF_BYTES)
    try:
        raw.decode("utf-8")
        return None
    except UnicodeDecodeError as error:
        if error.start >= len(raw) - 4 and len(raw) == SNIFF_BYTES:
            return None  # only the sniffed block's end cuts a character
        line = raw[: error.start].count(b"\n") + 1
        where = f"byte 0x{raw[error.start]:02x} on line {line}"
    guess = _arabic_reading(raw)
    if guess is None:
        return f"{path}: not UTF-8 ({where}), and not Arabic text in {', '.join(LIKELY_ENCODINGS)}"
    out = path.with_name(f"{path.stem}.utf8{path.suffix}")
    return (
        f"{path}: not UTF-8 ({where}); it reads as Arabic text in {guess}: convert it with "
        f"`iconv -f {guess} -t UTF-8 {path} > {out}` and point the config at {out}"
    )


def _arabic_reading(raw: bytes) -> str | None:
    """The usual encoding that decodes `raw` with the most Arabic letters (at least half its
    letters), or None."""
    best, best_share = None, 0.5
    for name, codec in LIKELY_ENCODINGS.items():
        if name == "UTF-16" and raw[:2] not in (b"\xff\xfe", b"\xfe\xff"):
            continue  # without its byte-order mark UTF-16 is no likely reading
        try:
            text = raw.decode(codec, errors="strict")
        except UnicodeDecodeError:
            continue
        letters = [c for c in text if c.isalpha()]
        share = sum("\u0600" <= c <= "\u06ff" for c in letters) / max(len(letters), 1)
        if share > best_share:
            best, best_share = name, share
    return best


def read_csv(path: str | Path, required: list[str]) -> pl.DataFrame:
    """Read a UTF-8 CSV (BOM or not, LF or CRLF, quoted multi-line cells) as strings."""
    path = Path(path)
    if not path.is_file():
        raise DataError(f"{path}: file not found")
    try:
        frame = pl.read_csv(path, infer_schema=False, encoding="utf8")
    except pl.exceptions.NoDataError:
        raise DataError(f"{path}: the file is empty") from None
    except (pl.exceptions.ComputeError, pl.exceptions.PolarsError) as exc:
        reason = str(exc).strip().splitlines()[0]
        raise DataError(not_utf8(path) or f"{path}: not a readable UTF-8 CSV: {reason}") from None
    missing = [c for c in required if c not in frame.columns]
    if missing:
        raise DataError(
            f"{path}: missing column '{missing[0]}' (columns found: {', '.join(frame.columns)})"
        )
    if frame.height == 0:
        raise DataError(f"{path}: the file has a header but no rows")
    return frame


def _check_text(frame: pl.DataFrame, path: Path, column: str) -> list[str]:
    text = frame[column]
    blank = text.is_null() | (text.str.strip_chars() == "")
    if blank.any():
        raise DataError(f"{path}: column '{column}' is null or empty in {rows_phrase(blank)}")
    return text.to_list()


def _split_all(texts: list[str], data: DataConfig) -> tuple[list[str], list[str]]:
    pairs = [split_qa(t, data.question_marker, data.answer_marker) for t in texts]
    return [q for q, _ in pairs], [a for _, a in pairs]


def parse_labels(frame: pl.DataFrame, path: Path, column: str, num_labels: int) -> np.ndarray:
    raw = frame[column].str.strip_chars()
    parsed = raw.cast(pl.Int64, strict=False)
    bad = parsed.is_null()
    if bad.any():
        first = raw.filter(bad)[0]
        raise DataError(
            f"{path}: column '{column}' is not an integer in {rows_phrase(bad)} (e.g. {first!r})"
        )
    out_of_range = (parsed < 0) | (parsed >= num_labels)
    if out_of_range.any():
        first = parsed.filter(out_of_range)[0]
        raise DataError(
            f"{path}: column '{column}' is outside 0..{num_labels - 1} in "
            f"{rows_phrase(out_of_range)} (e.g. {first})"
        )
    return parsed.to_numpy().astype(np.int64)


def _label_names(
    frame: pl.DataFrame,
    path: Path,
    category_column: str | None,
    labels: np.ndarray,
    num_labels: int,
) -> list[str]:
    names = [str(i) for i in range(num_labels)]
    if category_column is None:
        return names
    if category_column not in frame.columns:
        raise DataError(f"{path}: missing column '{category_column}' (data.category_column)")
    categories = frame[category_column].fill_null("").str.strip_chars().to_list()
    seen: dict[str, int] = {}
    named: dict[int, str] = {}
    for row, (category, label) in enumerate(zip(categories, labels.tolist(), strict=True)):
        if category in seen and seen[category] != label:
            raise DataError(
                f"{path}: column '{category_column}': category {category!r} maps to labels "
                f"{seen[category]} and {label} (row {row + 1})"
            )
        if label in named and named[label] != category:
            raise DataError(
                f"{path}: column '{category_column}': label {label} has two categories, "
                f"{named[label]!r} and {category!r} (row {row + 1})"
            )
        seen[category] = label
        named[label] = category
    for label, category in named.items():
        names[label] = category or str(label)
    return names


def questions_and_answers(
    frame: pl.DataFrame, path: Path, data: DataConfig
) -> tuple[list[str], list[str]]:
    """The text column, checked (no null or empty cell) and split into questions and answers."""
    return _split_all(_check_text(frame, path, data.text_column), data)  # split_qa normalises


def load_train(data: DataConfig) -> TrainData:
    path = Path(data.train)
    required = [data.text_column, data.label_column]
    frame = read_csv(path, required)
    questions, answers = questions_and_answers(frame, path, data)
    labels = parse_labels(frame, path, data.label_column, data.num_labels)
    names = _label_names(frame, path, data.category_column, labels, data.num_labels)
    return TrainData(path, sha256_file(path), questions, answers, labels, names)


def check_ids(frame: pl.DataFrame, path: Path, column: str) -> pl.Series:
    """The Id column, stripped; DataError on a null, empty or duplicated Id."""
    ids = frame[column].str.strip_chars()
    blank = ids.is_null() | (ids == "")
    if blank.any():
        raise DataError(f"{path}: column '{column}' is null or empty in {rows_phrase(blank)}")
    duplicated = ids.is_duplicated()
    if duplicated.any():
        first = ids.filter(duplicated)[0]
        raise DataError(
            f"{path}: column '{column}' has duplicate Ids in {rows_phrase(duplicated)} "
            f"(e.g. {first!r})"
        )
    return ids


def load_test(data: DataConfig, test_set: TestSet) -> TestData:
    path = Path(test_set.path)
    frame = read_csv(path, [data.id_column, data.text_column])
    ids = check_ids(frame, path, data.id_column)
    questions, answers = questions_and_answers(frame, path, data)
    return TestData(test_set.name, path, ids.to_list(), questions, answers)


def load_tests(config: Config) -> list[TestData]:
    """Every configured test set; an Id may appear in only one of them (combined submissions)."""
    tests = [load_test(config.data, test_set) for test_set in config.data.test_sets]
    owner: dict[str, Path] = {}
    for test in tests:
        for row, test_id in enumerate(test.ids):
            if test_id in owner:
                raise DataError(
                    f"{test.path}: column '{config.data.id_column}': Id {test_id!r} (row "
                    f"{row + 1}) is also in {owner[test_id]}; Ids must be unique across test sets"
                )
            owner[test_id] = test.path
    return tests
