"""Shared fixtures: small competitions written to a temporary folder."""

from __future__ import annotations

import csv
import os
import time
from pathlib import Path

import pytest

from comp.config import Config, DataConfig, FoldsConfig, TestSet

SHARED = Path(__file__).resolve().parents[1].parent / "shared"


def qa(question: str, answer: str) -> str:
    return f"السؤال\n----------\n{question}\n\nالجواب\n----------\n{answer}"


def write_csv(
    path: Path, header: list[str], rows: list[list], *, bom: bool = False, newline: str = "\n"
) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "w", encoding="utf-8-sig" if bom else "utf-8", newline="") as handle:
        writer = csv.writer(handle, lineterminator=newline)
        writer.writerow(header)
        writer.writerows(rows)
    return path


def small_config(root: Path, num_labels: int = 4, k: int = 2) -> Config:
    return Config(
        data=DataConfig(
            train=str(root / "train.csv"),
            test_sets=[
                TestSet("public", str(root / "test_public.csv")),
                TestSet("private", str(root / "test_private.csv")),
            ],
            num_labels=num_labels,
        ),
        folds=FoldsConfig(name="small", dir=str(root / "folds"), k=k, seed=0),
    )


@pytest.fixture
def small_competition(tmp_path: Path) -> Config:
    """4 classes x 6 rows of train, two test files of 3 rows each."""
    names = ["Dental Health", "Dentistry", "Pediatrics", "Psychology"]
    rows = [
        [qa(f"سؤال {i} عن {names[i % 4]}", f"جواب {i}"), names[i % 4], i % 4] for i in range(24)
    ]
    write_csv(tmp_path / "train.csv", ["text", "category", "label"], rows)
    write_csv(
        tmp_path / "test_public.csv",
        ["Id", "text"],
        [[i, qa(f"سؤال {i}", "جواب")] for i in range(1, 4)],
    )
    write_csv(
        tmp_path / "test_private.csv",
        ["Id", "text"],
        [[i, qa(f"سؤال {i}", "جواب")] for i in range(4, 7)],
    )
    return small_config(tmp_path)


def demo_config(root: Path, **train_overrides) -> Config:
    """A two-fold demo competition config under `root`, small enough for a CPU test."""
    from comp.kinds import load_config

    overrides = {
        "data.train": root / "demo" / "shared_task_train.csv",
        "data.solution": root / "demo" / "solution.csv",
        "demo.out_dir": root / "demo",
        "demo.scale": 0.03,
        "folds.dir": root / "folds",
        "folds.k": 2,
        "model.backbone": root / "tiny-bert",
        "model.max_len": 128,
        "train.runs_dir": root / "runs",
        "train.steps": 60,
        "train.batch_size": 32,
        "train.eval_every": 20,
        "train.checkpoint_every": 20,
        "train.lr": 3e-3,
        "train.fgm_eps": 0.02,
        "train.drw_start_epoch": 2,
        **train_overrides,
    }
    config = load_config(
        [Path(__file__).resolve().parents[1] / "configs" / "demo.yaml"],
        [f"{key}={value}" for key, value in overrides.items()],
    )
    for test_set in config.data.test_sets:
        test_set.path = str(root / "demo" / Path(test_set.path).name)
    return config


@pytest.fixture(scope="session")
def demo_root(tmp_path_factory) -> Path:
    """Demo data, two folds and a tiny backbone, built once for the whole test session."""
    from comp.workspace import prepare_demo

    root = tmp_path_factory.mktemp("demo")
    prepare_demo(
        demo_config(root),
        root / "tiny-bert",
        vocab_size=2000,
        hidden_size=64,
        num_layers=2,
        num_heads=2,
        max_len=128,
    )
    return root


# The shared trained run: both folds, long enough to learn well above chance (val macro-F1 0.10
# and 0.18 against 0.012; about 30 s on 2 cores). FGM is off to halve the cost; the loop's own
# tests cover it.
TRAINED = {
    "train.experiment": "two_folds",
    "train.steps": 200,
    "train.eval_every": 50,
    "train.lr": 4e-3,
    "train.llrd_decay": 1.0,
    "train.fgm": False,
    "model.dropout": 0.0,
}


@pytest.fixture(scope="session")
def trained_root(demo_root: Path) -> Path:
    """demo_root with both folds of experiment `two_folds` trained (shared: tests that change
    its files work on `trained_copy`)."""
    from rich.console import Console

    from comp.runs.frame import train_folds

    train_folds(demo_config(demo_root, **TRAINED), [0, 1], "cpu", False, Console(quiet=True))
    return demo_root


def copy_workspace(root: Path, target: Path, experiments: tuple[str, ...] = ()) -> Path:
    """The demo files, folds, tiny backbone and the named experiments of `root`, under `target`
    (everything a config from `demo_config(target)` reads: paths are relative to the root)."""
    import shutil

    for name in ("demo", "folds", "tiny-bert"):
        shutil.copytree(root / name, target / name)
    for experiment in experiments:
        shutil.copytree(root / "runs" / experiment, target / "runs" / experiment)
    return target


@pytest.fixture
def trained_copy(trained_root: Path, tmp_path: Path) -> Path:
    """A private copy of the shared trained run, for tests that change its files; configure it
    with `trained_copy_config`."""
    return copy_workspace(trained_root, tmp_path / "copy", (TRAINED["train.experiment"],))


def trained_copy_config(trained_root: Path, copy: Path, **settings) -> Config:
    """The shared trained run's config moved to its copy. model.backbone keeps the original's
    path: it is part of what shaped the folds, so another path would make them stale."""
    backbone = {"model.backbone": trained_root / "tiny-bert"}
    return demo_config(copy, **{**TRAINED, **backbone, **settings})


def tiny_bert(hidden: int = 16, dropout: float = 0.0):
    """A 2-layer random BertModel over a 50-token vocabulary, for unit tests of model code."""
    from transformers import BertConfig, BertModel

    config = BertConfig(
        vocab_size=50,
        hidden_size=hidden,
        num_hidden_layers=2,
        num_attention_heads=2,
        intermediate_size=2 * hidden,
        max_position_embeddings=64,
        hidden_dropout_prob=dropout,
        attention_probs_dropout_prob=dropout,
    )
    return BertModel(config, add_pooling_layer=False)


# ---------------------------------------------------------------------------------------------
# Running the CLI in tests


def write_config_file(path: Path, config: Config) -> str:
    """`config` resolved into a YAML file for `--config`; returns its path as a string."""
    from comp.config import dump_config

    path.write_text(dump_config(config), encoding="utf-8")
    return str(path)


def run_comp(*args, env: dict | None = None, columns: int = 200):
    """`comp ARGS` in this process (click's CliRunner, a console `columns` wide); exceptions
    other than exits propagate."""
    from click.testing import CliRunner

    from comp.cli import main

    env = {"COLUMNS": str(columns), **(env or {})}
    return CliRunner(env=env).invoke(main, [str(a) for a in args], catch_exceptions=False)


def one_line(output: str) -> str:
    """The only non-blank line of `output` (fails if there are more: a traceback, say)."""
    lines = [line for line in output.strip().splitlines() if line.strip()]
    assert len(lines) == 1, output
    return lines[0]


class Payload:
    """What a planted pickle does: unpickling it runs a shell command that creates `path`."""

    def __init__(self, path: Path) -> None:
        self.path = str(path)

    def __reduce__(self):
        return (os.system, (f"touch {self.path}",))


def wait_for(condition, seconds: float = 120.0, what: str = "", every: float = 0.5) -> None:
    """Poll `condition` until it holds; an AssertionError naming `what` after `seconds`."""
    deadline = time.time() + seconds
    while time.time() < deadline:
        if condition():
            return
        time.sleep(every)
    raise AssertionError(f"timed out waiting for {what}")
