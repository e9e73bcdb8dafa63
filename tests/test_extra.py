"""Extra training data (data.extra_train): loaded like the train file, in every training split,
never validated, and never a row that repeats a validation row of the fold or a test row."""

import json

import numpy as np
import pytest
from rich.console import Console

from comp.config import Config, ConfigError, DataConfig, ExtraTrain
from comp.data import DataError, load_tests, load_train
from comp.extra import EXTRA_FOLD, add_extra_train, extra_shaping, load_extra_file
from comp.folds import load_folds
from comp.io import sha256_file
from comp.kinds import RunInputs, load_config
from comp.layout import METRICS, fold_dir
from comp.runs.frame import train_folds
from tests.conftest import demo_config, qa, write_csv

QUIET = Console(quiet=True)


def extra_config(demo_root, tmp_path, extra_csv):
    settings = {
        "model.kind": "tfidf",
        "train.experiment": "with_extra",
        "train.runs_dir": tmp_path / "runs",
        "data.extra_train": f"[{{path: {extra_csv}}}]",
    }
    return demo_config(demo_root, **settings)


def lone_row(folds: np.ndarray, fold: int, avoid: set[int]) -> int:
    return next(int(r) for r in np.flatnonzero(folds == fold) if int(r) not in avoid)


def write_extra(demo_root, tmp_path, novel: str = "سؤال جديد لا يشبه شيئا في البيانات ابدا"):
    """Extra rows: a byte copy of a fold-0 validation row, a fold-1 validation row written with
    other punctuation and diacritics, a copy of a test row, and a new question."""
    config = demo_config(demo_root)
    train, tests = load_train(config.data), load_tests(config)
    folds = load_folds(config, train)
    v0 = lone_row(folds, 0, set())
    v1 = lone_row(folds, 1, {v0})
    test = tests[0]
    respelled = train.questions[v1].replace(" ", "، ", 1) + "؟"
    respelled = respelled.replace("ا", "أ", 1) if "ا" in respelled else respelled + "َ"
    rows = [
        [qa(train.questions[v0], train.answers[v0]), int(train.labels[v0])],
        [qa(respelled, train.answers[v1]), int(train.labels[v1])],
        [qa(test.questions[0], test.answers[0]), 3],
        [qa(novel, "وجواب جديد ايضا"), 5],
    ]
    path = write_csv(tmp_path / "extra.csv", ["text", "label"], rows)
    return path, len(train), [label for _, label in rows]


def test_extra_rows_repeating_validation_or_test_rows_are_left_out(demo_root, tmp_path):
    extra_csv, n, labels = write_extra(demo_root, tmp_path)
    config = extra_config(demo_root, tmp_path, extra_csv)
    train, tests = load_train(config.data), load_tests(config)
    folds = load_folds(config, train)
    combined, all_folds, extra = add_extra_train(config, train, folds, tests)
    assert len(combined) == n + 4 and all_folds[n:].tolist() == [EXTRA_FOLD] * 4
    assert combined.labels[n:].tolist() == labels
    # the rows are still identified by the train file (the extra files are in the fingerprint)
    assert combined.sha256 == sha256_file(config.data.train)
    assert extra.test_twin.tolist() == [False, False, True, False]
    assert extra.val_twin[0].tolist() == [True, False, False, False]
    assert extra.val_twin[1].tolist() == [False, True, False, False]
    inputs = RunInputs(config, combined, tests, all_folds, "", "", tmp_path, extra=extra)
    assert set(inputs.train_rows(0)[inputs.train_rows(0) >= n].tolist()) == {n + 1, n + 3}
    assert set(inputs.train_rows(1)[inputs.train_rows(1) >= n].tolist()) == {n, n + 3}
    assert not set(inputs.val_rows(0).tolist()) & set(range(n, n + 4))  # never validated
    assert extra.fold_report(0) == {
        str(extra_csv): {
            "rows": 4,
            "dropped_test_twin": 1,
            "dropped_validation_twin": 1,
            "trained": 2,
        }
    }


def test_training_reports_extra_rows_and_their_files_shape_the_fingerprint(demo_root, tmp_path):
    extra_csv, _, _ = write_extra(demo_root, tmp_path)
    config = extra_config(demo_root, tmp_path, extra_csv)
    console = Console(record=True, width=200)
    train_folds(config, [0], "cpu", False, console)
    printed = console.export_text()
    assert "extra training data" in printed and "test twins" in printed
    assert f"{extra_csv} │    4 │          1 │                        1 │" in printed
    metrics = json.loads((fold_dir(config, 0) / METRICS).read_text(encoding="utf-8"))
    assert metrics["extra_train"][str(extra_csv)]["trained"] == 2
    assert train_folds(config, [0], "cpu", False, QUIET)[0].skipped
    write_extra(demo_root, tmp_path, novel="سؤال اخر جديد كليا عن موضوع مختلف")
    assert not train_folds(config, [0], "cpu", False, QUIET)[0].skipped  # the file changed
    assert extra_shaping(Config()) == {}  # without extra data, fingerprints stay as they were


@pytest.fixture
def named(tmp_path):
    write_csv(
        tmp_path / "train.csv",
        ["text", "category", "label"],
        [[qa("س", "ج"), "Dentistry", 0], [qa("س2", "ج2"), "Pediatrics", 1]],
    )
    return DataConfig(train=str(tmp_path / "train.csv"), num_labels=3)


def test_labels_from_the_label_column_or_mapped_category_names(named, tmp_path):
    names = load_train(named).label_names
    write_csv(tmp_path / "e1.csv", ["text", "label"], [[qa("a", "b"), 2]])
    assert load_extra_file(ExtraTrain(str(tmp_path / "e1.csv")), named, names).labels.tolist() == [
        2
    ]
    write_csv(tmp_path / "e2.csv", ["text", "category"], [[qa("a", "b"), " Pediatrics "]])
    assert load_extra_file(ExtraTrain(str(tmp_path / "e2.csv")), named, names).labels.tolist() == [
        1
    ]
    write_csv(
        tmp_path / "map.csv", ["category", "label"], [["طب الأسنان", 0], ["أمراض الأطفال", 1]]
    )
    write_csv(
        tmp_path / "e3.csv",
        ["text", "category", "label"],
        [[qa("a", "b"), "أمراض الأطفال", "x"], [qa("c", "d"), "طب الأسنان", "y"]],
    )
    spec = ExtraTrain(str(tmp_path / "e3.csv"), category_map=str(tmp_path / "map.csv"))
    assert load_extra_file(spec, named, names).labels.tolist() == [1, 0]  # the map wins


@pytest.mark.parametrize(
    ("header", "rows", "category_map", "message"),
    [
        (
            ["text", "category"],
            [[qa("a", "b"), "Pediatrics"], [qa("c", "d"), "Cardiology"]],
            None,
            r"e\.csv: column 'category': category 'Cardiology' in row 2 is not in the train file",
        ),
        (["text"], [[qa("a", "b")]], None, r"e\.csv: missing column 'label' \(or 'category'"),
        (["text", "label"], [[qa("a", "b"), 7]], None, r"e\.csv: column 'label' is outside 0\.\.2"),
        (["text", "label"], [["", 1]], None, r"e\.csv: column 'text' is null or empty in row 1"),
        (
            ["text", "category"],
            [[qa("a", "b"), "ب"]],
            [["أ", 0], ["أ", 1]],
            r"map\.csv: column 'category' names a category twice in rows 1, 2",
        ),
    ],
)
def test_bad_extra_files_name_the_file_row_and_column(
    named, tmp_path, header, rows, category_map, message
):
    write_csv(tmp_path / "e.csv", header, rows)
    map_path = None
    if category_map is not None:
        map_path = str(write_csv(tmp_path / "map.csv", ["category", "label"], category_map))
    spec = ExtraTrain(str(tmp_path / "e.csv"), category_map=map_path)
    with pytest.raises(DataError, match=message):
        load_extra_file(spec, named, load_train(named).label_names)


def test_extra_train_config_keys_are_checked():
    config = load_config([], ["data.extra_train=[{path: x.csv, category_map: m.csv}]"])
    assert config.data.extra_train == [ExtraTrain("x.csv", "m.csv")]
    with pytest.raises(ConfigError, match=r"unknown config key 'data.extra_train\[0\].file'"):
        load_config([], ["data.extra_train=[{file: x.csv}]"])
