import json
import os
from pathlib import Path

import numpy as np
import polars as pl
import pytest
import torch
from rich.console import Console

from comp.data import load_tests, load_train
from comp.errors import CompError
from comp.features import EncodedTexts
from comp.folds import folds_paths
from comp.io import sha256_file
from comp.model import Classifier
from comp.train import collate, finished_metrics, parse_folds, train_folds
from tests.conftest import TRAINED, demo_config, tiny_bert

QUIET = Console(quiet=True)


def read_logits(path):
    frame = pl.read_parquet(path)
    return frame, frame["logits"].to_numpy()


def test_two_fold_run_writes_everything_and_learns(trained_root):
    demo_root = trained_root
    config = demo_config(demo_root, **TRAINED)
    train = load_train(config.data)
    tests = load_tests(config)
    folds = np.asarray(pl.read_csv(demo_root / "folds" / "demo.csv")["fold"])
    chance = 1 / config.data.num_labels
    for fold in (0, 1):
        out = demo_root / "runs" / "two_folds" / f"fold{fold}"
        metrics = json.loads((out / "metrics.json").read_text())
        assert metrics["val_macro_f1"] > 5 * chance, metrics["history"]
        assert metrics["samples_per_s"] > 0 and metrics["tokens_per_s"] > 0
        assert metrics["peak_memory_mb"] > 0 and len(metrics["per_class_f1"]) == 82
        assert (out / "config.yaml").is_file() and (out / "best_model.pt").is_file()
        assert (out / "backbone" / "config.json").is_file()
        assert not (out / "checkpoint.pt").exists()
        oof, logits = read_logits(out / "oof.parquet")
        assert oof["row"].to_list() == np.flatnonzero(folds == fold).tolist()
        assert oof["label"].to_list() == train.labels[folds == fold].tolist()
        assert logits.shape == (oof.height, 82) and np.isfinite(logits).all()
        predicted_f1 = metrics["val_macro_f1"]
        from comp.metrics import macro_f1

        assert macro_f1(oof["label"].to_numpy(), logits.argmax(1), 82) == pytest.approx(
            predicted_f1
        )
        test_frame, test_logits = read_logits(out / "test_logits.parquet")
        for test in tests:
            part = test_frame.filter(pl.col("set") == test.name)
            assert part["Id"].to_list() == test.ids
        assert test_logits.shape == (sum(len(t) for t in tests), 82)


def test_finished_fold_is_skipped_unless_forced(demo_root):
    config = demo_config(
        demo_root, **{"train.experiment": "skip", "train.steps": 4, "train.eval_every": 2}
    )
    train_folds(config, [0], "cpu", False, QUIET)
    metrics = demo_root / "runs" / "skip" / "fold0" / "metrics.json"
    content, an_hour_ago = metrics.read_bytes(), metrics.stat().st_mtime - 3600
    os.utime(metrics, (an_hour_ago, an_hour_ago))
    assert train_folds(config, [0], "cpu", False, QUIET)[0].skipped
    # unchanged, but touched: make sees the fold checked against a newer config file
    assert metrics.read_bytes() == content and metrics.stat().st_mtime > an_hour_ago + 1800
    assert not train_folds(config, [0], "cpu", True, QUIET)[0].skipped
    assert metrics.read_bytes() != content  # retrained: a new wall time at least


class Killed(Exception):
    pass


def test_killed_and_resumed_run_matches_uninterrupted(demo_root, monkeypatch):
    settings = {
        "train.steps": 12,
        "train.eval_every": 3,
        "train.checkpoint_every": 4,
        "train.grad_accum": 2,
    }
    whole = demo_config(demo_root, **{"train.experiment": "whole", **settings})
    train_folds(whole, [0], "cpu", False, QUIET)

    resumed = demo_config(demo_root, **{"train.experiment": "resumed", **settings})
    real_clip, calls = torch.nn.utils.clip_grad_norm_, {"n": 0}

    def dying_clip(*args, **kwargs):  # called once per optimizer step, after the backward passes
        calls["n"] += 1
        if calls["n"] == 7:
            raise Killed
        return real_clip(*args, **kwargs)

    monkeypatch.setattr(torch.nn.utils, "clip_grad_norm_", dying_clip)
    with pytest.raises(Killed):
        train_folds(resumed, [0], "cpu", False, QUIET)
    checkpoint = torch.load(
        demo_root / "runs" / "resumed" / "fold0" / "checkpoint.pt", weights_only=False
    )
    assert checkpoint["step"] == 4
    monkeypatch.setattr(torch.nn.utils, "clip_grad_norm_", real_clip)
    train_folds(resumed, [0], "cpu", False, QUIET)

    for name in ("oof.parquet", "test_logits.parquet"):
        _, a = read_logits(demo_root / "runs" / "whole" / "fold0" / name)
        _, b = read_logits(demo_root / "runs" / "resumed" / "fold0" / name)
        assert np.array_equal(a, b), name
    a = json.loads((demo_root / "runs" / "whole" / "fold0" / "metrics.json").read_text())
    b = json.loads((demo_root / "runs" / "resumed" / "fold0" / "metrics.json").read_text())
    assert a["history"] == b["history"] and a["best_step"] == b["best_step"]


def test_parse_folds():
    assert parse_folds("all", 3) == [0, 1, 2]
    assert parse_folds("0,2", 3) == [0, 2]
    with pytest.raises(CompError, match="fold 5 is outside 0..2"):
        parse_folds("5", 3)
    with pytest.raises(CompError, match="expected 'all' or fold numbers"):
        parse_folds("x", 3)


def test_predict_on_a_copy_of_a_test_set_reproduces_train_logits(trained_root):
    from comp.config import TestSet
    from comp.predict import predict_folds

    config = demo_config(trained_root, **TRAINED)
    public = config.data.test_sets[0]
    config.data.test_sets.append(TestSet("public_copy", public.path))
    done = predict_folds(config, [], "cpu", False, QUIET)
    assert done == {0: ["public_copy"], 1: ["public_copy"]}
    for fold in (0, 1):
        frame = pl.read_parquet(
            trained_root / "runs" / "two_folds" / f"fold{fold}" / "test_logits.parquet"
        )
        original = frame.filter(pl.col("set") == "public")
        copy = frame.filter(pl.col("set") == "public_copy")
        assert copy["Id"].to_list() == original["Id"].to_list()
        np.testing.assert_allclose(
            copy["logits"].to_numpy(), original["logits"].to_numpy(), rtol=1e-5, atol=1e-5
        )
        assert frame["set"].unique(maintain_order=True).to_list() == [
            "public",
            "private",
            "public_copy",
        ]
    assert predict_folds(config, [], "cpu", False, QUIET) == {0: [], 1: []}
    with pytest.raises(CompError, match="not in data.test_sets"):
        predict_folds(config, ["nope"], "cpu", False, QUIET)
    # leave the run as the other tests expect it
    config.data.test_sets.pop()
    for fold in (0, 1):
        path = trained_root / "runs" / "two_folds" / f"fold{fold}" / "test_logits.parquet"
        pl.read_parquet(path).filter(pl.col("set") != "public_copy").write_parquet(path)


def test_fold_trained_on_other_folds_is_retrained(demo_root):
    from comp.folds import make_folds

    settings = {
        "train.experiment": "refold",
        "train.steps": 2,
        "train.eval_every": 2,
        "folds.name": "refold",
        "folds.seed": 1,
    }
    config = demo_config(demo_root, **settings)
    train = load_train(config.data)
    make_folds(config, train)
    train_folds(config, [0], "cpu", False, QUIET)
    assert train_folds(config, [0], "cpu", False, QUIET)[0].skipped
    config = demo_config(demo_root, **{**settings, "folds.seed": 2})
    make_folds(config, train)
    assert not train_folds(config, [0], "cpu", False, QUIET)[0].skipped


def test_fold_trained_with_another_training_config_is_retrained(demo_root):
    settings = {"train.experiment": "reconfig", "train.steps": 2, "train.eval_every": 2}
    train_folds(demo_config(demo_root, **settings), [0], "cpu", False, QUIET)
    # how often to evaluate does not change the model: still finished
    same = demo_config(demo_root, **{**settings, "train.eval_every": 1})
    assert train_folds(same, [0], "cpu", False, QUIET)[0].skipped
    other = demo_config(demo_root, **{**settings, "train.lr": 1e-4})
    assert not train_folds(other, [0], "cpu", False, QUIET)[0].skipped


def test_finished_fold_counts_only_for_the_same_train_file_and_input_keys(demo_root):
    config = demo_config(demo_root, **TRAINED)
    folds_sha = sha256_file(folds_paths(config)[0])
    train_sha = sha256_file(Path(config.data.train))
    assert finished_metrics(config, 0, folds_sha, train_sha) is not None
    assert finished_metrics(config, 0, folds_sha, "another train file") is None
    other_marker = demo_config(demo_root, **{**TRAINED, "data.question_marker": "سؤال"})
    assert finished_metrics(other_marker, 0, folds_sha, train_sha) is None


def test_padding_to_a_multiple_leaves_the_logits_unchanged():
    torch.manual_seed(0)
    backbone = tiny_bert(hidden=32, dropout=0.1)
    model = Classifier(backbone, num_labels=5, dropout=0.1, head="linear").eval()
    lengths = [7, 3, 12]
    offsets = np.concatenate([[0], np.cumsum(lengths)])
    rng = np.random.default_rng(0)
    encoded = EncodedTexts(
        ids=rng.integers(1, 50, offsets[-1]).astype(np.int32),
        type_ids=(rng.random(offsets[-1]) < 0.5).astype(np.int8),
        offsets=offsets,
    )
    cpu = torch.device("cpu")
    tight = collate(encoded, [0, 1, 2], 0, cpu)
    rounded = collate(encoded, [0, 1, 2], 0, cpu, multiple=16, limit=64)
    assert tight["input_ids"].shape[1] == 12 and rounded["input_ids"].shape[1] == 16
    with torch.no_grad():
        torch.testing.assert_close(model(**rounded), model(**tight), atol=1e-5, rtol=1e-5)


def test_compile_and_pad_multiple_reach_the_training_passes(demo_root, monkeypatch):
    import comp.train as train_module

    compiled, widths = [], []
    monkeypatch.setattr(
        torch, "compile", lambda module, **options: compiled.append(options) or module
    )
    real_pad_batch = train_module.pad_batch

    def recording_pad_batch(sequences, pad_id, multiple=1, limit=0):
        ids, mask = real_pad_batch(sequences, pad_id, multiple, limit)
        if multiple != 1:
            widths.append(ids.shape[1])
        return ids, mask

    monkeypatch.setattr(train_module, "pad_batch", recording_pad_batch)
    config = demo_config(
        demo_root,
        **{
            "train.experiment": "compiled",
            "train.steps": 3,
            "train.eval_every": 3,
            "train.compile": True,
            "train.pad_multiple": 32,
            "model.max_len": 40,
            "model.answer_min_tokens": 10,
        },
    )
    train_folds(config, [0], "cpu", False, QUIET)
    assert compiled == [{"dynamic": True}]
    assert len(widths) == 2 * 3  # ids and token types of 3 steps; evaluation is not rounded
    # up to 32 tokens: 32; longer (at most max_len 40): 64 capped at max_len
    assert set(widths) <= {32, 40} and 40 in widths, widths
