"""model.kind: probe: a logistic regression on a frozen encoder's vectors (the contract test in
tests/test_kinds.py runs it through fold, predict and ensemble like every kind)."""

from pathlib import Path

import numpy as np
import polars as pl
import pytest
from rich.console import Console

from comp.data import load_tests
from comp.errors import CompError
from comp.kinds.probe import (
    ABSENT_SCORE,
    MODEL_FILE,
    Encoder,
    ProbeConfig,
    fit_probe,
    load_probe,
    predict,
    probe_logits,
    save_probe,
)
from comp.layout import METRICS, OOF, TEST_LOGITS, fold_dir
from comp.neural.files import backbone_sha256
from comp.runs.frame import fold_fingerprint
from tests.conftest import demo_config, run_comp, write_config_file

QUIET = Console(quiet=True)
PROBE = {"model.kind": "probe", "train.experiment": "probe_t"}


def separable(rows_per_class: int = 20, classes=(0, 1, 3)) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(0)
    centres = {c: rng.normal(0, 5, 8) for c in classes}
    y = np.repeat(classes, rows_per_class)
    return np.stack([centres[c] + rng.normal(0, 0.5, 8) for c in y]).astype(np.float32), y


def test_the_probe_learns_and_an_absent_class_never_wins(tmp_path):
    x, y = separable()
    probe = fit_probe(x, y, ProbeConfig())
    logits = probe_logits(probe, x, num_labels=5)
    assert logits.shape == (len(x), 5) and (logits.argmax(1) == y).mean() == 1.0
    assert (logits[:, [2, 4]] == ABSENT_SCORE).all()
    save_probe(probe, tmp_path / MODEL_FILE, "")  # a hub id: no content hash
    reloaded = load_probe(tmp_path / MODEL_FILE, "UBC-NLP/ARBERTv2", "")
    assert np.array_equal(probe_logits(reloaded, x, 5), logits)


def test_a_fold_fitted_on_another_backbone_folder_is_refused(demo_root, tmp_path):
    backbone = tmp_path / "backbone"
    backbone.mkdir()
    (backbone / "config.json").write_text("{}")
    x, y = separable()
    path = tmp_path / "fold0" / MODEL_FILE
    save_probe(fit_probe(x, y, ProbeConfig()), path, backbone_sha256(str(backbone)))
    load_probe(path, str(backbone), backbone_sha256(str(backbone)))
    (backbone / "config.json").write_text('{"changed": true}')
    with pytest.raises(CompError, match="another version of the backbone folder"):
        load_probe(path, str(backbone), backbone_sha256(str(backbone)))


def test_vectors_are_embedded_once_and_reused(demo_root, tmp_path):
    config = demo_config(demo_root, **PROBE)
    encoder = Encoder(config, "cpu", tmp_path / "cache")
    questions, answers = ["سؤال عن الأسنان", "سؤال آخر"], ["جواب", "جواب طويل"]
    first = encoder.embed(questions, answers, QUIET)
    assert first.shape == (2, 64) and len(list((tmp_path / "cache").glob("probe-*.npy"))) == 1
    again = Encoder(config, "cpu", tmp_path / "cache")
    assert np.array_equal(again.embed(questions, answers, QUIET), first)
    assert again._encoder is None  # cached rows need no model


def test_probe_folds_train_predict_and_mix_from_the_command_line(trained_root, tmp_path):
    config = demo_config(trained_root, **PROBE)
    path = write_config_file(tmp_path / "c.yaml", config)
    result = run_comp("train", "--config", path, "--fold", "all")
    assert result.exit_code == 0, result.output
    assert "best step" not in result.output  # the probe trains no steps
    assert all((fold_dir(config, k) / METRICS).is_file() for k in (0, 1))
    oof = pl.read_parquet(fold_dir(config, 0) / OOF)
    tests = load_tests(config)
    predicted = predict(fold_dir(config, 0), config, tests, "cpu", tmp_path / "cache")
    saved = pl.read_parquet(fold_dir(config, 0) / TEST_LOGITS)
    assert len(predicted) == len(tests) >= 2 and len(oof) > 0
    for test, logits in zip(tests, predicted, strict=True):  # what training wrote for each set
        rows = np.stack(saved.filter(pl.col("set") == test.name)["logits"].to_numpy())
        assert logits.shape == (len(test), config.data.num_labels)
        assert np.allclose(logits, rows, atol=1e-4)
    mixed = run_comp("ensemble", "--config", path, "two_folds", "probe_t", "--name", "mix")
    assert mixed.exit_code == 0, mixed.output
    assert (Path(config.train.runs_dir) / "ensembles" / "mix" / METRICS).is_file()


def test_the_probe_fingerprint_follows_the_encoder_not_the_recipe(demo_root):
    base = fold_fingerprint(demo_config(demo_root, **PROBE))
    for key, value in [("probe.c", 2.0), ("model.pooling", "cls"), ("model.max_len", 64)]:
        assert fold_fingerprint(demo_config(demo_root, **PROBE, **{key: value})) != base, key
    for key, value in [("train.lr", 1.0), ("model.dropout", 0.3), ("tfidf.c", 3.0)]:
        assert fold_fingerprint(demo_config(demo_root, **PROBE, **{key: value})) == base, key
