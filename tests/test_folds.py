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
