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
    with pytest.raises(DataError, match=r"not UTF-8 \(byte 0xff on line 2\)"):
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


@pytest.mark.parametrize(("codec", "name"), [("cp1256", "WINDOWS-1256"), ("utf-16", "UTF-16")])
def test_a_file_in_another_encoding_is_named_with_its_conversion(tmp_path, codec, name):
    import csv
    import io
    import shutil
    import subprocess

    buffer = io.StringIO()
    csv.writer(buffer).writerows(
        [["text", "category", "label"], [qa("أعاني من ألم في الأسنان", "اذهب إلى الطبيب"), "A", 0],
         [qa("سؤال ثان عن الأطفال", "جواب"), "B", 1]]
    )  # fmt: skip
    path = tmp_path / "train.csv"
    path.write_bytes(buffer.getvalue().encode(codec))
    config = small_config(tmp_path, num_labels=2)
    with pytest.raises(DataError) as error:
        load_train(config.data)
    message = str(error.value)
    command = f"iconv -f {name} -t UTF-8 {path} > {tmp_path / 'train.utf8.csv'}"
    assert f"it reads as Arabic text in {name}: convert it with `{command}`" in message
    if shutil.which("iconv"):  # the command given works
        subprocess.run(command, shell=True, check=True)
        config.data.train = str(tmp_path / "train.utf8.csv")
        assert load_train(config.data).questions[0] == "أعاني من ألم في الأسنان"


def test_a_file_that_is_no_arabic_encoding_says_so(tmp_path):
    path = tmp_path / "train.csv"
    path.write_bytes(b"text,category,label\n\xff\xfe\x00garbage\x81\x8d,A,0\n")
    with pytest.raises(DataError, match="not UTF-8 .*, and not Arabic text in"):
        load_train(small_config(tmp_path, num_labels=2).data)
