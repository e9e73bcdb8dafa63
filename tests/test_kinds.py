"""The contract every model kind keeps with the fold frame, `comp predict` and `comp ensemble`,
checked the same way for each registered kind and for a kind written only for this test."""

from pathlib import Path

import numpy as np
import polars as pl
import pytest
from rich.console import Console

from comp.config import Section
from comp.config import TestSet as NamedTestSet
from comp.data import load_tests, load_train
from comp.ensemble import run_ensemble
from comp.errors import CompError
from comp.folds import load_fold_assignment
from comp.io import read_json
from comp.kinds import KINDS, check_kind, get_kind, load_config
from comp.layout import CONFIG, METRICS, OOF, TEST_LOGITS, fold_dir
from comp.metrics import macro_f1
from comp.runs.frame import train_folds
from comp.runs.predict import predict_folds
from tests.conftest import TRAINED, copy_workspace, demo_config, trained_copy_config

QUIET = Console(quiet=True)
TEST_KIND = "prior"  # tests/prior_kind.py
METRIC_KEYS = {
    "fold",
    "val_macro_f1",
    "val_rows",
    "folds_sha256",
    "train_sha256",
    "fingerprint",
    "per_class_f1",
    "best_step",
    "history",
    "wall_s",
    "samples_per_s",
    "tokens_per_s",
    "model_kind",
}


@pytest.fixture(params=[*sorted(KINDS), TEST_KIND])
def finished(request, trained_root, tmp_path, monkeypatch):
    """(config, results of the train_folds call) of both folds of one kind, in a private
    workspace. The transformer's folds come from the shared trained run (they are skipped);
    every other kind trains here."""
    kind = request.param
    monkeypatch.setitem(KINDS, TEST_KIND, "tests.prior_kind")
    root = tmp_path / "workspace"
    if kind == "transformer":
        copy_workspace(trained_root, root, (TRAINED["train.experiment"],))
        config = trained_copy_config(trained_root, root)
    elif kind == "knn":  # retrieval with the shared trained run's folds
        copy_workspace(trained_root, root, (TRAINED["train.experiment"],))
        base = TRAINED["train.experiment"]
        settings = {"model.kind": "knn", "knn.base_experiment": base, "train.experiment": "nn"}
        config = trained_copy_config(trained_root, root, **settings)
    else:
        copy_workspace(trained_root, root)
        config = demo_config(root, **{"model.kind": kind, "train.experiment": f"contract_{kind}"})
    return config, train_folds(config, [0, 1], "cpu", False, QUIET)


def test_every_kind_keeps_the_protocol_and_an_unknown_one_is_a_config_error(monkeypatch):
    monkeypatch.setitem(KINDS, TEST_KIND, "tests.prior_kind")
    for name in KINDS:
        kind = get_kind(name)
        assert isinstance(kind.FOLD_FILES, tuple) and set(kind.SCRATCH_FILES) <= set(
            kind.FOLD_FILES
        )
        functions = ("shaping_config", "start", "predict", "derived_configs")
        assert all(callable(getattr(kind, f)) for f in functions), name
        assert isinstance(kind.USES_BACKBONE, bool) and isinstance(kind.ENCODER_FOLDS, bool)
        assert kind.SECTION is None or isinstance(kind.SECTION, Section), name
    with pytest.raises(CompError, match="model.kind 'svm': unknown"):
        check_kind("svm")


def test_folds_write_the_shared_outputs(finished):
    config, results = finished
    kind = get_kind(config.model.kind)
    assert [r.fold for r in results] == [0, 1]
    assert [r.skipped for r in results] == [config.model.kind == "transformer"] * 2
    train, tests = load_train(config.data), load_tests(config)
    folds = load_fold_assignment(config).fold
    for fold in (0, 1):
        out = fold_dir(config, fold)
        metrics = read_json(out / METRICS, "comp train")
        assert set(metrics) >= METRIC_KEYS and metrics["model_kind"] == config.model.kind
        assert metrics["fold"] == fold and len(metrics["per_class_f1"]) == config.data.num_labels
        assert load_config([out / CONFIG]).model.kind == config.model.kind
        oof = pl.read_parquet(out / OOF)
        assert oof["row"].to_list() == np.flatnonzero(folds == fold).tolist()
        assert oof["label"].to_list() == train.labels[folds == fold].tolist()
        logits = np.stack(oof["logits"].to_numpy())
        assert logits.shape == (oof.height, config.data.num_labels) and np.isfinite(logits).all()
        score = macro_f1(oof["label"].to_numpy(), logits.argmax(1), config.data.num_labels)
        assert score == pytest.approx(metrics["val_macro_f1"])
        test_frame = pl.read_parquet(out / TEST_LOGITS)
        assert test_frame["Id"].to_list() == [i for t in tests for i in t.ids]
        assert np.isfinite(np.stack(test_frame["logits"].to_numpy())).all()
        kept = set(kind.FOLD_FILES) - set(kind.SCRATCH_FILES)
        assert all((out / name).exists() for name in kept), kept
        assert not any((out / name).exists() for name in kind.SCRATCH_FILES)
    assert all(r.skipped for r in train_folds(config, [0, 1], "cpu", False, QUIET))


def test_predict_reproduces_the_folds_test_logits(finished):
    config, _ = finished
    config.data.test_sets.append(NamedTestSet("public_copy", config.data.test_sets[0].path))
    assert predict_folds(config, [], "cpu", False, QUIET) == {
        0: ["public_copy"],
        1: ["public_copy"],
    }
    for fold in (0, 1):
        frame = pl.read_parquet(fold_dir(config, fold) / TEST_LOGITS)
        original = frame.filter(pl.col("set") == "public")
        copy = frame.filter(pl.col("set") == "public_copy")
        assert copy["Id"].to_list() == original["Id"].to_list()
        np.testing.assert_allclose(
            np.stack(copy["logits"].to_numpy()),
            np.stack(original["logits"].to_numpy()),
            rtol=1e-5,
            atol=1e-5,
        )
        sets = frame["set"].unique(maintain_order=True).to_list()
        assert sets == ["public", "private", "public_copy"]
    assert predict_folds(config, [], "cpu", False, QUIET) == {0: [], 1: []}
    with pytest.raises(CompError, match="not in data.test_sets"):
        predict_folds(config, ["nope"], "cpu", False, QUIET)


def test_ensemble_reads_every_kind(finished):
    config, _ = finished
    config.ensemble.name = f"contract_{config.model.kind}"
    result = run_ensemble(config, [config.train.experiment])
    validated = int((load_fold_assignment(config).fold >= 0).sum())
    assert result.metrics["oof_rows"] == validated
    test = pl.read_parquet(result.out_dir / TEST_LOGITS)
    assert test.height == sum(len(t) for t in load_tests(config))
    assert np.isfinite(np.stack(test["logits"].to_numpy())).all()


def test_kinds_mix_in_one_ensemble(trained_root, trained_copy):
    transformer = trained_copy_config(trained_root, trained_copy)
    tfidf = demo_config(trained_copy, **{"model.kind": "tfidf", "train.experiment": "mix_tfidf"})
    train_folds(tfidf, [0, 1], "cpu", False, QUIET)
    transformer.ensemble.name = "mixed"
    result = run_ensemble(transformer, [transformer.train.experiment, "mix_tfidf"])
    assert result.metrics["experiments"] == ["two_folds", "mix_tfidf"]
    assert len(result.metrics["temperatures"]) == 2 and Path(result.out_dir).is_dir()
