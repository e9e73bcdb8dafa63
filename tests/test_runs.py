"""The fold frame (comp.runs.frame): which folds are finished, what retrains them, per kind."""

import os
from pathlib import Path

import pytest
from rich.console import Console

from comp.data import load_train
from comp.errors import CompError
from comp.folds import folds_paths, make_folds
from comp.io import sha256_file
from comp.layout import CONFIG, METRICS, OOF, TEST_LOGITS, fold_dir
from comp.runs.frame import (
    clear_fold,
    finished_metrics,
    fold_fingerprint,
    parse_folds,
    train_folds,
)
from tests.conftest import TRAINED, demo_config, trained_copy_config

QUIET = Console(quiet=True)
TFIDF = {"model.kind": "tfidf", "train.experiment": "frame_tfidf"}


def test_parse_folds():
    assert parse_folds("all", 3) == [0, 1, 2]
    assert parse_folds("0,2", 3) == [0, 2]
    with pytest.raises(CompError, match="fold 5 is outside 0..2"):
        parse_folds("5", 3)
    with pytest.raises(CompError, match="expected 'all' or fold numbers"):
        parse_folds("x", 3)


def test_finished_fold_is_skipped_and_touched_unless_forced(demo_root):
    config = demo_config(demo_root, **TFIDF)
    train_folds(config, [0], "cpu", False, QUIET)
    metrics = fold_dir(config, 0) / METRICS
    content, an_hour_ago = metrics.read_bytes(), metrics.stat().st_mtime - 3600
    os.utime(metrics, (an_hour_ago, an_hour_ago))
    assert train_folds(config, [0], "cpu", False, QUIET)[0].skipped
    # unchanged, but touched: make sees the fold checked against a newer config file
    assert metrics.read_bytes() == content and metrics.stat().st_mtime > an_hour_ago + 1800
    assert not train_folds(config, [0], "cpu", True, QUIET)[0].skipped
    assert metrics.read_bytes() != content  # retrained: a new wall time at least


def test_fold_trained_on_other_folds_is_retrained(demo_root):
    settings = {**TFIDF, "train.experiment": "refold", "folds.name": "refold", "folds.seed": 1}
    config = demo_config(demo_root, **settings)
    train = load_train(config.data)
    make_folds(config, train)
    train_folds(config, [0], "cpu", False, QUIET)
    assert train_folds(config, [0], "cpu", False, QUIET)[0].skipped
    config = demo_config(demo_root, **{**settings, "folds.seed": 2})
    make_folds(config, train)
    assert not train_folds(config, [0], "cpu", False, QUIET)[0].skipped


def test_finished_fold_counts_only_for_the_same_train_file_and_input_keys(trained_root):
    config = demo_config(trained_root, **TRAINED)
    folds_sha = sha256_file(folds_paths(config)[0])
    train_sha = sha256_file(Path(config.data.train))
    fingerprint = fold_fingerprint(config)
    assert finished_metrics(config, 0, folds_sha, train_sha, fingerprint) is not None
    assert finished_metrics(config, 0, folds_sha, "another train file", fingerprint) is None
    other_marker = demo_config(trained_root, **{**TRAINED, "data.question_marker": "سؤال"})
    assert fold_fingerprint(other_marker) != fingerprint
    assert finished_metrics(config, 0, folds_sha, train_sha, fold_fingerprint(other_marker)) is None


def test_transformer_fingerprint_follows_its_own_keys_only(demo_root):
    base = demo_config(demo_root)
    fingerprint = fold_fingerprint(base)
    for key, value in [("train.lr", 1e-4), ("model.backbone", "elsewhere"), ("train.fgm", False)]:
        assert fold_fingerprint(demo_config(demo_root, **{key: value})) != fingerprint, key
    for key, value in [
        ("tfidf.c", 4.0),
        ("tfidf.seed", 7),
        ("train.eval_every", 7),  # how often to evaluate does not change the model
        ("train.experiment", "other"),
        ("train.device", "cpu"),
    ]:
        assert fold_fingerprint(demo_config(demo_root, **{key: value})) == fingerprint, key


def test_tfidf_fingerprint_follows_its_own_keys_only(demo_root):
    fingerprint = fold_fingerprint(demo_config(demo_root, **TFIDF))
    for key, value in [("tfidf.c", 4.0), ("tfidf.seed", 7), ("data.num_labels", 83)]:
        changed = demo_config(demo_root, **{**TFIDF, key: value})
        assert fold_fingerprint(changed) != fingerprint, key
    for key, value in [
        ("train.lr", 1.0),
        ("train.seed", 7),
        ("train.fgm_eps", 0.5),
        ("model.backbone", "elsewhere"),
        ("model.max_len", 64),
    ]:
        assert fold_fingerprint(demo_config(demo_root, **{**TFIDF, key: value})) == fingerprint


def test_editing_tfidf_keys_does_not_retrain_a_transformer_fold(trained_root, trained_copy):
    edited = trained_copy_config(
        trained_root, trained_copy, **{"tfidf.c": 4.0, "tfidf.word_ngram_max": 3}
    )
    assert [r.skipped for r in train_folds(edited, [0, 1], "cpu", False, QUIET)] == [True, True]
    fewer_steps = trained_copy_config(
        trained_root, trained_copy, **{"train.steps": 2, "train.eval_every": 2}
    )
    assert not train_folds(fewer_steps, [0], "cpu", False, QUIET)[0].skipped


def test_editing_train_or_backbone_does_not_retrain_a_tfidf_fold(demo_root):
    config = demo_config(demo_root, **{**TFIDF, "train.experiment": "tfidf_isolated"})
    train_folds(config, [0], "cpu", False, QUIET)
    edited = demo_config(
        demo_root,
        **{
            **TFIDF,
            "train.experiment": "tfidf_isolated",
            "train.lr": 1.0,
            "train.fgm_eps": 0.5,
            "train.seed": 7,
            "model.backbone": str(demo_root / "no-such-backbone"),
            "train.device": "cuda",  # the TF-IDF kind never asks for a GPU
        },
    )
    assert train_folds(edited, [0], None, False, QUIET)[0].skipped
    retuned = demo_config(demo_root, **{**TFIDF, "train.experiment": "tfidf_isolated"})
    retuned.tfidf.c = 2.0
    assert not train_folds(retuned, [0], "cuda", False, QUIET)[0].skipped


def test_a_run_that_cannot_start_leaves_finished_folds_alone(trained_root, trained_copy):
    config = trained_copy_config(trained_root, trained_copy)
    folder = fold_dir(config, 0)
    before = {path.name: path.read_bytes() for path in folder.iterdir() if path.is_file()}
    with pytest.raises(CompError, match="CUDA is not available"):
        train_folds(config, [0, 1], "cuda", True, QUIET)  # forced, on a box without a GPU
    after = {path.name: path.read_bytes() for path in folder.iterdir() if path.is_file()}
    assert after == before and METRICS in after


def test_clearing_a_fold_removes_its_outputs_and_the_kinds_files_only(tmp_path):
    names = [METRICS, OOF, TEST_LOGITS, "model.bin", "checkpoint.pt", CONFIG, "notes.txt"]
    for name in names:
        (tmp_path / name).write_text("x")
    clear_fold(tmp_path, ("model.bin", "checkpoint.pt"))
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted([CONFIG, "notes.txt"])


def test_a_model_key_added_later_keeps_finished_folds_at_its_default(demo_root, monkeypatch):
    from comp.kinds import transformer
    from comp.leaderboard import experiment_keys

    config = demo_config(demo_root, **{"model.pooling": "cls"})
    mean = demo_config(demo_root, **{"model.pooling": "mean"})
    at_default = fold_fingerprint(config)
    assert fold_fingerprint(mean) != at_default
    assert experiment_keys(config)["model.pooling"] == "cls"  # `comp runs` still shows it
    shaping = transformer.shaping_config

    def before_the_key_existed(cfg):
        values = shaping(cfg)
        del values["model"]["pooling"]
        return values

    monkeypatch.setattr(transformer, "shaping_config", before_the_key_existed)
    assert fold_fingerprint(config) == at_default


def test_knn_pooling_head_fingerprints_what_it_resolves_to(demo_root):
    knn = {"model.kind": "knn", "knn.base_experiment": "base"}
    for head in ("cls", "mean"):
        resolved = demo_config(demo_root, **knn, **{"model.pooling": head, "knn.pooling": head})
        follows = demo_config(demo_root, **knn, **{"model.pooling": head, "knn.pooling": "head"})
        assert fold_fingerprint(follows) == fold_fingerprint(resolved)


def test_the_default_fingerprints_stay_those_finished_folds_were_trained_with():
    # Changing these retrains every finished fold of every user: if a change must, say so in
    # the README; if a new key should not, add it to comp.config.ADDED_KEY_DEFAULTS.
    from comp.kinds import default_config

    config = default_config()
    assert fold_fingerprint(config) == (
        "7739d3b5158f978792952815ec4c7e1edc53a3f3d258d502926b0166013240ea"
    )
    config.model.kind = "tfidf"
    assert fold_fingerprint(config) == (
        "43bb1c1b7ac2a18dec3f272f8eb8e2c41971785d8cf8a6784991171192430790"
    )


def test_the_results_table_prints_only_what_the_kind_measured():
    from comp.runs.frame import FoldResult, print_results

    console = Console(record=True, width=200)
    print_results([FoldResult(0, 0.5, None, 1.0, 10.0, None)], console)  # kNN: no steps, tokens
    header = console.export_text().splitlines()[2]
    assert "samples/s" in header and "best step" not in header and "tokens/s" not in header
    print_results([FoldResult(0, 0.5, 40, 1.0, 10.0, 2000.0)], console)
    text = console.export_text()
    assert "best step" in text and "2,000" in text


def test_metrics_written_with_the_old_fingerprint_key_still_count_as_finished(demo_root):
    import json

    from comp.layout import METRICS, fold_dir
    from comp.runs.frame import train_folds
    from tests.conftest import demo_config

    config = demo_config(demo_root, **{"model.kind": "tfidf", "train.experiment": "old_key"})
    train_folds(config, [0], "cpu", False, Console(quiet=True))
    path = fold_dir(config, 0) / METRICS
    metrics = json.loads(path.read_text())
    metrics["config_sha256"] = metrics.pop("fingerprint")  # as comp before 2026-12 wrote it
    path.write_text(json.dumps(metrics))
    assert [r.skipped for r in train_folds(config, [0], "cpu", False, Console(quiet=True))] == [
        True
    ]
    metrics["config_sha256"] = "another"
    path.write_text(json.dumps(metrics))
    assert [r.skipped for r in train_folds(config, [0], "cpu", False, Console(quiet=True))] == [
        False
    ]
