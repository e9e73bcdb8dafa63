"""`comp pretrain` (issue 13): masks, the backbone folder it writes and how training loads it,
resuming after kill -9 bit-exactly, one process per folder, the divergence guard, the
fingerprint of a backbone rebuilt at the same path, and what make builds."""

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from rich.console import Console
from safetensors.torch import load_file

from comp.errors import CompError
from comp.kinds import load_config
from comp.locks import BusyError, folder_lock
from comp.makefile import make_variables
from comp.neural.backbone import (
    load_pretrained_backbone,
    load_tokenizer,
    train_wordpiece,
)
from comp.neural.files import CHECKPOINT, PRETRAIN_CONFIG, PRETRAIN_METRICS
from comp.pretrain.masking import IGNORE, mask_spec, mask_tokens
from comp.pretrain.run import plan_pretraining, pretrain
from comp.runs.frame import fold_fingerprint
from tests.conftest import demo_config, run_comp, write_config_file

ROOT = Path(__file__).resolve().parents[1]
QUIET = Console(quiet=True)
TEXTS = [
    "أعاني من ألم في الأسنان منذ ٣ أيام، هل أذهب إلى الطبيب المختص؟",
    "إنّ آلام المعدة قد تكون بسبب القولون العصبي عند الأطفال",
    "مستشفى الأطفال يستقبل المرضى في المساء",
] * 30


def pretrain_config(root: Path, out: Path, **settings):
    values = {
        "pretrain.backbone": root / "tiny-bert",
        "pretrain.out_dir": out,
        "pretrain.steps": 6,
        "pretrain.batch_size": 16,
        "pretrain.lr": 1e-3,
        "pretrain.checkpoint_every": 2,
        **settings,
    }
    return demo_config(root, **values)


comp, write = run_comp, write_config_file


# ---------------------------------------------------------------------------------------------
# Masks


def batch(tokenizer, texts):
    encoded = tokenizer(texts, padding=True, return_tensors="np")
    return encoded["input_ids"], encoded["attention_mask"]


def test_whole_words_are_masked_together_and_specials_never():
    tokenizer = train_wordpiece(TEXTS, 90, 64)  # a small vocabulary: many words in pieces
    spec = mask_spec(tokenizer, 0.15, whole_word=True)
    ids, attention = batch(tokenizer, TEXTS[:3] * 40)
    inputs, labels = mask_tokens(ids, attention, spec, np.random.default_rng(0))
    predicted = labels != IGNORE
    assert np.array_equal(labels[predicted], ids[predicted])
    assert not predicted[(attention == 0) | spec.special[ids]].any()
    maskable = (attention == 1) & ~spec.special[ids]
    assert 0.12 < predicted.sum() / maskable.sum() < 0.18
    shown = inputs[predicted]
    assert 0.74 < (shown == spec.mask_id).mean() < 0.86
    assert 0.04 < (shown == ids[predicted]).mean() < 0.16  # kept as they are
    assert np.array_equal(inputs[~predicted], ids[~predicted])
    pieces = spec.continuation[ids] & maskable
    assert pieces.any()
    previous = np.zeros_like(predicted)
    previous[:, 1:] = predicted[:, :-1]
    follows_maskable = np.zeros_like(maskable)
    follows_maskable[:, 1:] = maskable[:, :-1]
    inside = pieces & follows_maskable  # a ## piece inside a word shares its word's fate
    assert np.array_equal(predicted[inside], previous[inside])


def test_masks_are_a_function_of_the_seed_and_never_empty():
    tokenizer = train_wordpiece(TEXTS, 300, 64)
    spec = mask_spec(tokenizer, 0.15, whole_word=False)
    assert spec.continuation is None
    ids, attention = batch(tokenizer, TEXTS[:2])
    a = mask_tokens(ids, attention, spec, np.random.default_rng([7, 2, 5]))
    b = mask_tokens(ids, attention, spec, np.random.default_rng([7, 2, 5]))
    c = mask_tokens(ids, attention, spec, np.random.default_rng([7, 2, 6]))
    assert all(np.array_equal(x, y) for x, y in zip(a, b, strict=True))
    assert not np.array_equal(a[1], c[1])
    rare = mask_spec(tokenizer, 1e-9, whole_word=True)
    _, labels = mask_tokens(ids[:1], attention[:1], rare, np.random.default_rng(0))
    assert (labels != IGNORE).sum() >= 1


# ---------------------------------------------------------------------------------------------
# The folder it writes


def test_pretrain_writes_a_backbone_that_training_loads(demo_root, tmp_path):
    from comp.kinds.transformer.model import build_classifier

    out = tmp_path / "tapt"
    path = write(tmp_path / "config.yaml", pretrain_config(demo_root, out))
    result = comp("pretrain", "--config", path)
    assert result.exit_code == 0, result.output
    assert (
        "pretrain: step 6/6" in result.output
        and f"wrote pretrained backbone to {out}" in result.output
    )
    assert "test public" in result.output and "[UNK]" in result.output
    metrics = json.loads((out / PRETRAIN_METRICS).read_text())
    assert metrics["steps"] == 6 and set(metrics["rows"]) == {
        "train",
        "test public",
        "test private",
    }
    assert 0.1 < metrics["predicted_share"] < 0.2
    assert load_config([out / PRETRAIN_CONFIG]).pretrain.out_dir == str(out)
    assert not (tmp_path / "tapt.work").exists() and not list(tmp_path.glob(".tapt.tmp-*"))

    encoder = load_pretrained_backbone(str(out))  # without the masked-LM head
    saved = load_file(out / "model.safetensors")
    word = "bert.embeddings.word_embeddings.weight"
    assert torch.equal(encoder.embeddings.word_embeddings.weight, saved[word])
    source = load_pretrained_backbone(str(demo_root / "tiny-bert"))
    assert not torch.equal(source.embeddings.word_embeddings.weight, saved[word])
    texts = TEXTS[:3]
    original = load_tokenizer(str(demo_root / "tiny-bert"))
    assert load_tokenizer(str(out))(texts)["input_ids"] == original(texts)["input_ids"]
    training = demo_config(demo_root, **{"model.backbone": out})
    assert build_classifier(training, pretrained=True).backbone.config.hidden_size == 64

    again = comp("pretrain", "--config", path)
    assert again.exit_code == 0 and "skipped, --force to pretrain again" in again.output
    fewer = pretrain_config(demo_root, out, **{"pretrain.include_test": False})
    assert plan_pretraining(fewer).fingerprint != metrics["fingerprint"]


def run_until_killed(n: int, config_path: str) -> subprocess.CompletedProcess:
    command = [sys.executable, "tests/fault_runner.py", "step", str(n), "--", "pretrain",
               "--config", config_path]  # fmt: skip
    env = {**os.environ, "COLUMNS": "200"}
    return subprocess.run(command, cwd=ROOT, env=env, capture_output=True, text=True, timeout=300)


def test_killed_pretraining_resumes_to_the_same_weights(demo_root, tmp_path):
    whole = pretrain(pretrain_config(demo_root, tmp_path / "whole"), "cpu", False, QUIET)
    resumed = tmp_path / "resumed"
    path = write(tmp_path / "config.yaml", pretrain_config(demo_root, resumed))
    killed = run_until_killed(6, path)  # steps 1-5 done, checkpoints at 2 and 4
    assert killed.returncode == -9, killed.stdout + killed.stderr
    work = tmp_path / "resumed.work"
    assert torch.load(work / CHECKPOINT, weights_only=True)["step"] == 4
    assert not resumed.exists()
    result = comp("pretrain", "--config", path)
    assert result.exit_code == 0 and "resuming from step 4" in result.output
    a, b = load_file(whole / "model.safetensors"), load_file(resumed / "model.safetensors")
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)
    history = [json.loads((d / PRETRAIN_METRICS).read_text())["history"] for d in (whole, resumed)]
    assert history[0] == history[1]


def test_a_second_pretraining_of_the_same_folder_exits_2_at_once(demo_root, tmp_path):
    config = pretrain_config(demo_root, tmp_path / "busy")
    busy = pytest.raises(BusyError, match=f"is being trained by pid {os.getpid()}")
    with folder_lock(tmp_path / "busy.work", "held by the test"), busy:
        pretrain(config, "cpu", False, QUIET)
    assert not (tmp_path / "busy").exists()


@pytest.mark.filterwarnings("ignore:Detected call of:UserWarning")  # every step is skipped
def test_non_finite_losses_stop_pretraining_and_write_nothing(demo_root, tmp_path, monkeypatch):
    import comp.pretrain.mlm as mlm

    def nan_loss(logits, labels):
        return logits.sum() * float("nan")

    monkeypatch.setattr(mlm.F, "cross_entropy", nan_loss)
    config = pretrain_config(demo_root, tmp_path / "nan", **{"train.max_nonfinite_steps": 3})
    with pytest.raises(CompError, match="diverged at step 3 .*3 steps in a row"):
        pretrain(config, "cpu", False, QUIET)
    assert not (tmp_path / "nan").exists()


@pytest.mark.parametrize(
    ("settings", "message"),
    [
        ({"pretrain.out_dir": ""}, "pretrain.out_dir is empty"),
        ({"pretrain.mask_rate": 1.5}, "pretrain.mask_rate must be in"),
        ({"pretrain.backbone": "", "model.backbone": "x"}, "needs pretrain.backbone"),
        ({"model.kind": "tfidf"}, "model.kind tfidf does not read"),
    ],
)
def test_bad_pretrain_settings_exit_2_naming_the_key(demo_root, tmp_path, settings, message):
    config = {"pretrain.backbone": demo_root / "tiny-bert", "pretrain.out_dir": "x", **settings}
    overrides = [f"{key}={value}" for key, value in config.items()]
    path = write(tmp_path / "config.yaml", demo_config(demo_root))
    result = comp("pretrain", "--config", path, *sum((["--set", o] for o in overrides), []))
    assert result.exit_code == 2 and message in result.output


# ---------------------------------------------------------------------------------------------
# What it changes elsewhere


def test_a_backbone_rebuilt_at_the_same_path_changes_the_fold_fingerprint(demo_root, tmp_path):
    import shutil

    backbone = shutil.copytree(demo_root / "tiny-bert", tmp_path / "backbone")
    config = demo_config(demo_root, **{"model.backbone": backbone})
    before = fold_fingerprint(config)
    (backbone / PRETRAIN_METRICS).write_text("{}")  # a record, not the weights: no change
    assert fold_fingerprint(config) == before
    weights = backbone / "model.safetensors"
    data = bytearray(weights.read_bytes())
    data[-1] ^= 1
    weights.write_bytes(bytes(data))
    assert fold_fingerprint(config) != before


def test_make_builds_the_pretrained_backbone_when_training_uses_it():
    demo_layers = [ROOT / "configs" / "demo.yaml", ROOT / "configs" / "demo_tapt.yaml"]
    demo = make_variables(load_config(demo_layers))
    assert demo["PRETRAINED_BACKBONE"] == "data/demo/tiny-bert-tapt"
    assert demo["TINY_BACKBONE"] == "data/demo/tiny-bert"  # what pretraining starts from
    plain = make_variables(load_config([ROOT / "configs" / "demo.yaml"]))  # random weights
    assert plain["PRETRAINED_BACKBONE"] == "" and plain["TINY_BACKBONE"] == "data/demo/tiny-bert"
    layers = [
        ROOT / "configs" / "abjadmed.yaml",
        ROOT / "configs" / "abjadmed" / "arbertv2_tapt.yaml",
    ]
    real = make_variables(load_config(layers))
    assert real["PRETRAINED_BACKBONE"] == "models/arbertv2-tapt" and real["TINY_BACKBONE"] == ""


def test_a_tokenizer_without_a_mask_token_names_the_setting_to_change():
    from types import SimpleNamespace

    from comp.errors import CompError
    from comp.pretrain.masking import mask_spec

    with pytest.raises(CompError, match=r"pretrain\.backbone: .*no \[MASK\] token"):
        mask_spec(SimpleNamespace(mask_token_id=None), 0.15, True)


def test_pretraining_events_go_to_tensorboard_beside_the_weights(demo_root, tmp_path):
    from comp.neural.files import TENSORBOARD, backbone_sha256
    from tests.test_events import scalars

    settings = {"train.tensorboard": True, "train.log_every": 2}
    out = pretrain(pretrain_config(demo_root, tmp_path / "tapt", **settings), "cpu", False, QUIET)
    losses = scalars(out / TENSORBOARD, "train/loss")
    assert [step for step, _ in losses] == [2, 4, 6] and all(np.isfinite(v) for _, v in losses)
    before = backbone_sha256(str(out))
    for path in (out / TENSORBOARD).iterdir():  # the events describe the weights: not hashed
        path.write_bytes(b"other")
    assert backbone_sha256(str(out)) == before
