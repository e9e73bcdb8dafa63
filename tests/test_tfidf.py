"""model.kind: tfidf: what it learns, its classifiers, and its model file."""

import json
import pickle
from pathlib import Path

import numpy as np
import polars as pl
import pytest
from rich.console import Console

from comp.data import load_tests
from comp.errors import CompError
from comp.kinds.tfidf import MODEL_FILE, OLD_MODEL_FILE, TfidfConfig, predict
from comp.kinds.tfidf.model import (
    ABSENT_SCORE,
    fit_tfidf,
    load_model,
    save_model,
    tfidf_logits,
)
from comp.layout import fold_dir
from comp.runs.frame import train_folds
from tests.conftest import Payload, demo_config

QUIET = Console(quiet=True)
TFIDF = {"model.kind": "tfidf", "train.experiment": "tfidf_t"}


@pytest.fixture(scope="module")
def tfidf_root(demo_root: Path) -> Path:
    """demo_root with both folds of experiment `tfidf_t` trained through `train_folds`."""
    results = train_folds(demo_config(demo_root, **TFIDF), [0, 1], "cpu", False, QUIET)
    assert [r.skipped for r in results] == [False, False]
    return demo_root


def test_folds_learn_and_record_the_classifier(tfidf_root):
    """The shared outputs are the contract test's (tests/test_kinds.py); here, what TF-IDF adds."""
    config = demo_config(tfidf_root, **TFIDF)
    chance = 1 / config.data.num_labels
    for fold in (0, 1):
        metrics = json.loads((fold_dir(config, fold) / "metrics.json").read_text())
        assert metrics["val_macro_f1"] > 10 * chance
        assert metrics["device"] == "cpu" and metrics["classifier"] == "logreg"
        assert metrics["num_features"] > 0 and metrics["logit_scale"] == 1.0
        assert metrics["best_step"] is None and metrics["history"] == {}


def test_predict_reproduces_the_folds_test_logits_exactly(tfidf_root):
    config = demo_config(tfidf_root, **TFIDF)
    public = load_tests(config)[0]
    for fold in (0, 1):
        frame = pl.read_parquet(fold_dir(config, fold) / "test_logits.parquet")
        saved = np.stack(frame.filter(pl.col("set") == "public")["logits"].to_numpy())
        (again,) = predict(fold_dir(config, fold), config, [public], "cpu", tfidf_root)
        np.testing.assert_array_equal(again, saved)


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


def test_saved_model_reloads_to_the_same_logits_without_pickle(tmp_path):
    labels = np.array([0, 1, 2, 0, 1, 2, 0, 1, 2])
    questions, answers = toy_rows(labels.tolist())
    cfg = TfidfConfig(min_df=1, char_ngram_min=2, char_ngram_max=3)
    model = fit_tfidf(cfg, questions, answers, labels, num_labels=3)
    save_model(model, tmp_path / MODEL_FILE)
    with np.load(tmp_path / MODEL_FILE, allow_pickle=False) as saved:  # plain arrays only
        assert all(saved[name].dtype != object for name in saved.files)
    reloaded = load_model(tmp_path / MODEL_FILE, cfg)
    queries = toy_rows([2, 1, 0])
    assert np.array_equal(tfidf_logits(reloaded, *queries), tfidf_logits(model, *queries))


def test_model_file_of_another_format_is_refused(tmp_path):
    path = tmp_path / MODEL_FILE
    np.savez(path, format=np.asarray(1))
    with pytest.raises(CompError, match=r"not a tfidf model of format 2\); run `comp train"):
        load_model(path, TfidfConfig())
    with pytest.raises(CompError, match="not found"):
        load_model(tmp_path / "missing" / MODEL_FILE, TfidfConfig())


def test_a_truncated_model_file_names_itself_and_the_fix(tmp_path):
    path = tmp_path / "fold3" / MODEL_FILE
    path.parent.mkdir()
    labels = np.array([0, 1, 0, 1])
    model = fit_tfidf(TfidfConfig(min_df=1), *toy_rows(labels.tolist()), labels, num_labels=2)
    save_model(model, path)
    path.write_bytes(path.read_bytes()[:100])
    retrain = r"`comp train --fold 3 --force --config .*fold3/config.yaml`"
    with pytest.raises(CompError, match=r"unreadable \(.*run " + retrain):
        load_model(path, TfidfConfig(min_df=1))


def test_an_old_pickled_model_is_refused_unopened(tmp_path):
    fold = tmp_path / "fold2"
    fold.mkdir()
    (fold / OLD_MODEL_FILE).write_bytes(pickle.dumps(Payload(tmp_path / "ran")))
    retrain = r"`comp train --fold 2 --force --config .*fold2/config.yaml`"
    with pytest.raises(CompError, match=r"older comp.*" + retrain):
        load_model(fold / MODEL_FILE, TfidfConfig())
    assert not (tmp_path / "ran").exists()
