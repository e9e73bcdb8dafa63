"""kNN fusion (model.kind knn): the scores, the honesty of the index, and the derived
experiment `comp train --set knn.enabled=true` writes."""

import json

import numpy as np
import polars as pl
import pytest
import yaml
from rich.console import Console

from comp.events import Events
from comp.kinds import knn
from comp.runs.frame import fold_dir, fold_fingerprint, load_run_inputs
from tests.conftest import TRAINED, run_comp, trained_copy_config, write_config_file

QUIET = Console(quiet=True)


def unit(rows) -> np.ndarray:
    rows = np.asarray(rows, dtype=np.float32)
    return rows / np.linalg.norm(rows, axis=1, keepdims=True)


def test_scores_are_the_softmax_weights_of_the_neighbours_classes():
    index = unit([[1, 0], [0.8, 0.6], [0, 1], [-1, 0]])
    labels = np.array([0, 1, 1, 2])
    query = unit([[1, 0.1]])
    logits, neighbours = knn.knn_log_scores(index, labels, query, 4, k=3, temperature=0.5)
    sims = index @ query[0]
    top = np.argsort(-sims)[:3]  # rows 0, 1, 2: the row of class 2 is the farthest
    assert sorted(neighbours[0].tolist()) == sorted(top.tolist())
    weights = np.exp(sims[top] / 0.5) / np.exp(sims[top] / 0.5).sum()
    scores = np.zeros(4)
    np.add.at(scores, labels[top], weights)
    np.testing.assert_allclose(logits[0], np.log(np.maximum(scores, knn.FLOOR)), rtol=1e-5)
    assert logits[0].argmax() == 0 and logits[0, 2] == logits[0, 3] == np.float32(np.log(knn.FLOOR))


def test_no_row_retrieves_itself_or_a_row_of_its_own_validation_fold(
    trained_root, trained_copy, monkeypatch
):
    config = trained_copy_config(
        trained_root, trained_copy, **{"model.kind": "knn", "knn.base_experiment": "two_folds"}
    )
    config.train.experiment = "honest"
    inputs = load_run_inputs(config, fold_fingerprint(config))
    seen = []
    real = knn.knn_log_scores

    def recording(index, labels, queries, *args, **kwargs):
        logits, neighbours = real(index, labels, queries, *args, **kwargs)
        seen.append((len(index), neighbours))
        return logits, neighbours

    monkeypatch.setattr(knn, "knn_log_scores", recording)
    run = knn.start(inputs, "cpu", None)
    for fold in (0, 1):
        out = fold_dir(config, fold)
        out.mkdir(parents=True, exist_ok=True)
        seen.clear()
        run.fit_fold(fold, out, Events())
        index_rows, val_rows = inputs.train_rows(fold), inputs.val_rows(fold)
        assert seen[0][0] == len(index_rows)  # the index: the fold's training rows alone
        retrieved = index_rows[seen[0][1]]  # the validation queries' neighbours, as train rows
        assert not np.isin(retrieved, val_rows).any()
        assert len(np.intersect1d(index_rows, val_rows)) == 0


def test_knn_enabled_writes_the_derived_experiment(trained_root, trained_copy, tmp_path):
    config = trained_copy_config(trained_root, trained_copy, **{"knn.enabled": True})
    path = write_config_file(tmp_path / "config.yaml", config)
    result = run_comp("train", "--config", path)
    assert result.exit_code == 0, result.output
    assert result.output.count("skipped, --force to retrain") == 2  # the transformer's folds
    assert "two_folds_knn (knn), from these folds" in result.output
    for fold in (0, 1):
        out = trained_copy / "runs" / "two_folds_knn" / f"fold{fold}"
        for name in ("oof.parquet", "test_logits.parquet", "metrics.json", knn.INDEX):
            assert (out / name).is_file(), name
        metrics = json.loads((out / "metrics.json").read_text())
        assert metrics["model_kind"] == "knn" and metrics["base_experiment"] == "two_folds"


def test_the_knn_fingerprint_follows_its_keys_and_its_trained_base(trained_root, trained_copy):
    from comp.layout import CONFIG

    settings = {"model.kind": "knn", "knn.base_experiment": "two_folds"}
    config = trained_copy_config(trained_root, trained_copy, **settings)
    base = fold_fingerprint(config)
    other_pooling = "cls" if config.model.pooling == "mean" else "mean"  # not what head reads
    for key, value in [("knn.k", 5), ("knn.pooling", other_pooling)]:
        changed = trained_copy_config(trained_root, trained_copy, **settings, **{key: value})
        assert fold_fingerprint(changed) != base, key
    # the base's keys are read from its folds, as they were trained: this config's are not
    for key, value in [("tfidf.c", 9.0), ("train.lr", 1.0)]:
        same = trained_copy_config(trained_root, trained_copy, **settings, **{key: value})
        assert fold_fingerprint(same) == base, key
    saved = trained_copy / "runs" / "two_folds" / "fold0" / CONFIG
    retrained = yaml.safe_load(saved.read_text(encoding="utf-8"))
    retrained["train"]["lr"] = 1.0e-9  # as if fold 0 were retrained at another lr
    saved.write_text(yaml.safe_dump(retrained), encoding="utf-8")
    assert fold_fingerprint(config) != base
    assert TRAINED["train.experiment"] == "two_folds"


def test_predict_adds_a_late_test_set_to_the_derived_experiment_too(
    trained_root, trained_copy, tmp_path
):
    from comp.config import TestSet as NamedTestSet
    from comp.runs.frame import train_folds
    from comp.runs.predict import predict_folds

    config = trained_copy_config(trained_root, trained_copy, **{"knn.enabled": True})
    train_folds(config, [0, 1], "cpu", False, QUIET)
    config.data.test_sets.append(NamedTestSet("late", config.data.test_sets[0].path))
    predict_folds(config, [], "cpu", False, QUIET)
    for experiment in ("two_folds", "two_folds_knn"):
        frame = pl.read_parquet(
            trained_copy / "runs" / experiment / "fold1" / "test_logits.parquet"
        )
        late = np.stack(frame.filter(pl.col("set") == "late")["logits"].to_numpy())
        public = np.stack(frame.filter(pl.col("set") == "public")["logits"].to_numpy())
        np.testing.assert_allclose(late, public, rtol=1e-5, atol=1e-5)


def test_knn_pooling_head_reads_what_the_base_folds_head_reads(trained_root, trained_copy):
    folder = trained_copy / "runs" / "two_folds" / "fold0"
    saved = (folder / "config.yaml").read_text(encoding="utf-8")
    trained_with = "mean" if "pooling: mean" in saved else "cls"
    other = {"mean": "cls", "cls": "mean"}[trained_with]
    (folder / "config.yaml").write_text(
        saved.replace(f"pooling: {trained_with}", f"pooling: {other}"), "utf-8"
    )
    val = {}
    for pooling in ("head", other, trained_with):
        settings = {"model.kind": "knn", "knn.base_experiment": "two_folds", "knn.pooling": pooling}
        config = trained_copy_config(trained_root, trained_copy, **settings)
        config.train.experiment = f"pooled_{pooling}"
        run = knn.start(load_run_inputs(config, fold_fingerprint(config)), "cpu", None)
        out = fold_dir(config, 0)
        out.mkdir(parents=True, exist_ok=True)
        fit = run.fit_fold(0, out, Events())
        val[pooling] = fit.val_logits
        assert fit.extra["pooling"] == (other if pooling == "head" else pooling)
    np.testing.assert_array_equal(val["head"], val[other])
    assert not np.array_equal(val["head"], val[trained_with])


def test_a_truncated_index_names_itself_and_the_command_that_rebuilds_that_fold(tmp_path):
    from comp.io import UnreadableFile

    path = tmp_path / "fold1" / "knn_index.npz"
    path.parent.mkdir()
    knn.save_index(path, unit(np.eye(3)), np.arange(3))
    path.write_bytes(path.read_bytes()[:100])
    with pytest.raises(UnreadableFile) as caught:
        knn.load_index(path)
    assert str(caught.value).startswith(f"{path}: unreadable (")
    assert str(caught.value).endswith(
        f"`comp train --fold 1 --force --config {path.parent}/config.yaml`"
    )
