"""A throw-away demo workspace for the tests and benchmarks: the first steps of `make all` (demo
data, folds, tiny backbone) in one call, under a folder of its own."""

from __future__ import annotations

from pathlib import Path

from rich.console import Console

from comp.config import Config
from comp.data import TrainData, load_train
from comp.demo.writer import write_demo_files
from comp.folds import make_folds


def workspace_overrides(work: Path, backbone: str = "tiny") -> list[str]:
    """--set overrides that put the demo competition (train file only), its folds, the backbone
    and the runs under `work`."""
    return [
        f"demo.out_dir={work}/demo",
        f"data.train={work}/demo/shared_task_train.csv",
        "data.test_sets=[]",
        f"folds.dir={work}/folds",
        f"model.backbone={work}/{backbone}",
        f"train.runs_dir={work}/runs",
    ]


def prepare_demo(config: Config, backbone_dir: Path | None = None, **backbone_options) -> TrainData:
    """Write the demo competition, make its folds and, if `backbone_dir` is given, build the tiny
    backbone there. Returns the loaded TrainData."""
    write_demo_files(config, Console(quiet=True))
    train = load_train(config.data)
    make_folds(config, train)
    if backbone_dir is not None:
        from comp.neural.backbone import build_tiny_backbone, training_texts

        build_tiny_backbone(training_texts(train), backbone_dir, **backbone_options)
    return train
