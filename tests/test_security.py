"""Loading a fold never runs code (issue 21): pickle payloads planted as a finished fold's model,
as an unfinished fold's checkpoint and as a TF-IDF model are refused in one line, unopened or
unexecuted, and training goes on from what is still good."""

import pickle
import shutil
from pathlib import Path

import pytest
import torch
from rich.console import Console

from comp.kinds.tfidf import MODEL_FILE, OLD_MODEL_FILE
from comp.layout import METRICS, fold_dir
from comp.neural.files import BEST_MODEL, CHECKPOINT, PREVIOUS_CHECKPOINT
from comp.runs.frame import train_folds
from tests.conftest import (
    Payload,
    demo_config,
    one_line,
    run_comp,
    trained_copy_config,
    write_config_file,
)

QUIET = Console(quiet=True)


def plant(path: Path, marker: Path, as_torch: bool = False) -> None:
    if as_torch:  # a real torch file whose model entry is the payload
        torch.save({"model": Payload(marker), "step": 1, "score": 1.0}, path)
    else:
        path.write_bytes(pickle.dumps(Payload(marker)))


def test_the_payload_runs_when_unpickled_so_the_tests_below_mean_something(tmp_path):
    pickle.loads(pickle.dumps(Payload(tmp_path / "ran")))
    assert (tmp_path / "ran").exists()


@pytest.mark.parametrize("as_torch", [True, False], ids=["torch file", "bare pickle"])
def test_a_planted_best_model_ends_predict_in_one_line(trained_root, trained_copy, as_torch):
    config = trained_copy_config(trained_root, trained_copy)
    marker = trained_copy / "payload_ran"
    best = fold_dir(config, 1) / BEST_MODEL
    plant(best, marker, as_torch)
    path = write_config_file(trained_copy / "config.yaml", config)
    result = run_comp("predict", "--config", path, "--force")
    assert result.exit_code == 2, result.output
    line = one_line(result.stderr)
    assert str(best) in line and "comp train --fold 1 --force" in line
    assert not marker.exists()


class Killed(Exception):
    pass


def unfinished_fold(root: Path, experiment: str, monkeypatch):
    """A fold killed after step 9: checkpoints of steps 4 (previous) and 8 (newest)."""
    settings = {"train.experiment": experiment, "train.steps": 12, "train.checkpoint_every": 4}
    config = demo_config(root, **settings)
    real_clip, calls = torch.nn.utils.clip_grad_norm_, {"n": 0}

    def dying_clip(*args, **kwargs):
        calls["n"] += 1
        if calls["n"] == 10:
            raise Killed
        return real_clip(*args, **kwargs)

    with monkeypatch.context() as patch:
        patch.setattr(torch.nn.utils, "clip_grad_norm_", dying_clip)
        with pytest.raises(Killed):
            train_folds(config, [0], "cpu", False, QUIET)
    return config


def test_a_planted_checkpoint_is_skipped_for_the_previous_one(demo_root, tmp_path, monkeypatch):
    config = unfinished_fold(demo_root, "planted_checkpoint", monkeypatch)
    out, marker = fold_dir(config, 0), tmp_path / "payload_ran"
    assert torch.load(out / PREVIOUS_CHECKPOINT, weights_only=True)["step"] == 4
    plant(out / CHECKPOINT, marker, as_torch=True)
    result = run_comp("train", "--config", write_config_file(tmp_path / "c.yaml", config))
    assert result.exit_code == 0, result.output
    notes = [line for line in result.output.splitlines() if str(out / CHECKPOINT) in line]
    assert len(notes) == 1 and "not loaded" in notes[0] and "previous" in notes[0]
    assert "fold 0: resuming from step 4" in result.output
    assert (out / METRICS).is_file() and not marker.exists()


def test_planted_checkpoints_restart_the_fold(demo_root, tmp_path, monkeypatch):
    config = unfinished_fold(demo_root, "planted_both", monkeypatch)
    out, marker = fold_dir(config, 0), tmp_path / "payload_ran"
    plant(out / CHECKPOINT, marker, as_torch=True)
    plant(out / PREVIOUS_CHECKPOINT, marker)
    result = run_comp("train", "--config", write_config_file(tmp_path / "c.yaml", config))
    assert result.exit_code == 0, result.output
    assert "no readable checkpoint; restarting from scratch" in result.output
    assert "resuming" not in result.output
    assert (out / METRICS).is_file() and not marker.exists()


@pytest.mark.parametrize("name", [MODEL_FILE, OLD_MODEL_FILE])
def test_a_planted_tfidf_model_ends_predict_in_one_line(demo_root, tmp_path, name):
    settings = {"model.kind": "tfidf", "train.experiment": "planted_tfidf"}
    config = demo_config(demo_root, **settings)
    if not (fold_dir(config, 1) / METRICS).is_file():
        train_folds(config, [0, 1], "cpu", False, QUIET)
    copy = tmp_path / "runs"
    shutil.copytree(demo_root / "runs" / "planted_tfidf", copy / "planted_tfidf")
    config.train.runs_dir = str(copy)
    fold = fold_dir(config, 1)
    (fold / MODEL_FILE).unlink()
    marker = tmp_path / "payload_ran"
    plant(fold / name, marker)
    result = run_comp("predict", "--config", write_config_file(tmp_path / "c.yaml", config),
                      "--force")  # fmt: skip
    assert result.exit_code == 2, result.output
    line = one_line(result.stderr)
    assert str(fold / name) in line and "comp train --fold 1 --force" in line
    assert not marker.exists()
