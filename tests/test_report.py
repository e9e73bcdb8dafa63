"""comp report's learning curves: read from the folds' histories, for the kinds that train in
steps only."""

from rich.console import Console

from comp.ensemble import run_ensemble
from comp.folds import label_names
from comp.layout import LEARNING_CURVES
from comp.report import curves, fold_histories, write_report
from comp.runs.frame import train_folds
from tests.conftest import TRAINED, copy_workspace, demo_config, trained_copy_config

QUIET = Console(quiet=True)


def test_curves_read_both_history_formats():
    old = [{"step": 50, "epoch": 0, "loss": 3.0, "val_macro_f1": 0.1}]
    assert curves(old) == ([(50, 3.0)], [(50, 0.1)])
    new = {"loss": [{"step": 10, "loss": 4.0, "lr": 1e-3, "grad_norm": 2.0}],
           "val": [{"step": 20, "epoch": 0, "val_macro_f1": 0.2}]}  # fmt: skip
    assert curves(new) == ([(10, 4.0)], [(20, 0.2)])
    assert curves({}) == ([], [])


def test_learning_curves_leave_out_kinds_without_steps(trained_root, tmp_path):
    root = copy_workspace(trained_root, tmp_path / "w", (TRAINED["train.experiment"],))
    tfidf = demo_config(root, **{"model.kind": "tfidf", "train.experiment": "words"})
    train_folds(tfidf, [0, 1], "cpu", False, QUIET)
    config = trained_copy_config(trained_root, root, **{"ensemble.name": "words_only"})
    run_ensemble(config, ["words"], None)
    paths = write_report(config, label_names(config))
    assert [p.name for p in paths if p.name == LEARNING_CURVES] == []
    histories = fold_histories(config, ["words", TRAINED["train.experiment"]])
    assert list(histories) == [TRAINED["train.experiment"]] and sorted(histories["two_folds"]) == [
        0,
        1,
    ]
    losses, val = histories["two_folds"][0]
    assert [step for step, _ in val] == [50, 100, 150, 200] and len(losses) == 20
