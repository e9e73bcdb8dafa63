"""A full disk ends in one line (exit 2, no traceback, no temporary file), and the same command
goes on once there is space: training from its last checkpoint to the uninterrupted outputs,
pretraining, ensembling. The small disks are tmpfs mounts (root); the writers are also checked
with an injected ENOSPC, which needs no mount."""

import errno
import json
import subprocess
from pathlib import Path

import numpy as np
import polars as pl
import pytest
from rich.console import Console

from comp.errors import CompError
from comp.io import DiskFull, atomic_path, disk_full, write_all_atomically
from comp.layout import METRICS, OOF, fold_dir
from comp.runs.frame import train_folds
from tests.conftest import demo_config, one_line, run_comp, write_config_file

QUIET = Console(quiet=True)
SETTINGS = {"train.steps": 60, "train.eval_every": 20, "train.checkpoint_every": 20}


@pytest.fixture
def small_disk(tmp_path):
    """A tmpfs of a chosen size at tmp_path/disk: `mount("6m")`, then a larger one with
    `mount("60m", remount=True)`."""
    where = tmp_path / "disk"
    where.mkdir()

    def mount(size: str, remount: bool = False) -> Path:
        options = f"size={size}" + (",remount" if remount else "")
        done = subprocess.run(["mount", "-t", "tmpfs", "-o", options, "tmpfs", str(where)],
                              capture_output=True, text=True)  # fmt: skip
        if done.returncode != 0:
            pytest.skip(f"cannot mount a small tmpfs here ({done.stderr.strip()})")
        return where

    yield mount
    subprocess.run(["umount", str(where)], capture_output=True)


def temp_files(folder: Path) -> list[Path]:
    return [p for p in folder.rglob(".*.tmp-*")]


def test_an_injected_enospc_becomes_one_disk_full_error_and_leaves_nothing(tmp_path):
    def full(path: Path) -> None:
        path.write_bytes(b"half")
        raise OSError(errno.ENOSPC, "No space left on device")

    with pytest.raises(DiskFull, match=r"a\.json: the disk is full \(.* free on "):
        write_all_atomically({tmp_path / "a.json": full})
    with pytest.raises(DiskFull), atomic_path(tmp_path / "b.bin") as tmp:
        full(tmp)
    assert list(tmp_path.iterdir()) == []
    polars_said = pl.exceptions.ComputeError("parquet: underlying IO error: No space left on "
                                             "device (os error 28)")  # fmt: skip
    assert disk_full(polars_said) and not disk_full(ValueError("other"))
    assert issubclass(DiskFull, CompError)


def test_training_on_a_full_disk_stops_in_one_line_then_resumes(demo_root, tmp_path, small_disk):
    whole = demo_config(demo_root, **SETTINGS, **{"train.experiment": "room"})
    train_folds(whole, [0], "cpu", False, QUIET)
    disk = small_disk("6m")
    config = demo_config(demo_root, **SETTINGS, **{"train.experiment": "cramped",
                                                   "train.runs_dir": disk / "runs"})  # fmt: skip
    path = write_config_file(tmp_path / "c.yaml", config)
    result = run_comp("train", "--config", path, "--fold", "0")
    assert result.exit_code == 2, result.output
    line = one_line(result.stderr)
    assert "the disk is full (it needed about" in line and "run the same command again" in line
    assert temp_files(disk) == []
    assert (fold_dir(config, 0) / "checkpoint.pt").is_file() or (
        fold_dir(config, 0) / "checkpoint.prev.pt"
    ).is_file()

    small_disk("60m", remount=True)
    again = run_comp("train", "--config", path, "--fold", "0")
    assert again.exit_code == 0, again.output
    assert "resuming from step 20" in again.output or "resuming from step 40" in again.output
    a = pl.read_parquet(fold_dir(whole, 0) / OOF)["logits"].to_numpy()
    b = pl.read_parquet(fold_dir(config, 0) / OOF)["logits"].to_numpy()
    assert np.array_equal(a, b)
    assert temp_files(disk) == []


def test_pretraining_on_a_full_disk_stops_in_one_line(demo_root, tmp_path, small_disk):
    disk = small_disk("2m")
    settings = {"pretrain.backbone": demo_root / "tiny-bert", "pretrain.out_dir": disk / "tapt",
                "pretrain.steps": 4, "pretrain.batch_size": 16,
                "pretrain.checkpoint_every": 2}  # fmt: skip
    path = write_config_file(tmp_path / "c.yaml", demo_config(demo_root, **settings))
    result = run_comp("pretrain", "--config", path, "--device", "cpu")
    assert result.exit_code == 2, result.output
    assert "the disk is full" in one_line(result.stderr)
    assert temp_files(disk) == [] and not (disk / "tapt").exists()
    small_disk("60m", remount=True)
    again = run_comp("pretrain", "--config", path, "--device", "cpu")
    assert again.exit_code == 0, again.output
    assert (disk / "tapt" / "pretrain_metrics.json").is_file()


def test_ensembling_on_a_full_disk_stops_in_one_line(trained_root, tmp_path, small_disk):
    from tests.conftest import TRAINED, copy_workspace, trained_copy_config

    root = copy_workspace(trained_root, tmp_path / "w", (TRAINED["train.experiment"],))
    disk = small_disk("8m")
    filler = disk / "filler"
    filler.write_bytes(b"\0" * (8 * 1024 * 1024 - 64 * 1024))  # about 64 KB left
    config = trained_copy_config(trained_root, root, **{"ensemble.name": "cramped"})
    path = write_config_file(tmp_path / "c.yaml", config)
    ensembles = root / "runs" / "ensembles"
    ensembles.mkdir(parents=True, exist_ok=True)
    (ensembles / "cramped").symlink_to(disk, target_is_directory=True)  # its files on the disk
    result = run_comp("ensemble", "--config", path)
    assert result.exit_code == 2, result.output
    assert "the disk is full" in one_line(result.stderr)
    assert temp_files(disk) == [] and not (disk / METRICS).exists()
    filler.unlink()
    again = run_comp("ensemble", "--config", path)
    assert again.exit_code == 0, again.output
    assert json.loads((disk / METRICS).read_text())["oof_rows"] > 0
