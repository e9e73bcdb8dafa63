"""Faults end in a clear message or a recovery, never in a wasted run or a traceback (issue 11):
divergence, killed and truncated files, two processes on one fold, and logs that are not a
terminal."""

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import polars as pl
import pytest
import torch
from click.testing import CliRunner
from rich.console import Console

from comp.cli import main
from comp.errors import CompError
from comp.kinds import FoldFit
from comp.layout import METRICS, OOF, TEST_LOGITS, fold_dir
from comp.locks import LOCK
from comp.neural.files import CHECKPOINT, PREVIOUS_CHECKPOINT
from comp.runs.frame import fold_fingerprint, load_run_inputs, train_folds
from comp.runs.outputs import write_fold_outputs
from tests.conftest import copy_workspace, demo_config, one_line, run_comp, write_config_file

ROOT = Path(__file__).resolve().parents[1]
QUIET = Console(quiet=True)
ENV = {**os.environ, "COLUMNS": "200"}


write = write_config_file


def comp(*args: str, env: dict | None = None):
    return run_comp(*args, env=env, columns=80)


# ---------------------------------------------------------------------------------------------
# 1. A diverging run stops early, with exit 2 and nothing written


def test_a_diverging_fold_stops_with_exit_2_and_writes_nothing(demo_root, tmp_path):
    settings = {"train.experiment": "diverge", "train.steps": 300, "train.eval_every": 100}
    path = write(tmp_path / "config.yaml", demo_config(demo_root, **settings))
    started = time.perf_counter()
    result = comp("train", "--config", path, "--fold", "0", "--set", "train.lr=1e4",
                  "--set", "train.fgm=false")  # fmt: skip
    seconds = time.perf_counter() - started
    assert result.exit_code == 2, result.output
    line = result.output.strip().splitlines()[-1]
    assert "fold 0 diverged at step" in line and "non-finite loss or gradient" in line
    assert "Try a lower train.lr" in line  # (and train.precision=fp32 under bf16 on a GPU)
    step = int(line.split("diverged at step ")[1].split()[0])
    assert step < 30 and seconds < 60, (step, seconds)  # of 300 steps
    out = demo_root / "runs" / "diverge" / "fold0"
    assert not (out / METRICS).exists() and not (out / OOF).exists()


def test_the_fold_writer_refuses_non_finite_logits_of_any_kind(demo_root):
    config = demo_config(demo_root, **{"model.kind": "tfidf", "train.experiment": "nan_kind"})
    inputs = load_run_inputs(config, fold_fingerprint(config))
    val = np.zeros((len(inputs.val_rows(0)), config.data.num_labels), dtype=np.float32)
    tests = [np.zeros((len(t), config.data.num_labels), dtype=np.float32) for t in inputs.tests]
    tests[1][3, 5] = np.nan
    out = demo_root / "runs" / "nan_kind" / "fold0"
    with pytest.raises(CompError, match="test set 'private' logits hold 1 non-finite values"):
        write_fold_outputs(out, 0, inputs, FoldFit(val, tests, 1.0, 1.0), {})
    assert not out.exists() or not any(out.iterdir())


# ---------------------------------------------------------------------------------------------
# 2-3. Unreadable files: one line naming the file, or a recovery


def tfidf_workspace(demo_root: Path, tmp_path: Path, experiment: str):
    """(config, its path) of a TF-IDF experiment trained in a copy of the demo workspace."""
    root = copy_workspace(demo_root, tmp_path / "ws")
    config = demo_config(root, **{"model.kind": "tfidf", "train.experiment": experiment})
    path = write(tmp_path / "config.yaml", config)
    assert comp("train", "--config", path).exit_code == 0
    return config, path


def test_a_truncated_metrics_file_is_exit_2_for_ensemble_and_retrained_by_train(
    demo_root, tmp_path
):
    config, path = tfidf_workspace(demo_root, tmp_path, "cut")
    metrics = fold_dir(config, 1) / METRICS
    metrics.write_bytes(metrics.read_bytes()[:40])

    result = comp("ensemble", "cut", "--config", path, env=ENV)
    assert result.exit_code == 2
    line = one_line(result.output)
    assert str(metrics) in line and "unreadable" in line and "comp train --fold 1" in line

    result = comp("train", "--config", path, env=ENV)
    assert result.exit_code == 0, result.output
    assert f"fold 1: {metrics} is unreadable (" in result.output and "retraining" in result.output
    assert json.loads(metrics.read_text())["fold"] == 1
    assert comp("ensemble", "cut", "--config", path).exit_code == 0


def test_unreadable_fold_and_ensemble_files_name_the_file_and_the_fix(demo_root, tmp_path):
    config, path = tfidf_workspace(demo_root, tmp_path, "broken")
    oof = fold_dir(config, 0) / OOF
    oof.write_bytes(oof.read_bytes()[:100])
    line = one_line(comp("ensemble", "broken", "--config", path, env=ENV).output)
    assert str(oof) in line and "unreadable" in line and "comp train --fold 0" in line

    fold_json = tmp_path / "ws" / "folds" / "demo.json"
    fold_json.write_text("{not json", encoding="utf-8")
    result = comp("train", "--config", path, "--force", env=ENV)
    assert result.exit_code == 2
    line = one_line(result.output)
    assert str(fold_json) in line and "comp make-folds" in line


# ---------------------------------------------------------------------------------------------
# 4. One process per fold


def test_a_second_process_on_a_fold_in_training_exits_2_at_once(demo_root, tmp_path):
    settings = {"train.experiment": "busy", "train.steps": 80, "train.eval_every": 80}
    config = demo_config(demo_root, **settings)
    path = write(tmp_path / "config.yaml", config)
    first = subprocess.Popen(
        [sys.executable, "-m", "comp", "train", "--config", path, "--fold", "0"],
        cwd=ROOT,
        env=ENV,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    lock = fold_dir(config, 0) / LOCK
    deadline = time.time() + 60
    while not (lock.is_file() and lock.read_text().strip() == str(first.pid)):
        assert first.poll() is None and time.time() < deadline, "the first process never locked"
        time.sleep(0.05)
    started = time.perf_counter()
    second = comp("train", "--config", path, "--fold", "0", env=ENV)
    seconds = time.perf_counter() - started
    assert second.exit_code == 2 and seconds < 10
    assert f"fold 0 of busy is being trained by pid {first.pid}" in one_line(second.output)
    output, _ = first.communicate(timeout=120)
    assert first.returncode == 0, output
    assert json.loads((fold_dir(config, 0) / METRICS).read_text())["fold"] == 0


# ---------------------------------------------------------------------------------------------
# Fault injection: kill -9 at three points, a truncated checkpoint; the result is bit-exact


def run_until_killed(mode: str, n: int, config_path: str) -> subprocess.CompletedProcess:
    command = [sys.executable, "tests/fault_runner.py", mode, str(n), "--", "train",
               "--config", config_path, "--fold", "0"]  # fmt: skip
    return subprocess.run(command, cwd=ROOT, env=ENV, capture_output=True, text=True, timeout=300)


def test_killed_three_times_and_truncated_the_fold_ends_as_if_uninterrupted(demo_root, tmp_path):
    settings = {"train.steps": 12, "train.eval_every": 3, "train.checkpoint_every": 3}
    whole = demo_config(demo_root, **{"train.experiment": "faults_whole", **settings})
    train_folds(whole, [0], "cpu", False, QUIET)
    faulty = demo_config(demo_root, **{"train.experiment": "faults", **settings})
    path = write(tmp_path / "config.yaml", faulty)
    out = fold_dir(faulty, 0)

    killed = run_until_killed("step", 8, path)  # steps 1-7 done, checkpoints at 3 and 6
    assert killed.returncode == -9, killed.stdout + killed.stderr
    assert torch.load(out / CHECKPOINT, weights_only=True)["step"] == 6
    (out / CHECKPOINT).write_bytes((out / CHECKPOINT).read_bytes()[:5000])  # a bad copy

    killed = run_until_killed("checkpoint", 2, path)  # in the write of step 9's checkpoint
    assert killed.returncode == -9
    assert f"{out / CHECKPOINT} is unreadable" in killed.stdout
    assert "resuming from step 3" in killed.stdout  # the previous checkpoint
    assert list(out.glob(".checkpoint.pt.tmp-*"))  # half a file, never renamed into place

    killed = run_until_killed("outputs", 1, path)  # oof.parquet renamed, the rest not
    assert killed.returncode == -9 and "resuming from step 6" in killed.stdout
    assert (out / OOF).is_file() and not (out / METRICS).exists()

    done = subprocess.run(
        [sys.executable, "-m", "comp", "train", "--config", path, "--fold", "0"],
        cwd=ROOT, env=ENV, capture_output=True, text=True, timeout=300,
    )  # fmt: skip
    assert done.returncode == 0, done.stdout + done.stderr
    assert "resuming from step 9" in done.stdout
    for name in (OOF, TEST_LOGITS):
        a = pl.read_parquet(fold_dir(whole, 0) / name)["logits"].to_numpy()
        b = pl.read_parquet(out / name)["logits"].to_numpy()
        assert np.array_equal(a, b), name
    a, b = (json.loads((fold_dir(c, 0) / METRICS).read_text()) for c in (whole, faulty))
    assert a["history"] == b["history"] and a["best_step"] == b["best_step"]
    assert not list(out.glob(".*.tmp-*"))  # the killed writers' leftovers are gone
    assert not (out / CHECKPOINT).exists() and not (out / PREVIOUS_CHECKPOINT).exists()


# ---------------------------------------------------------------------------------------------
# 7. Output that is not a terminal


def test_logs_get_plain_progress_lines_and_whole_tables(demo_root, tmp_path):
    settings = {
        "train.experiment": "piped",
        "train.steps": 20,
        "train.eval_every": 20,
        "train.log_every": 2,
    }
    path = write(tmp_path / "config.yaml", demo_config(demo_root, **settings))
    env = {key: value for key, value in os.environ.items() if key != "COLUMNS"}
    result = CliRunner(env={"COLUMNS": None}).invoke(
        main, ["train", "--config", path, "--fold", "0"], env=env, catch_exceptions=False
    )
    assert result.exit_code == 0, result.output
    lines = result.output.splitlines()
    progress = [line for line in lines if line.startswith("fold 0: step ")]
    assert len(progress) == 10 and progress[-1].startswith("fold 0: step 20/20 (100%), loss ")
    assert all("samples/s" in line and "ETA" in line for line in progress)
    assert "…" not in result.output and "\x1b" not in result.output
    assert any(line.rstrip().endswith("note ┃") for line in lines)  # the last header, whole
