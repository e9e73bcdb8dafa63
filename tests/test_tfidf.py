"""model.kind: tfidf, trained in the fold frame by `train_folds` and reloaded for prediction."""

import json
import os
import pickle
from pathlib import Path

import numpy as np
import polars as pl
import pytest
from rich.console import Console

from comp.config import TestSet as NamedTestSet
from comp.config import TfidfConfig
from comp.data import load_tests, load_train
from comp.errors import CompError
from comp.predict import predict_folds
from comp.tfidf import (
    ABSENT_SCORE,
    MODEL_FILE,
    fit_tfidf,
    load_model,
    predict_tfidf,
    tfidf_logits,
)
from comp.train import fold_dir, train_folds
from tests.conftest import demo_config

QUIET = Console(quiet=True)
TFIDF = {"model.kind": "tfidf", "train.experiment": "tfidf_t"}
METRIC_KEYS = {
    "fold",
    "val_macro_f1",
    "val_rows",
    "folds_sha256",
    "train_sha256",
    "per_class_f1",
    "best_step",
    "history",
    "wall_s",
    "samples_per_s",
    "tokens_per_s",
    "peak_memory_mb",
    "device",
    "model_kind",
}


@pytest.fixture(scope="module")
def tfidf_root(demo_root: Path) -> Path:
    """demo_root with both folds of experiment `tfidf_t` trained through `train_folds`."""
    results = train_folds(demo_config(demo_root, **TFIDF), [0, 1], "cpu", False, QUIET)
    assert [r.skipped for r in results] == [False, False]
    return demo_root


def test_folds_write_every_file_and_learn(tfidf_root):
    config = demo_config(tfidf_root, **TFIDF)
    train = load_train(config.data)
    tests = load_tests(config)
    folds = pl.read_csv(tfidf_root / "folds" / "demo.csv")["fold"].to_numpy()
    chance = 1 / config.data.num_labels
    for fold in (0, 1):
        out = fold_dir(config, fold)
        metrics = json.loads((out / "metrics.json").read_text())
        assert set(metrics) >= METRIC_KEYS
        assert metrics["model_kind"] == "tfidf" and metrics["device"] == "cpu"
        assert metrics["best_step"] == 0 and metrics["history"] == []
        assert metrics["val_macro_f1"] > 10 * chance
        assert metrics["samples_per_s"] > 0 and metrics["peak_memory_mb"] > 0
        assert len(metrics["per_class_f1"]) == config.data.num_labels
        assert (out / "config.yaml").is_file() and (out / MODEL_FILE).is_file()
        oof = pl.read_parquet(out / "oof.parquet")
        assert oof["row"].to_list() == np.flatnonzero(folds == fold).tolist()
        assert oof["label"].to_list() == train.labels[folds == fold].tolist()
        assert oof["logits"].dtype.shape == (config.data.num_labels,)
        test_frame = pl.read_parquet(out / "test_logits.parquet")
        assert test_frame["Id"].to_list() == [i for t in tests for i in t.ids]
        assert test_frame["set"].unique(maintain_order=True).to_list() == ["public", "private"]
        assert np.isfinite(np.stack(test_frame["logits"].to_numpy())).all()


def test_finished_fold_is_skipped(tfidf_root):
    config = demo_config(tfidf_root, **TFIDF)
    metrics = fold_dir(config, 0) / "metrics.json"
    before, an_hour_ago = metrics.read_bytes(), metrics.stat().st_mtime - 3600
    os.utime(metrics, (an_hour_ago, an_hour_ago))
    results = train_folds(config, [0], "cpu", False, QUIET)
    assert results[0].skipped and metrics.read_bytes() == before
    assert metrics.stat().st_mtime > an_hour_ago + 1800  # touched: checked against the config


def test_predict_reproduces_the_folds_test_logits(tfidf_root):
    config = demo_config(tfidf_root, **TFIDF)
    public = load_tests(config)[0]
    for fold in (0, 1):
        frame = pl.read_parquet(fold_dir(config, fold) / "test_logits.parquet")
        saved = np.stack(frame.filter(pl.col("set") == "public")["logits"].to_numpy())
        again = predict_tfidf(fold_dir(config, fold), public.questions, public.answers)
        np.testing.assert_array_equal(again, saved)


def test_predict_folds_uses_the_tfidf_model(tfidf_root):
    config = demo_config(tfidf_root, **TFIDF)
    config.data.test_sets.append(NamedTestSet("public_copy", config.data.test_sets[0].path))
    assert predict_folds(config, [], "cpu", False, QUIET) == {
        0: ["public_copy"],
        1: ["public_copy"],
    }
    for fold in (0, 1):
        path = fold_dir(config, fold) / "test_logits.parquet"
        frame = pl.read_parquet(path)
        original = frame.filter(pl.col("set") == "public")["logits"].to_numpy()
        copy = frame.filter(pl.col("set") == "public_copy")["logits"].to_numpy()
        np.testing.assert_array_equal(np.stack(copy), np.stack(original))
        frame.filter(pl.col("set") != "public_copy").write_parquet(path)  # as the others expect


def test_svm_classifier(demo_root):
    settings = {**TFIDF, "train.experiment": "tfidf_svm", "tfidf.classifier": "svm"}
    config = demo_config(demo_root, **settings)
    (result,) = train_folds(config, [0], "cpu", False, QUIET)
    metrics = json.loads((fold_dir(config, 0) / "metrics.json").read_text())
    assert metrics["classifier"] == "svm" and metrics["logit_scale"] > 0
    assert result.macro_f1 == metrics["val_macro_f1"] > 10 / config.data.num_labels


def toy_rows(labels: list[int]) -> tuple[list[str], list[str]]:
    words = ["tooth gum", "child fever", "sleep mood", "skin rash", "heart beat"]
    questions = [f"{words[y]} question {i}" for i, y in enumerate(labels)]
    answers = [f"answer about {words[y]}" for y in labels]
    return questions, answers


@pytest.mark.parametrize("classifier", ["logreg", "svm"])
def test_class_absent_from_training_rows_keeps_every_column(classifier):
    labels = np.array([0, 1, 2, 0, 1, 2, 0, 1, 2, 4, 4, 4])  # class 3 has no rows
    questions, answers = toy_rows(labels.tolist())
    cfg = TfidfConfig(classifier=classifier, min_df=1, c=1.0)
    model = fit_tfidf(cfg, questions, answers, labels, num_labels=5)
    logits = tfidf_logits(model, *toy_rows([0, 1, 2, 3, 4]))
    assert logits.shape == (5, 5) and logits.dtype == np.float32
    assert (logits[:, 3] == ABSENT_SCORE).all()
    assert logits[[0, 1, 2, 4], [0, 1, 2, 4]].tolist() == logits[[0, 1, 2, 4]].max(1).tolist()


def test_one_class_is_an_error():
    questions, answers = toy_rows([0, 0, 0])
    with pytest.raises(CompError, match="fewer than two classes"):
        fit_tfidf(TfidfConfig(min_df=1), questions, answers, np.zeros(3, dtype=np.int64), 4)


def test_model_file_of_another_format_is_refused(tmp_path):
    path = tmp_path / MODEL_FILE
    path.write_bytes(pickle.dumps({"format": 0}))
    with pytest.raises(CompError, match="retrain"):
        load_model(path)
    with pytest.raises(CompError, match="not found"):
        load_model(tmp_path / "missing.pkl")
