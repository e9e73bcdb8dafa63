from pathlib import Path

import numpy as np
import pytest

from comp.data import DataError, load_test, load_tests, load_train
from tests.conftest import qa, small_config, write_csv


def train_config(tmp_path: Path, rows: list[list], header=("text", "category", "label"), **kw):
    write_csv(tmp_path / "train.csv", list(header), rows, **kw)
    return small_config(tmp_path)


def test_reads_bom_crlf_and_multiline_cells(tmp_path):
    rows = [[qa("سؤال\nبسطرين", "جواب"), "Dentistry", "1"], ["بلا علامات", "Pediatrics", " 2 "]]
    config = train_config(tmp_path, rows, bom=True, newline="\r\n")
    train = load_train(config.data)
    assert train.questions == ["سؤال\nبسطرين", "بلا علامات"]
    assert train.answers == ["جواب", ""]
    assert train.labels.tolist() == [1, 2] and train.labels.dtype == np.int64
    assert train.label_names[:3] == ["0", "Dentistry", "Pediatrics"]
    assert len(train.sha256) == 64


def test_crlf_inside_cells_is_normalised(tmp_path):
    (tmp_path / "train.csv").write_bytes(
        'text,category,label\r\n"السؤال\r\n--\r\nس\r\nالجواب\r\n--\r\nج",A,0\r\n'.encode()
    )
    train = load_train(small_config(tmp_path).data)
    assert (train.questions, train.answers) == (["س"], ["ج"])


@pytest.mark.parametrize(
    ("rows", "message"),
    [
        ([["a", "A", "0"], ["", "B", "1"]], r"column 'text' is null or empty in row 2$"),
        ([["a", "A", "0"], ["   ", "B", "1"]], "column 'text' is null or empty in row 2"),
        (
            [["a", "A", "0"], ["b", "B", "x"]],
            r"column 'label' is not an integer in row 2 \(e.g. 'x'\)",
        ),
        ([["a", "A", "1.5"]], "column 'label' is not an integer in row 1"),
        ([["a", "A", ""]], "column 'label' is not an integer in row 1"),
        ([["a", "A", "4"], ["b", "B", "-1"]], r"outside 0..3 in rows 1, 2 \(e.g. 4\)"),
        ([["a", "A", "0"], ["b", "A", "1"]], "category 'A' maps to labels 0 and 1 \\(row 2\\)"),
        ([["a", "A", "0"], ["b", "B", "0"]], "label 0 has two categories"),
    ],
)
def test_bad_train_rows(tmp_path, rows, message):
    config = train_config(tmp_path, rows)
    with pytest.raises(DataError, match=message) as info:
        load_train(config.data)
    assert str(tmp_path / "train.csv") in str(info.value)


def test_many_bad_rows_are_counted(tmp_path):
    rows = [["", "A", "0"]] * 8
    with pytest.raises(DataError, match="rows 1, 2, 3, 4, 5 and 3 more"):
        load_train(train_config(tmp_path, rows).data)


def test_missing_file_column_and_empty(tmp_path):
    config = small_config(tmp_path)
    with pytest.raises(DataError, match="train.csv: file not found"):
        load_train(config.data)
    (tmp_path / "train.csv").write_text("")
    with pytest.raises(DataError, match="the file is empty"):
        load_train(config.data)
    (tmp_path / "train.csv").write_text("text,category,label\n")
    with pytest.raises(DataError, match="header but no rows"):
        load_train(config.data)
    write_csv(tmp_path / "train.csv", ["text", "category"], [["a", "A"]])
    with pytest.raises(DataError, match="missing column 'label'"):
        load_train(config.data)
    (tmp_path / "train.csv").write_bytes(b"text,category,label\n\xff\xfe,A,0\n")
    with pytest.raises(DataError, match="not a readable UTF-8 CSV"):
        load_train(config.data)


def test_category_column_optional(tmp_path):
    write_csv(tmp_path / "train.csv", ["text", "label"], [["a", "3"]])
    config = small_config(tmp_path)
    config.data.category_column = None
    assert load_train(config.data).label_names == ["0", "1", "2", "3"]


@pytest.mark.parametrize(
    ("rows", "message"),
    [
        ([["1", "a"], ["1", "b"]], r"column 'Id' has duplicate Ids in rows 1, 2 \(e.g. '1'\)"),
        ([["1", "a"], ["", "b"]], "column 'Id' is null or empty in row 2"),
        ([["1", "a"], ["2", ""]], "column 'text' is null or empty in row 2"),
    ],
)
def test_bad_test_rows(tmp_path, rows, message):
    config = small_config(tmp_path)
    write_csv(tmp_path / "test_public.csv", ["Id", "text"], rows)
    with pytest.raises(DataError, match=message):
        load_test(config.data, config.data.test_sets[0])


def test_ids_must_be_unique_across_test_sets(small_competition, tmp_path):
    write_csv(tmp_path / "test_private.csv", ["Id", "text"], [["3", "a"]])
    with pytest.raises(DataError, match="Id '3' \\(row 1\\) is also in"):
        load_tests(small_competition)


def test_test_ids_kept_as_written(small_competition, tmp_path):
    write_csv(tmp_path / "test_public.csv", ["Id", "text"], [["007", "a"], ["x-1", "b"]])
    test = load_tests(small_competition)[0]
    assert test.ids == ["007", "x-1"] and test.name == "public"
