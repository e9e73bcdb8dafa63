import json

import numpy as np
import pytest

from comp.data import load_train
from comp.folds import (
    TRAIN_ONLY,
    FoldsError,
    assign_folds,
    check_folds,
    folds_paths,
    load_folds,
    make_folds,
)
from tests.conftest import qa, write_csv


def labels_with_counts(counts: list[int], seed: int = 0) -> np.ndarray:
    labels = np.repeat(np.arange(len(counts)), counts)
    return np.random.default_rng(seed).permutation(labels)


def assert_invariants(labels: np.ndarray, fold: np.ndarray, k: int) -> None:
    """The issue's invariants, checked here from scratch (not through check_folds)."""
    counts = np.bincount(labels)
    assert set(np.unique(fold)) <= set(range(-1, k))
    for label, n in enumerate(counts):
        rows = labels == label
        val_folds = fold[rows]
        if n == 1:
            assert val_folds.tolist() == [TRAIN_ONLY]  # the documented policy
        else:
            assert TRAIN_ONLY not in val_folds
        for f in range(k):
            in_val = int((val_folds == f).sum())
            assert n - in_val >= 1, f"class {label} missing from training split {f}"
            if n >= k:
                assert in_val >= 1, f"class {label} missing from validation fold {f}"
        if 2 <= n < k:
            assert len(set(val_folds.tolist())) == n  # one row in each of n folds


@pytest.mark.parametrize("k", [2, 5, 10])
def test_edge_class_sizes(k):
    counts = [1, 2, k - 1, k, k + 1, 3 * k, 50, 1, 2]
    labels = labels_with_counts([max(c, 1) for c in counts])
    fold = assign_folds(labels, len(counts), k, seed=42)
    assert_invariants(labels, fold, k)
    report = check_folds(labels, fold, len(counts), k)
    assert report.problems == []
    singletons = [c for c, n in enumerate(counts) if n == 1]
    assert report.train_only_rows == np.flatnonzero(np.isin(labels, singletons)).tolist()
    assert set(report.rare_classes) == {c for c, n in enumerate(counts) if n < k}


def test_absent_class_is_reported_not_fatal():
    labels = labels_with_counts([10, 0, 10])
    fold = assign_folds(labels, 3, 5, seed=1)
    report = check_folds(labels, fold, 3, 5)
    assert report.absent_classes == [1] and report.problems == []


def test_stratification_balances_large_classes():
    labels = labels_with_counts([600] * 3 + [40] * 5 + [7] * 2)
    fold = assign_folds(labels, 10, 5, seed=42)
    report = check_folds(labels, fold, 10, 5)
    assert (report.val_counts[:, :3] == 120).all()  # 600 / 5 exactly
    assert report.val_counts[:, 3:8].min() >= 7 and report.val_counts[:, 3:8].max() <= 9


def test_check_folds_catches_broken_assignments():
    labels = np.array([0, 0, 0, 1, 1, 1])
    fold = np.array([0, 0, 0, 1, 1, 1])  # fold 0's training split has no class 0
    problems = check_folds(labels, fold, 2, 2).problems
    assert any("fold 0: training split lacks classes [0]" in p for p in problems)
    problems = check_folds(labels, np.array([0, 1, -1, 0, 1, 0]), 2, 2).problems
    assert any("in no validation fold" in p for p in problems)


def test_deterministic_and_seed_dependent():
    labels = labels_with_counts([30, 20, 3, 1, 12])
    a = assign_folds(labels, 5, 5, seed=42)
    assert np.array_equal(a, assign_folds(labels, 5, 5, seed=42))
    assert not np.array_equal(a, assign_folds(labels, 5, 5, seed=43))


def test_written_files_are_byte_identical_and_checked(small_competition, tmp_path):
    config = small_competition
    train = load_train(config.data)
    make_folds(config, train)
    csv_path, json_path, config_path = folds_paths(config)
    first = (csv_path.read_bytes(), json_path.read_bytes())
    make_folds(config, train)
    assert (csv_path.read_bytes(), json_path.read_bytes()) == first
    assert config_path.is_file()
    assert csv_path.read_text().splitlines()[0] == "row,label,fold"
    fold = load_folds(config, train)
    assert len(fold) == len(train) and set(fold.tolist()) == {0, 1}
    assert not list(csv_path.parent.glob(".*tmp*"))


def test_folds_from_other_data_are_refused(small_competition, tmp_path):
    config = small_competition
    make_folds(config, load_train(config.data))
    write_csv(
        tmp_path / "train.csv",
        ["text", "category", "label"],
        [[qa("س", "ج"), "A", 0], [qa("س", "ج"), "B", 1]],
    )
    with pytest.raises(FoldsError, match="made from other data.*run `comp make-folds` again"):
        load_folds(config, load_train(config.data))


def test_folds_with_other_settings_are_refused(small_competition):
    config = small_competition
    train = load_train(config.data)
    make_folds(config, train)
    config.folds.seed = 1
    with pytest.raises(FoldsError, match="seed=0 but the config says .*seed=1"):
        load_folds(config, train)
    config.folds.name = "never-made"
    with pytest.raises(FoldsError, match="no folds found"):
        load_folds(config, train)


def grouped_labels() -> tuple[np.ndarray, np.ndarray, int]:
    """Classes of 40, 30, 12, 4, 3 and 1 rows, with duplicate groups: pairs and triples inside
    classes, a group holding classes 0 and 1 (a label conflict), and class 4's three rows in one
    group (so it has a single group, like a single-row class)."""
    labels = np.repeat(np.arange(6), [40, 30, 12, 4, 3, 1])
    groups = np.arange(len(labels))
    for rows in ([0, 1], [2, 3, 4], [40, 41], [5, 42], [70, 71], [82, 83], [86, 87, 88]):
        groups[rows] = groups[rows[0]]
    return labels, np.unique(groups, return_inverse=True)[1], 6


@pytest.mark.parametrize("k", [2, 5])
def test_grouped_assignment_keeps_groups_whole_and_the_policy(k):
    labels, groups, classes = grouped_labels()
    fold = assign_folds(labels, classes, k, seed=3, groups=groups)
    for g in np.unique(groups):
        assert len(set(fold[groups == g].tolist())) == 1, f"group {g} spans folds"
    assert set(np.flatnonzero(fold == TRAIN_ONLY).tolist()) == {86, 87, 88, 89}
    for label in range(classes):
        rows = labels == label
        for f in range(k):
            assert (rows & (fold != f)).any(), f"class {label} missing from training split {f}"
    class_groups = [len(np.unique(groups[labels == c])) for c in range(classes)]
    for label in (c for c in range(classes) if class_groups[c] >= k):
        assert set(fold[labels == label].tolist()) >= set(range(k))
    assert check_folds(labels, fold, classes, k, groups).problems == []


def test_singleton_groups_give_the_ungrouped_assignment():
    labels = labels_with_counts([30, 20, 7, 3, 1, 12])
    grouped = assign_folds(labels, 6, 5, seed=4, groups=np.arange(len(labels)))
    assert np.array_equal(grouped, assign_folds(labels, 6, 5, seed=4))


def test_check_folds_catches_a_group_split_across_folds():
    labels = np.array([0, 0, 0, 0, 1, 1, 1, 1])
    groups = np.array([0, 0, 1, 2, 3, 4, 5, 6])
    fold = np.array([0, 1, 0, 1, 0, 1, 0, 1])
    problems = check_folds(labels, fold, 2, 2, groups).problems
    assert problems == ["rows [0, 1] are in duplicate groups split across folds"]


@pytest.fixture
def planted_competition(tmp_path):
    """A small demo competition with its planted duplicates (exact, normalised and near)."""
    from rich.console import Console

    from comp.demo.writer import write_demo_files
    from comp.kinds import load_config

    config = load_config(
        [],
        [
            f"demo.out_dir={tmp_path}/demo",
            "demo.scale=0.05",
            f"data.train={tmp_path}/demo/shared_task_train.csv",
            "data.test_sets=[]",
            f"folds.dir={tmp_path}/folds",
        ],
    )
    write_demo_files(config, Console(quiet=True))
    return config


def test_make_folds_keeps_identical_texts_in_one_fold(planted_competition):
    from comp.duplicates import normalised_rows

    config = planted_competition
    train = load_train(config.data)
    report = make_folds(config, train)
    fold = load_folds(config, train)
    texts = normalised_rows(train.questions, train.answers).pairs
    folds_of: dict[str, set[int]] = {}
    for text, f in zip(texts, fold.tolist(), strict=True):
        folds_of.setdefault(text, set()).add(f)
    repeated = [t for t in folds_of if texts.count(t) > 1]
    assert len(repeated) > 20 and all(len(folds_of[t]) == 1 for t in repeated)
    assert report.grouping is not None and report.grouping.groups >= len(repeated)
    assert report.grouping.split_without > 0  # an ungrouped split would spread some of them
    meta = json.loads(folds_paths(config)[1].read_text(encoding="utf-8"))
    exact_rows = sum(texts.count(t) for t in repeated)  # counted here, from the texts alone
    assert meta["duplicate_groups"] >= len(repeated)
    assert exact_rows <= meta["rows_in_duplicate_groups"] < len(train)


@pytest.mark.parametrize("change", ["folds.group_duplicates=false", "dedup.threshold=0.9"])
def test_other_grouping_settings_make_the_folds_stale(planted_competition, change):
    from comp.config import parse_override

    config = planted_competition
    train = load_train(config.data)
    make_folds(config, train)
    (section, key), value = parse_override(change)
    setattr(getattr(config, section), key, value)
    with pytest.raises(FoldsError, match="folds were grouped with .* run `comp make-folds` again"):
        load_folds(config, train)
    make_folds(config, train)
    assert len(load_folds(config, train)) == len(train)
